/** Runs the storage conformance suite against SqliteStorage, plus SQLite-only checks (migrations, WAL). */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { migrate, readMigrations } from "../../../src/storage/sqlite/migrations.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import { createTransition, runRecord, runStorageConformance } from "../../../src/testing/index.js";
import { trackChild } from "../../leaks.js";
import { eventually, within } from "../../wait.js";

const dir = mkdtempSync(join(tmpdir(), "slipway-sqlite-test-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let files = 0;
const freshPath = () => join(dir, `test-${++files}.db`);

/** Deletes its database file (and WAL/SHM companions) when closed, so each test cleans up after itself. */
class TempSqliteStorage extends SqliteStorage {
  override async close(): Promise<void> {
    await super.close();
    for (const suffix of ["", "-wal", "-shm"]) rmSync(this.path + suffix, { force: true });
  }
}

const moduleUrl = new URL("../../../src/storage/sqlite/sqlite-storage.ts", import.meta.url).href;

runStorageConformance({
  name: "sqlite",
  newStorage: () => new TempSqliteStorage({ path: freshPath() }),
  describe,
  it,
  crashChild: { module: moduleUrl, exportName: "openSqliteStorage", arg: { path: join(dir, "crash.db") } },
});

describe("SqliteStorage specifics", () => {
  it("indexes new runs for the text filter after their commit, and finds those not indexed yet by a scan", async () => {
    const path = freshPath();
    const storage = new SqliteStorage({ path });
    await storage.init();
    const indexed = () => {
      const db = new Database(path, { readonly: true });
      try {
        return db.prepare("SELECT id FROM runs_text ORDER BY rowid").pluck().all() as string[];
      } finally {
        db.close();
      }
    };
    const create = (id: string, saga: string) =>
      storage.commit([createTransition(runRecord(id, { saga }), "me")]);
    try {
      await create("r-1", "recipe-ci-gitea");
      await create("r-2", "release");
      // Not in the index within the commit: found by the scan of the runs past it.
      expect(indexed()).toEqual([]);
      expect((await storage.listRuns({ text: "GITEA" })).map((r) => r.id)).toEqual(["r-1"]);
      // Indexed a moment later, both in one write.
      await eventually(() => indexed().length === 2, "the runs to be indexed");
      expect(indexed()).toEqual(["r-1", "r-2"]);
      expect((await storage.listRuns({ text: "gitea" })).map((r) => r.id)).toEqual(["r-1"]);
      // A run created after it is found too, the index for the first two, the scan for it.
      await create("r-3", "recipe-ci-gitea-heavy");
      expect((await storage.listRuns({ text: "Gitea" })).map((r) => r.id)).toEqual(["r-1", "r-3"]);
    } finally {
      await storage.close();
    }
    // Closing indexed what was left.
    expect(indexed()).toEqual(["r-1", "r-2", "r-3"]);
  });

  it("runs in WAL mode and records every migration once, across reopenings", async () => {
    const path = freshPath();
    for (let i = 0; i < 3; i++) {
      const storage = new SqliteStorage({ path, synchronous: i === 1 ? "normal" : "full" });
      await storage.init();
      await storage.init();
      await storage.upsertExecutor({
        id: `x${i}`,
        host: "h",
        pid: i,
        startedAt: 0,
        heartbeatAt: 0,
        maxRuns: null,
      });
      await storage.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
      const applied = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
      expect(applied).toEqual(readMigrations().map((m) => m.version));
      expect(db.prepare("SELECT COUNT(*) FROM executors").pluck().get()).toBe(3);
    } finally {
      db.close();
    }
  });

  it("answers a batched write only once a flush of the WAL after it has finished, off the main thread", async () => {
    const held: ((error: NodeJS.ErrnoException | null) => void)[] = [];
    const storage = new TempSqliteStorage({
      path: freshPath(),
      fdatasync: (_fd, done) => {
        held.push(done);
      },
    });
    await storage.init();
    const record = (path: string) => ({
      at: 1,
      actor: "a",
      method: "POST",
      route: "/runs",
      path,
      runId: null,
      status: 201,
      key: null,
      replay: null,
    });
    let answered = 0;
    const first = storage.addAudit([record("/1")]).then(() => answered++);
    await eventually(() => held.length === 1, "the first flush to start");
    // Written (another reader sees it) but not answered while its flush runs; writes made meanwhile
    // wait for the next flush, together.
    expect(await storage.listAudit({ limit: 10 })).toHaveLength(1);
    const more = [storage.addAudit([record("/2")]), storage.addAudit([record("/3")])];
    const all = Promise.all(more).then(() => answered++);
    await new Promise((resolve) => setImmediate(resolve));
    expect(answered).toBe(0);
    expect(held).toHaveLength(1);
    held[0]!(null);
    await first;
    await eventually(() => held.length === 2, "one flush for the two writes made meanwhile");
    expect(answered).toBe(1);
    held[1]!(Object.assign(new Error("no space left on device"), { code: "ENOSPC" }));
    await expect(all).rejects.toMatchObject({ code: "disk_full" });
    await storage.close();

    // synchronous: "normal" leaves flushing to SQLite's checkpoints: nothing waits for a flush.
    const normal = new TempSqliteStorage({
      path: freshPath(),
      synchronous: "normal",
      fdatasync: () => {
        throw new Error("no flush in normal mode");
      },
    });
    await normal.init();
    await normal.addAudit([record("/n")]);
    await normal.close();
  });

  it("migrates a 0.1 database, where a run was an execution, keeping every row", async () => {
    const runsMigration = readMigrations().find((m) => m.name.endsWith("_runs.sql"))!.version;
    const path = freshPath();
    const old = new Database(path);
    try {
      migrate(
        old,
        readMigrations().filter((m) => m.version < runsMigration),
      );
      old.exec(`
        INSERT INTO executions (id, saga, version, status, input, run_name, owner, revision, wake_at,
          cancel_requested, cause, error, created_at, updated_at, ended_at)
        VALUES ('r1', 'build', 1, 'waiting', '{"n":1}', 'build-1', NULL, 3, 50, NULL, NULL, NULL, 10, 20, NULL);
        INSERT INTO steps (execution_id, action, status, attempt, failures, output, error, state, undo_attempt,
          undo_error, started_at, ended_at, updated_at)
        VALUES ('r1', 'compile', 'completed', 1, 0, '{"ok":true}', NULL, NULL, 0, NULL, 11, 12, 12);
        INSERT INTO events (execution_id, seq, type, action, at, data)
        VALUES ('r1', 1, 'execution:started', NULL, 10, '{"version":1}'),
               ('r1', 2, 'action:completed', 'compile', 12, NULL),
               ('r1', 3, 'execution:waiting', NULL, 20, '{"wakeAt":50}');
        INSERT INTO signals (execution_id, name, payload, created_at, consumed_by)
        VALUES ('r1', 'approve', '{}', 21, NULL);
      `);
    } finally {
      old.close();
    }
    const storage = new SqliteStorage({ path });
    try {
      await storage.init();
      expect(await storage.getRun("r1")).toMatchObject({
        saga: "build",
        status: "waiting",
        runName: "build-1",
      });
      expect((await storage.history("r1")).map((e) => e.type)).toEqual([
        "run:started",
        "action:completed",
        "run:waiting",
      ]);
      expect((await storage.load("r1"))?.steps).toMatchObject([{ action: "compile", status: "completed" }]);
      expect(await storage.signalsAfter(0)).toMatchObject([{ runId: "r1", name: "approve" }]);
      expect(await storage.nextWakeAt(["build"])).toBe(50);
    } finally {
      await storage.close();
    }
  });

  it("refuses a database migrated by a newer version", async () => {
    const path = freshPath();
    const storage = new SqliteStorage({ path });
    await storage.init();
    await storage.close();
    const db = new Database(path);
    db.prepare(
      "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future.sql', 0)",
    ).run();
    db.close();
    const newer = new SqliteStorage({ path });
    await expect(newer.init()).rejects.toThrow(/newer/);
    await newer.close();
  });

  it("fails clearly when used before init", async () => {
    const storage = new SqliteStorage({ path: freshPath() });
    await expect(storage.getRun("x")).rejects.toThrow(/init\(\)/);
    await storage.close();
  });

  it("init is safe when several processes run it on a new file at once", async () => {
    const path = freshPath();
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    // Every process loads, says so, and waits (1 ms naps) for the go file: then they all start at once,
    // however long each took to load, so the migrations really race.
    const go = `${path}.go`;
    const script = `
      const { existsSync } = await import("node:fs");
      const { SqliteStorage } = await import(${JSON.stringify(moduleUrl)});
      process.stdout.write("ready\\n");
      const nap = new Int32Array(new SharedArrayBuffer(4));
      while (!existsSync(${JSON.stringify(go)})) Atomics.wait(nap, 0, 0, 1);
      const storage = new SqliteStorage({ path: ${JSON.stringify(path)} });
      await storage.init();
      await storage.close();
    `;
    let ready = 0;
    const runs = Array.from({ length: 4 }, (_, n) => {
      const child = spawn(process.execPath, ["--import", tsx, "--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "pipe"],
      });
      trackChild(child, `init racer ${n}`);
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
        if (chunk.includes("ready")) ready++;
      });
      let stderr = "";
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
        stderr += chunk;
      });
      return new Promise<{ code: number | null; stderr: string }>((resolve) =>
        child.on("exit", (code) => resolve({ code, stderr })),
      );
    });
    await eventually(() => ready === 4, "the four processes to load");
    writeFileSync(go, "");
    const ended = await within(Promise.all(runs), "the four processes to init and exit");
    for (const run of ended) expect(run).toEqual({ code: 0, stderr: "" });
    const db = new Database(path, { readonly: true });
    try {
      const applied = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
      expect(applied).toEqual(readMigrations().map((m) => m.version));
    } finally {
      db.close();
    }
  });
});
