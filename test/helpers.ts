/** Test helpers: a fresh storage per test on every backend, temp directories, executors that never leak; the bounded waits of ./wait.ts. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach } from "vitest";
import { Executor, type ExecutorOptions } from "../src/engine/executor.js";
import { createLogger } from "../src/logging.js";
import { MemoryStorage } from "../src/storage/memory.js";
import { PostgresStorage } from "../src/storage/postgres/postgres-storage.js";
import { SqliteStorage } from "../src/storage/sqlite/sqlite-storage.js";
import type { Storage } from "../src/storage/types.js";
import { executorRecord } from "../src/testing/records.js";
import { onPostgres, testDatabase } from "./storage-backend.js";

export interface Backend {
  name: string;
  /** A storage for this test; `dir` is the test's own temp directory. */
  open(dir: string): Storage;
}

const all: Backend[] = [
  { name: "memory", open: () => new MemoryStorage() },
  { name: "sqlite", open: (dir) => new SqliteStorage({ path: join(dir, "slipway.db") }) },
  ...(onPostgres
    ? [{ name: "postgres", open: (dir: string) => new PostgresStorage({ url: testDatabase(dir) }) }]
    : []),
];

/** The backends to run against: memory and SQLite, or the one named by SLIPWAY_TEST_STORAGE. */
export const backends: Backend[] = process.env.SLIPWAY_TEST_STORAGE
  ? all.filter((b) => b.name === process.env.SLIPWAY_TEST_STORAGE)
  : all;

const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A temporary directory removed after the test. */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "slipway-test-"));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Collected JSON log lines. */
export function captureLogs(): { lines: Record<string, unknown>[]; logger: ReturnType<typeof createLogger> } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n"))
        if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { lines, logger: createLogger({ level: "debug" }, sink) };
}

export interface Harness {
  dir: string;
  storage: Storage;
  /** Opens an executor on this test's storage, closed after the test (test/setup.ts tracks every executor). */
  executor(options: Omit<ExecutorOptions, "storage"> & { storage?: Storage }): Promise<Executor>;
}

/** A storage (and data directory) of the given backend for one test. */
export function harness(backend: Backend): Harness {
  const dir = tempDir();
  const storage = backend.open(dir);
  const executors: Executor[] = [];
  cleanups.push(async () => {
    for (const executor of executors) await executor.close();
    await storage.close();
  });
  return {
    dir,
    storage,
    async executor(options) {
      const executor = await Executor.open({
        storage,
        dataDir: join(dir, "data"),
        pollIntervalMs: 20,
        abortGraceMs: 500,
        logger: createLogger({ level: "silent" }),
        ...options,
      });
      executors.push(executor);
      return executor;
    },
  };
}

export { eventually, within } from "./wait.js";

/** Registers executor `id` as last heard of an hour ago on another host: dead to every lookup. Returns that time. */
export async function deadExecutor(storage: Storage, id = "ghost"): Promise<number> {
  const long = Date.now() - 3_600_000;
  await storage.upsertExecutor(
    executorRecord(id, { host: "elsewhere", pid: 1, startedAt: long, heartbeatAt: long }),
  );
  return long;
}
