/** The SQLite schema's numbered migrations (sql/sqlite/*.sql): reading, applying, and the schema they produce. */
import Database from "better-sqlite3";
import { SlipwayError } from "../../errors.js";
import { type Migration, readMigrationFiles } from "../migration-files.js";

export type { Migration } from "../migration-files.js";

/** Resolves to <package>/sql/sqlite/ both from src/storage/sqlite/ (tsx) and dist/storage/sqlite/ (tsc). */
const MIGRATIONS_DIR = new URL("../../../sql/sqlite/", import.meta.url);

/** The numbered migrations shipped in sql/sqlite/, in order. */
export function readMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  return readMigrationFiles(dir);
}

/**
 * Applies the migrations `db` lacks, all in one `BEGIN IMMEDIATE` transaction: an upgrade lands whole
 * or not at all, with one flush to disk, and the write lock is taken before the "already applied?"
 * check, so two processes migrating the same file at once serialize (the second waits on
 * busy_timeout, then finds the work done).
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = readMigrations()): void {
  db.transaction(() => {
    db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
    const latest = migrations.at(-1)?.version ?? 0;
    const newest = (
      db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }
    ).v;
    if (newest !== null && newest > latest) {
      // Running old code against a newer schema would silently misread it.
      throw new SlipwayError(
        "storage",
        `database schema is at version ${newest}, newer than this slipway knows (${latest}); upgrade slipway`,
      );
    }
    const isApplied = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?");
    const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
    for (const migration of migrations) {
      if (isApplied.get(migration.version)) continue;
      db.exec(migration.sql);
      record.run(migration.version, migration.name, Date.now());
    }
  }).immediate();
}

/**
 * For a read-only connection, which cannot migrate: refuses a schema other than the one this code
 * knows, saying what to do.
 */
export function assertMigrated(
  db: Database.Database,
  path: string,
  migrations: readonly Migration[] = readMigrations(),
): void {
  const latest = migrations.at(-1)?.version ?? 0;
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  const newest = table
    ? (db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null }).v
    : null;
  if (newest === latest) return;
  throw new SlipwayError(
    "storage",
    newest !== null && newest > latest
      ? `database ${path} has schema version ${newest}, newer than this slipway knows (${latest}); upgrade slipway`
      : `database ${path} has schema version ${newest ?? 0}, older than this slipway's (${latest}); open it once with a writer (an executor, or any slipway command that runs) to migrate it`,
  );
}

/**
 * The schema all migrations produce, as committed in sql/sqlite/schema.sql: every object's SQL from
 * sqlite_master, tables first, then by name, with trailing blanks and blank lines dropped.
 */
export function sqliteSchemaSql(migrations: readonly Migration[] = readMigrations()): string {
  const db = new Database(":memory:");
  try {
    migrate(db, migrations);
    const rows = db
      .prepare(
        `SELECT type, name, sql FROM sqlite_master
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name`,
      )
      .all() as { type: string; name: string; sql: string }[];
    const statements = rows.map(
      (row) =>
        `${row.sql
          .split(/\r?\n/)
          .map((line) => line.trimEnd())
          .filter((line) => line.length > 0)
          .join("\n")};`,
    );
    return `-- Generated from sql/sqlite/*.sql by \`npx tsx scripts/sqlite-schema.ts --write\`; do not edit.\n\n${statements.join("\n\n")}\n`;
  } finally {
    db.close();
  }
}
