/**
 * Runs the storage conformance suite against PostgresStorage on a throwaway PostgreSQL cluster
 * (test/postgres.ts), each test on a database of its own. Without PostgreSQL installed the file is
 * skipped, unless SLIPWAY_REQUIRE_PG is set (CI sets it: there, a missing server is a failure).
 */
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { PostgresStorage } from "../../../src/storage/postgres/postgres-storage.js";
import { runStorageConformance } from "../../../src/testing/index.js";
import { freshDatabase, startPostgres } from "../../../src/testing/postgres.js";

const server = await startPostgres();
if (!server && process.env.SLIPWAY_REQUIRE_PG)
  throw new Error("PostgreSQL is required (SLIPWAY_REQUIRE_PG) but not installed");
afterAll(() => server?.stop());

let databases = 0;

/** Makes its own database at init and drops it at close, so each test starts empty. */
class TempPostgresStorage extends PostgresStorage {
  private readonly serverUrl: string;
  private made = false;

  constructor(serverUrl: string) {
    const url = new URL(serverUrl);
    url.pathname = `/conformance_${process.pid}_${++databases}`;
    super({ url: url.toString(), maxConnections: 4 });
    this.serverUrl = serverUrl;
  }

  override async init(): Promise<void> {
    if (!this.made) {
      this.made = true;
      await adminQuery(this.serverUrl, `CREATE DATABASE ${new URL(this.url).pathname.slice(1)}`);
    }
    await super.init();
  }

  override async close(): Promise<void> {
    await super.close();
    if (this.made)
      await adminQuery(this.serverUrl, `DROP DATABASE IF EXISTS ${new URL(this.url).pathname.slice(1)}`);
  }
}

async function adminQuery(url: string, sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(sql);
  } finally {
    await client.end();
  }
}

const moduleUrl = new URL("../../../src/storage/postgres/postgres-storage.ts", import.meta.url).href;

if (server) {
  const crashUrl = await freshDatabase(server.url, "crash");
  runStorageConformance({
    name: "postgres",
    newStorage: () => new TempPostgresStorage(server.url),
    describe,
    it,
    crashChild: { module: moduleUrl, exportName: "openPostgresStorage", arg: { url: crashUrl } },
  });
} else {
  describe.skip("storage conformance: postgres (PostgreSQL is not installed)", () => {
    it("needs initdb and pg_ctl", () => expect(server).toBeDefined());
  });
}
