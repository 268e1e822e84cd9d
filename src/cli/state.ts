/** Where the CLI keeps its state: an embedded SQLite file, `.slipway/slipway.db` unless told otherwise. */
import { resolve } from "node:path";

/** `--db PATH`, else `SLIPWAY_DB`, else `.slipway/slipway.db` in the current directory. */
export function dbPath(flag: string | undefined): string {
  return resolve(flag ?? process.env.SLIPWAY_DB ?? ".slipway/slipway.db");
}
