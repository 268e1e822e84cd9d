/** Runs the storage conformance suite against SqliteStorage, plus SQLite-only checks (migrations, WAL). */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import Database from "better-sqlite3";
import { afterAll, describe, expect, it } from "vitest";
import { readMigrations } from "../../../src/storage/sqlite/migrations.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import { runStorageConformance } from "../../../src/testing/index.js";

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
  it("runs in WAL mode and records every migration once, across reopenings", async () => {
    const path = freshPath();
    for (let i = 0; i < 3; i++) {
      const storage = new SqliteStorage({ path, synchronous: i === 1 ? "normal" : "full" });
      await storage.init();
      await storage.init();
      await storage.upsertExecutor({ id: `x${i}`, host: "h", pid: i, startedAt: 0, heartbeatAt: 0 });
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
    await expect(storage.getExecution("x")).rejects.toThrow(/init\(\)/);
    await storage.close();
  });

  it("init is safe when several processes run it on a new file at once", async () => {
    const path = freshPath();
    const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
    // Every process waits for the same instant, so the migrations really race.
    const startAt = Date.now() + 2_000;
    const script = `
      const { SqliteStorage } = await import(${JSON.stringify(moduleUrl)});
      while (Date.now() < ${startAt}) {}
      const storage = new SqliteStorage({ path: ${JSON.stringify(path)} });
      await storage.init();
      await storage.close();
    `;
    const runs = Array.from(
      { length: 4 },
      () =>
        new Promise<{ code: number | null; stderr: string }>((resolve) => {
          const child = spawn(process.execPath, ["--import", tsx, "--input-type=module", "-e", script], {
            stdio: ["ignore", "ignore", "pipe"],
          });
          let stderr = "";
          child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
            stderr += chunk;
          });
          child.on("exit", (code) => resolve({ code, stderr }));
        }),
    );
    for (const run of await Promise.all(runs)) expect(run).toEqual({ code: 0, stderr: "" });
    const db = new Database(path, { readonly: true });
    try {
      const applied = db.prepare("SELECT version FROM schema_migrations ORDER BY version").pluck().all();
      expect(applied).toEqual(readMigrations().map((m) => m.version));
    } finally {
      db.close();
    }
  });
});
