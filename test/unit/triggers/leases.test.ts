/**
 * One worker of several sharing a trigger store polls a source: the one holding its lease. Two trigger
 * services on one store, each on its own manual clock: a clock that stands still is a worker that
 * stopped (paused, or dead); the other takes the source over once the lease expires, the paused one
 * finds it lost when it wakes up and polls no more, and a worker that stops gives the lease up at once.
 * Also the takeover without waiting when the holder's process is gone. Real git (a bare repository).
 */
import { mkdirSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RunService } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import type { SourceStateRecord, TriggerStore } from "../../../src/storage/triggers.js";
import type { ExecutorRecord } from "../../../src/storage/types.js";
import { ManualClock } from "../../../src/testing/clock.js";
import type { SourceConfig } from "../../../src/triggers/config.js";
import { TriggerService } from "../../../src/triggers/service.js";
import { commit, git } from "../../e2e/server/git.js";
import { eventually, tempDir } from "../../helpers.js";

const T0 = Date.UTC(2026, 0, 10, 12, 0, 0);

/** The shared store, as one worker sees it: counts the polls this worker wrote. */
function counted(store: TriggerStore): TriggerStore & { polls: number } {
  const view = Object.create(store) as TriggerStore & { polls: number };
  view.polls = 0;
  view.putSourceState = async (state: SourceStateRecord) => {
    view.polls++;
    return store.putSourceState(state);
  };
  // Methods of the class read its private fields: called on the store itself.
  for (const name of Object.getOwnPropertyNames(MemoryTriggerStore.prototype)) {
    if (name === "constructor" || name === "putSourceState") continue;
    const method = (store as unknown as Record<string, (...args: unknown[]) => unknown>)[name]!;
    (view as unknown as Record<string, unknown>)[name] = method.bind(store);
  }
  return view;
}

function repository(): string {
  const dir = tempDir();
  const repo = join(dir, "app.git");
  const work = join(dir, "work");
  mkdirSync(work);
  git(dir, "init", "--quiet", "--bare", "-b", "main", repo);
  git(work, "init", "--quiet", "-b", "main");
  git(work, "remote", "add", "origin", repo);
  commit(work, "first");
  git(work, "push", "--quiet", "origin", "main");
  return repo;
}

const services: TriggerService[] = [];
afterEach(async () => {
  await Promise.all(services.splice(0).map((s) => s.stop()));
});

function worker(
  owner: string,
  store: TriggerStore,
  source: SourceConfig,
  clock: ManualClock,
  executors?: () => Promise<ExecutorRecord[]>,
): TriggerService {
  const service = new TriggerService({
    runs: {} as RunService,
    store,
    sources: [source],
    dataDir: tempDir(),
    clock,
    random: () => 0,
    sweepMs: 3_600_000,
    owner,
    executors,
  });
  services.push(service);
  return service;
}

describe("trigger leases: one worker polls a source", () => {
  it("is the holder's; another takes over once it expires, and gets it at once when the holder stops", async () => {
    const source: SourceConfig = {
      name: "app",
      url: repository(),
      kind: "git",
      pollMs: 1_000,
      allow: [],
      keepFailedMs: 0,
      pipelines: [],
    };
    const shared = new MemoryTriggerStore();
    const storeA = counted(shared);
    const storeB = counted(shared);
    const clockA = new ManualClock(T0);
    const clockB = new ManualClock(T0);
    const a = worker("a", storeA, source, clockA);
    const b = worker("b", storeB, source, clockB);

    a.start();
    await eventually(() => storeA.polls === 1, "a's first poll");
    b.start();
    // Three heartbeats of b while a's lease (10 s from T0) lasts: b never polls.
    await clockB.advance(6_000);
    expect(storeB.polls).toBe(0);
    expect(b.leases.holds("source:app")).toBe(false);
    expect((await b.status()).sources[0]).toMatchObject({ name: "app", polledBy: "a" });

    // a's clock stands still: it renews nothing. Within the lease and a heartbeat, b polls.
    await clockB.advanceTo(T0 + 12_000);
    await eventually(() => storeB.polls >= 1, "b's poll after a's lease expired");
    expect((await a.status()).sources[0]!.polledBy).toBe("b");

    // a wakes up: its next turn finds the lease taken, and it does not poll.
    await clockA.advanceTo(clockB.now());
    expect(a.leases.holds("source:app")).toBe(false);
    await clockA.advance(4_000);
    expect(storeA.polls).toBe(1);

    // b stops: it gives the lease up, and a takes it at its next heartbeat.
    await b.stop();
    expect((await a.status()).sources[0]!.polledBy).toBeNull();
    await clockA.advance(2_000);
    await eventually(() => storeA.polls === 2, "a's poll after b stopped");
    expect(a.leases.holds("source:app")).toBe(true);
  });

  it("is taken at once from a holder whose process is gone", async () => {
    const source: SourceConfig = {
      name: "app",
      url: repository(),
      kind: "git",
      pollMs: 60_000,
      allow: [],
      keepFailedMs: 0,
      pipelines: [],
    };
    const shared = new MemoryTriggerStore();
    const clock = new ManualClock(T0);
    // A holder registered on this host with a pid that no process has, heartbeating now.
    const gone = {
      id: "gone",
      host: hostname(),
      pid: 2 ** 22 + 1,
      startedAt: T0,
      heartbeatAt: T0,
      maxRuns: null,
    };
    const alive = {
      id: "alive",
      host: hostname(),
      pid: process.pid,
      startedAt: T0,
      heartbeatAt: T0,
      maxRuns: null,
    };
    expect(await shared.takeLease("source:app", "alive", T0, 10_000)).toBe(true);
    const store = counted(shared);
    const w = worker("w", store, source, clock, async () => [gone, alive]);
    w.start();
    await clock.advance(2_000);
    expect(store.polls).toBe(0);
    expect(w.leases.holds("source:app")).toBe(false);

    // The live holder's lease moves to one whose process is gone: taken at the next heartbeat.
    await shared.releaseLease("source:app", "alive");
    expect(await shared.takeLease("source:app", "gone", clock.now(), 10_000)).toBe(true);
    await clock.advance(2_000);
    await eventually(() => store.polls === 1, "the poll of the worker that took it over");
    expect((await w.status()).sources[0]!.polledBy).toBe("w");
  });
});
