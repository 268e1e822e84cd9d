/** Opening a SQLite connection: read-only, or switched to WAL with retries while another process holds the lock. */
import Database from "better-sqlite3";
import { NotFoundError, SlipwayError } from "../../errors.js";

/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5_000;

/** A read-only connection to an existing database, with a clear error when there is none. */
export function openReadOnly(path: string): Database.Database {
  try {
    return new Database(path, { readonly: true, fileMustExist: true });
  } catch (error) {
    if ((error as { code?: unknown }).code === "SQLITE_CANTOPEN")
      throw new NotFoundError(`no database at ${path} (a read-only reader never creates one)`);
    throw error;
  }
}

/**
 * Switches the file to WAL (a persistent setting). This needs an exclusive lock, and when several
 * processes open a new file at once SQLite reports SQLITE_BUSY at once instead of waiting on
 * busy_timeout (it would be a deadlock otherwise), so retry for as long as busy_timeout would wait.
 */
export function enableWal(db: Database.Database, path: string): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      // In-memory and temporary databases cannot use WAL; anything else must.
      if (mode === "wal" || path === ":memory:" || path === "") return;
      throw new SlipwayError(
        "storage",
        `${path}: cannot switch to WAL (journal_mode stays "${String(mode)}")`,
      );
    } catch (error) {
      if ((error as { code?: unknown }).code !== "SQLITE_BUSY" || Date.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, 5 + Math.random() * 20);
    }
  }
}
