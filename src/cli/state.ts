/**
 * Where the CLI keeps its state: an embedded SQLite file. Found the way git finds its repository: the
 * nearest `.slipway/slipway.db` from the current directory up, unless `--db` or `SLIPWAY_DB` names one.
 */
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { NotFoundError } from "../errors.js";
import { databaseScheme, isPostgresUrl, POSTGRES_SCHEMES } from "../storage/open.js";
import { UsageError } from "./command.js";

/** What a command does with the state: a reader never creates a database. */
export type StateUse = "read" | "write";

/** The state directory and file, relative to the directory that holds them. */
const STATE = join(".slipway", "slipway.db");

/**
 * The database a command uses: `--db PATH`, else `SLIPWAY_DB`, else the nearest `.slipway/slipway.db`
 * from `cwd` up; none found, a writer creates `.slipway/` in `cwd` and a reader is told where it
 * looked. A `postgres://` URL names a PostgreSQL database; any other URL is refused.
 */
export function dbPath(flag: string | undefined, use: StateUse, cwd = process.cwd()): string {
  const named = flag ?? (process.env.SLIPWAY_DB || undefined);
  if (named !== undefined) {
    if (isPostgresUrl(named)) return named;
    const scheme = databaseScheme(named);
    if (scheme !== undefined)
      throw new UsageError(
        `${flag !== undefined ? "--db" : "SLIPWAY_DB"} is ${scheme}://...: give a SQLite file's path or a ${POSTGRES_SCHEMES.map((s) => `${s}://`).join(" or ")} URL`,
      );
    const path = resolve(cwd, named);
    if (use === "read" && !existsSync(path))
      throw new NotFoundError(
        `no Slipway database at ${path} (${flag !== undefined ? "--db" : "SLIPWAY_DB"})`,
      );
    return path;
  }
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const candidate = join(dir, STATE);
    if (existsSync(candidate)) return candidate;
    if (dirname(dir) === dir) break;
  }
  if (use === "read")
    throw new NotFoundError(
      `no Slipway database: looked for ${STATE} in ${resolve(cwd)} and every directory above it; run a pipeline here first, or name one with --db PATH or SLIPWAY_DB`,
    );
  return resolve(cwd, STATE);
}
