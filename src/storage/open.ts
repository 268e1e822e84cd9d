/**
 * Opens the backend a database location names: a `postgres://` (or `postgresql://`) URL is a
 * PostgreSQL database, anything else the path of a SQLite file.
 */
import { PostgresStorage } from "./postgres/postgres-storage.js";
import { SqliteStorage } from "./sqlite/sqlite-storage.js";

/** The SQL backends: everything a server needs (triggers, audit, peaks, run counts, commit timing). */
export type SqlStorage = SqliteStorage | PostgresStorage;

const URL_SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/** The URL schemes of PostgreSQL databases. */
export const POSTGRES_SCHEMES: readonly string[] = ["postgres", "postgresql"];

/** The scheme of a database URL (`postgres`), or undefined for a file path. */
export function databaseScheme(db: string): string | undefined {
  return URL_SCHEME.exec(db)?.[1]?.toLowerCase();
}

/** Whether `db` names a PostgreSQL database rather than a SQLite file. */
export function isPostgresUrl(db: string): boolean {
  const scheme = databaseScheme(db);
  return scheme !== undefined && POSTGRES_SCHEMES.includes(scheme);
}

/**
 * The backend for `db`. `readOnly` opens a SQLite file for reading only (it must exist); PostgreSQL
 * readers need no such mode (they take no lock that blocks a writer).
 */
export function openStorage(db: string, options: { readOnly?: boolean } = {}): SqlStorage {
  if (isPostgresUrl(db)) return new PostgresStorage({ url: db });
  return new SqliteStorage({ path: db, ...(options.readOnly && { readOnly: true }) });
}
