/**
 * Runs the storage conformance suite against PostgresStorage on a throwaway PostgreSQL cluster
 * (test/postgres.ts), each test on a database of its own. Without PostgreSQL installed the file is
 * skipped, unless SLIPWAY_REQUIRE_PG is set (CI sets it: there, a missing server is a failure).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { Executor } from "../../../src/engine/executor.js";
import { findDeadExecutors } from "../../../src/engine/liveness.js";
import { saga, z } from "../../../src/index.js";
import { Connection } from "../../../src/storage/postgres/connection.js";
import { postgresSchemaSql } from "../../../src/storage/postgres/migrations.js";
import { PostgresStorage } from "../../../src/storage/postgres/postgres-storage.js";
import { runStorageConformance } from "../../../src/testing/index.js";
import { freshDatabase, startPostgres } from "../../../src/testing/postgres.js";
import { captureLogs, tempDir } from "../../helpers.js";
import { eventually } from "../../wait.js";

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

describe.runIf(server !== undefined && !process.env.SLIPWAY_TEST_PG_URL)("PostgresStorage specifics", () => {
  it("says the database is unavailable while PostgreSQL is down, and goes on once it is back", async () => {
    const own = (await startPostgres())!;
    const storage = new PostgresStorage({ url: await freshDatabase(own.url, "restart") });
    try {
      await storage.init();
      await storage.upsertExecutor({
        id: "x",
        host: "h",
        pid: 1,
        startedAt: 0,
        heartbeatAt: 0,
        maxRuns: null,
      });
      expect(storage.health()).toEqual({ reachable: true });
      await own.down();
      await expect(storage.listExecutors()).rejects.toMatchObject({
        code: "storage",
        message: expect.stringContaining("is unavailable"),
      });
      // As statements find it: unreachable since the first failure, with the reason the API gives.
      expect(storage.health()).toMatchObject({
        reachable: false,
        reason: expect.stringContaining("is unavailable"),
        since: expect.any(Number),
      });

      await expect(storage.commit([])).resolves.toEqual([]);
      await expect(
        storage.addSignal({ runId: "r", name: "go", payload: null, createdAt: 1 }),
      ).rejects.toMatchObject({ code: "storage" });
      await own.up();
      // The pool replaces the connections that broke: the next statements go through.
      const back = await eventually(
        () =>
          storage.listExecutors().then(
            (list) => list,
            () => undefined,
          ),
        "the storage to reach the restarted server",
      );
      expect(back.map((e) => e.id)).toEqual(["x"]);
      expect(storage.health()).toMatchObject({ reachable: true, since: expect.any(Number) });
      // Within a lease of its coming back, silence still proves nothing: x (silent since 0) is not dead.
      expect(await findDeadExecutors(storage, 10_000, undefined, 1_000_000)).toEqual([]);
    } finally {
      await storage.close();
      await own.stop();
    }
  });

  it("fails a transaction whose connection breaks, without ending the process, and goes on", async () => {
    const url = await freshDatabase(server!.url, "broken");
    const connection = new Connection(url, 2);
    const admin = new pg.Client({ connectionString: url });
    await admin.connect();
    try {
      const broken = connection.transaction(async (client) => {
        const pid = (await client.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid;
        await admin.query("SELECT pg_terminate_backend($1)", [pid]);
        // Written to a connection the server closed: the socket's errors must not go unheard.
        await client.query("SELECT 1");
        await client.query("SELECT 2");
      });
      await expect(broken).rejects.toMatchObject({ code: "storage" });
      expect(connection.health().reachable).toBe(false);
      // The broken connection was thrown away: the next transaction gets a good one.
      await expect(connection.transaction((client) => client.query("SELECT 1"))).resolves.toBeDefined();
      expect(connection.health()).toMatchObject({ reachable: true });
    } finally {
      await admin.end();
      await connection.end();
    }
  });

  it("keeps its tables in the schema the URL names, created when missing", async () => {
    const url = await freshDatabase(server!.url, "schemas");
    const a = new PostgresStorage({ url: `${url}&schema=team_a` });
    const b = new PostgresStorage({ url: `${url}&schema=Team B` });
    try {
      await a.init();
      await b.init();
      await a.upsertExecutor({
        id: "only-a",
        host: "h",
        pid: 1,
        startedAt: 0,
        heartbeatAt: 0,
        maxRuns: null,
      });
      expect((await a.listExecutors()).map((e) => e.id)).toEqual(["only-a"]);
      expect(await b.listExecutors()).toEqual([]);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe.runIf(server !== undefined)("lock slots on PostgreSQL", () => {
  it("refuses a second holder of a slot by the primary key, with no advisory lock or read first", async () => {
    const url = await freshDatabase(server!.url, "lock_slots");
    const storage = new PostgresStorage({ url });
    await storage.init();
    await storage.close();
    // Eight connections each write slot 0 of `swarm` at once, as eight workers racing would.
    const clients = Array.from({ length: 8 }, () => new pg.Client({ connectionString: url }));
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const results = await Promise.allSettled(
        clients.map((c, i) =>
          c.query(
            `INSERT INTO lock_slots (lock, slot, holder, run_id, run_name, pipeline, action, job, owner, key, since)
             VALUES ('swarm', 0, $1, 'r', NULL, 'p', 'a', 'j', 'w', 'k', 1)`,
            [`h${i}`],
          ),
        ),
      );
      expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of results)
        if (r.status === "rejected") expect((r.reason as { code?: string }).code).toBe("23505");
      const rows = await clients[0]!.query("SELECT holder FROM lock_slots");
      expect(rows.rows).toHaveLength(1);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe.runIf(server !== undefined)("executors sharing a PostgreSQL database", () => {
  it("are told to look once their change listener listens: a change made before was not told", async () => {
    const url = await freshDatabase(server!.url, "listen_first");
    const storage = new PostgresStorage({ url });
    await storage.init();
    let told = 0;
    const stop = storage.onChange(() => told++);
    try {
      // Nothing is written: the one call is the listener's own, once its LISTEN is in place.
      await eventually(() => told === 1, "the first call");
    } finally {
      stop();
      await storage.close();
    }
  });

  it("wake a run at once when another process signals it (LISTEN/NOTIFY), not at their next poll", async () => {
    const url = await freshDatabase(server!.url, "notify");
    const gate = saga("gate", { version: 1 })
      .waitForSignal("approve", { signal: "go", produces: { ok: z.boolean() } })
      .action("finish", { reads: ["ok"], produces: { done: z.boolean() }, run: ({ ok }) => ({ done: ok }) })
      .build();
    const holderStorage = new PostgresStorage({ url });
    const senderStorage = new PostgresStorage({ url });
    const dir = tempDir();
    // Polls once a minute: only the notice can wake it within the test's wait.
    const holder = await Executor.open({
      storage: holderStorage,
      sagas: [gate],
      dataDir: join(dir, "a"),
      pollIntervalMs: 60_000,
      logger: captureLogs().logger,
    });
    const sender = await Executor.open({
      storage: senderStorage,
      sagas: [],
      dataDir: join(dir, "b"),
      pollIntervalMs: 60_000,
      logger: captureLogs().logger,
    });
    try {
      const run = await holder.start(gate);
      await eventually(
        async () => (await holderStorage.getRun(run.id))?.status === "waiting",
        "the run to wait",
      );
      await sender.signal(run.id, "go", { ok: true });
      const outcome = await run.result();
      expect(outcome).toMatchObject({ status: "completed" });
    } finally {
      await sender.close();
      await holder.close();
      await senderStorage.close();
      await holderStorage.close();
    }
  });
});

describe.runIf(server !== undefined)("sql/postgres/schema.sql", () => {
  it("matches what the migrations produce", async () => {
    const committed = readFileSync(new URL("../../../sql/postgres/schema.sql", import.meta.url), "utf8");
    expect(
      committed,
      "sql/postgres/schema.sql is stale: regenerate it with `npx tsx scripts/postgres-schema.ts --write`",
    ).toBe(await postgresSchemaSql(server!.url));
  });
});
