/** The PostgreSQL schema's numbered migrations (sql/postgres/*.sql), applied by whichever process comes first. */
import type pg from "pg";
import { SlipwayError } from "../../errors.js";
import { type Migration, readMigrationFiles } from "../migration-files.js";

/** Resolves to <package>/sql/postgres/ both from src/storage/postgres/ (tsx) and dist/storage/postgres/ (tsc). */
const MIGRATIONS_DIR = new URL("../../../sql/postgres/", import.meta.url);

/** Serializes migrating processes: the second waits, then finds the work done. */
const MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7491827364502)";

export function readPostgresMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  return readMigrationFiles(dir);
}

/**
 * Applies the migrations the database lacks, inside the caller's transaction: all of them or none.
 * `schema` (the connection's search path) is created first when missing.
 */
export async function migrate(
  client: pg.ClientBase,
  schema: string | undefined,
  migrations: readonly Migration[] = readPostgresMigrations(),
): Promise<void> {
  await client.query(MIGRATION_LOCK);
  if (schema !== undefined) await client.query(`CREATE SCHEMA IF NOT EXISTS ${quoteIdentifier(schema)}`);
  await client.query(
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
  );
  const applied = new Set(
    (await client.query<{ version: number }>("SELECT version FROM schema_migrations")).rows.map(
      (r) => r.version,
    ),
  );
  const latest = migrations.at(-1)?.version ?? 0;
  const newest = Math.max(0, ...applied);
  if (newest > latest) {
    // Running old code against a newer schema would silently misread it.
    throw new SlipwayError(
      "storage",
      `database schema is at version ${newest}, newer than this slipway knows (${latest}); upgrade slipway`,
    );
  }
  for (const migration of migrations) {
    if (applied.has(migration.version)) continue;
    await client.query(migration.sql);
    await client.query("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", [
      migration.version,
      migration.name,
      Date.now(),
    ]);
  }
}

/** A PostgreSQL identifier, quoted (so any name is taken as it is written). */
export function quoteIdentifier(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
