/** Where the CLI keeps its state: an embedded SQLite file, `.slipway/slipway.db` unless told otherwise. */
import { dirname, resolve } from "node:path";
import { Executor } from "../engine/executor.js";
import { createLogger } from "../logging.js";
import { findRun } from "../server/records.js";
import { SqliteStorage } from "../storage/sqlite/sqlite-storage.js";
import type { ExecutionRecord } from "../storage/types.js";
import { EXIT, type Io } from "./command.js";

export const dbOption = { db: { type: "string" } } as const;

/** `--db PATH`, else `SLIPWAY_DB`, else `.slipway/slipway.db` in the current directory. */
export function dbPath(flag: string | undefined): string {
  return resolve(flag ?? process.env.SLIPWAY_DB ?? ".slipway/slipway.db");
}

/** The data directory (logs, staged data) sits next to the database. */
export function dataDir(db: string): string {
  return dirname(db);
}

export async function openStorage(db: string): Promise<SqliteStorage> {
  const storage = new SqliteStorage({ path: db });
  await storage.init();
  return storage;
}

/**
 * Opens the state with an executor that runs nothing (requests it persists are acted on by whoever
 * runs the run), finds the run by id or name, and hands both to `act`; "no run" is exit 1.
 */
export async function withRun(
  dbFlag: string | undefined,
  ref: string,
  io: Io,
  act: (executor: Executor, run: ExecutionRecord) => Promise<number>,
): Promise<number> {
  const db = dbPath(dbFlag);
  const storage = await openStorage(db);
  const executor = await Executor.open({
    storage,
    sagas: [],
    dataDir: dataDir(db),
    recover: false,
    logger: createLogger({ level: "silent" }),
  });
  try {
    const run = await findRun(storage, ref);
    if (!run) {
      io.err(`slipway: no run "${ref}"\n`);
      return EXIT.failed;
    }
    return await act(executor, run);
  } finally {
    await executor.close();
    await storage.close();
  }
}
