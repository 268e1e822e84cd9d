/**
 * Which storage the tests run on: SQLite files (the default), or, with SLIPWAY_TEST_STORAGE=postgres,
 * PostgreSQL — a database per test file (named after it, kept afterwards when the server is one's
 * own), a schema per project or storage within it. `testDatabase(dir)` is what a test that would make
 * a SQLite file in `dir` uses instead, so one variable reruns every test that touches storage.
 */
import { basename, join } from "node:path";
import { freshDatabase } from "../src/testing/postgres.js";

export const onPostgres = process.env.SLIPWAY_TEST_STORAGE === "postgres";

let fileDatabase: string | undefined;

/** Called once per test file (test/setup.ts): creates its database when the tests run on PostgreSQL. */
export async function prepareTestDatabase(): Promise<void> {
  if (!onPostgres) return;
  const server = process.env.SLIPWAY_TEST_PG_URL;
  if (!server)
    throw new Error("SLIPWAY_TEST_STORAGE=postgres without a server (test/global-setup.ts sets one)");
  const file = (globalThis as { __vitest_worker__?: { filepath?: string } }).__vitest_worker__?.filepath;
  fileDatabase = await freshDatabase(server, file ? basename(file, ".test.ts") : "tests");
}

let schemas = 0;

/**
 * A database for a test: `<dir>/<name>` on SQLite, or a fresh schema of this file's PostgreSQL
 * database (the same URL for the same `dir` and `name`, so processes of one test share it).
 */
export function testDatabase(dir: string, name = "slipway.db"): string {
  if (!onPostgres) return join(dir, name);
  if (!fileDatabase) throw new Error("prepareTestDatabase() has not run (test/setup.ts)");
  const key = `${dir}/${name}`;
  let schema = schemaOf.get(key);
  if (!schema) {
    schema = `t${process.pid}_${++schemas}`;
    schemaOf.set(key, schema);
  }
  const url = new URL(fileDatabase);
  url.searchParams.set("schema", schema);
  return url.toString();
}

const schemaOf = new Map<string, string>();
