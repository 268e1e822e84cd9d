/** Where the CLI keeps its state: an embedded SQLite file, `.slipway/slipway.db` unless told otherwise. */
import { dirname, resolve } from "node:path";
import { SqliteStorage } from "../storage/sqlite/sqlite-storage.js";

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
