/**
 * A worker's cluster pass (src/runs/cluster.ts) over a memory storage, with an executor that stands
 * still where the real one is asynchronous: its recovery hosts a claimed run at once and commits the
 * claim later (a claim on the run's first transition), so what the pass reads in between is fixed.
 */
import { describe, expect, it } from "vitest";
import type { Executor } from "../../../src/engine/executor.js";
import { createLogger } from "../../../src/logging.js";
import { ClusterWorker } from "../../../src/runs/cluster.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { runRecord } from "../../../src/testing/records.js";
import { deadExecutor, eventually, tempDir, within } from "../../helpers.js";

const ME = "here:1:me";
const long = Date.now() - 3_600_000;

/** A pipeline run as a dead worker (on another host, silent for an hour) left it, mid-way. */
async function leftByDeadWorker(storage: MemoryStorage, id: string): Promise<void> {
  await deadExecutor(storage);
  await runOwnedBy(storage, id, "ghost");
}

/** Another worker, alive: "rival". */
async function liveRival(storage: MemoryStorage): Promise<void> {
  await storage.upsertExecutor({
    id: "rival",
    host: "elsewhere",
    pid: 2,
    startedAt: Date.now(),
    heartbeatAt: Date.now(),
    maxRuns: null,
  });
}

/** A pipeline run mid-way, owned by `owner`. */
async function runOwnedBy(storage: MemoryStorage, id: string, owner: string): Promise<void> {
  const record = runRecord(id, {
    input: { run: { file: "/p/deploy.yml", source: "jobs: {}", inputs: {}, tiers: [] } },
    owner,
    createdAt: long,
    updatedAt: long,
  });
  expect(await storage.commit([{ runId: id, owner, create: record }])).toEqual(["ok"]);
}

/**
 * One pass of a worker whose executor's recovery does `claim` (nothing: the claim is still on its
 * way) and holds nothing in memory; returns the runs hosted once the pass is over.
 */
async function onePass(storage: MemoryStorage, claim: () => Promise<void>): Promise<Set<string>> {
  const hosted = new Set<string>();
  let recovered!: () => void;
  const recovering = new Promise<void>((resolve) => (recovered = resolve));
  const executor = {
    owner: ME,
    leaseMs: 10_000,
    activeRuns: 0,
    holds: () => false,
    recover: async () => {
      await claim();
      recovered();
      return 1;
    },
  } as unknown as Executor;
  const worker = new ClusterWorker({
    storage,
    executor,
    dataDir: tempDir(),
    logger: createLogger({ level: "silent" }),
    maxRuns: Number.POSITIVE_INFINITY,
    intervalMs: 60_000,
    hosted: (id) => hosted.has(id),
    hostedIds: () => [...hosted],
    take: async (record) => void hosted.add(record.id),
    unhost: (id) => void hosted.delete(id),
  });
  await worker.start();
  await within(recovering, "the pass's recovery");
  await worker.stop(); // waits for the pass to end
  return hosted;
}

describe("a worker's cluster pass", () => {
  it("keeps a run taken over from a dead worker while its claim is on its way", async () => {
    const storage = new MemoryStorage();
    await leftByDeadWorker(storage, "r-1");
    // Hosted in memory, its claim not committed yet: the run is still the dead worker's in storage.
    const hosted = await onePass(storage, async () => {});
    // Let go here, its saga would be unregistered while the executor runs it, and once it left
    // memory nobody would continue it (owned by this live worker).
    expect([...hosted]).toEqual(["r-1"]);
  });

  it("keeps a run whose claim committed", async () => {
    const storage = new MemoryStorage();
    await leftByDeadWorker(storage, "r-1");
    const hosted = await onePass(storage, async () => {
      await storage.claim({ runId: "r-1", owner: ME, takeOverFrom: ["ghost"] });
    });
    expect([...hosted]).toEqual(["r-1"]);
  });

  it("lets go of a run another live worker claimed first", async () => {
    const storage = new MemoryStorage();
    await leftByDeadWorker(storage, "r-1");
    const hosted = await onePass(storage, async () => {
      await liveRival(storage);
      await storage.claim({ runId: "r-1", owner: "rival", takeOverFrom: ["ghost"] });
    });
    expect([...hosted]).toEqual([]);
  });

  it("takes back a run this worker owns but no longer hosts (no other worker takes a live one's runs)", async () => {
    const storage = new MemoryStorage();
    // As a creation leaves it whose commit reached the database while its answer was lost.
    await runOwnedBy(storage, "r-1", ME);
    const hosted = await onePass(storage, async () => {});
    expect([...hosted]).toEqual(["r-1"]);
  });

  it("leaves alone a run it owns and holds in memory", async () => {
    const storage = new MemoryStorage();
    await runOwnedBy(storage, "r-1", ME);
    const taken: string[] = [];
    const asked: string[] = [];
    const holds = (id: string) => asked.push(id) > 0;
    const worker = new ClusterWorker({
      storage,
      executor: { owner: ME, leaseMs: 10_000, activeRuns: 1, holds } as unknown as Executor,
      dataDir: tempDir(),
      logger: createLogger({ level: "silent" }),
      maxRuns: Number.POSITIVE_INFINITY,
      intervalMs: 60_000,
      hosted: () => false,
      hostedIds: () => [],
      take: async (record) => void taken.push(record.id),
      unhost: () => {},
    });
    await worker.start();
    await eventually(() => asked.includes("r-1"), "the pass to look at the run");
    await worker.stop(); // waits for the pass to end
    expect(taken).toEqual([]);
  });

  it("lets go of runs parked here that another worker continued or ended, and keeps the others", async () => {
    const storage = new MemoryStorage();
    await liveRival(storage);
    // Parked here (owned by nobody); then a signal through the rival woke one, another ended there.
    for (const id of ["parked", "woken", "ended"]) {
      const record = runRecord(id, { status: "waiting", owner: null, createdAt: long, updatedAt: long });
      expect(await storage.commit([{ runId: id, owner: ME, create: record }])).toEqual(["ok"]);
      expect(await storage.commit([{ runId: id, owner: ME, run: { release: true } }])).toEqual(["ok"]);
    }
    expect(await storage.claim({ runId: "woken", owner: "rival" })).toBeDefined();
    expect(await storage.claim({ runId: "ended", owner: "rival" })).toBeDefined();
    expect(
      await storage.commit([{ runId: "ended", owner: "rival", run: { status: "completed", endedAt: 1 } }]),
    ).toEqual(["ok"]);
    // "submitted": hosted here, its creation not committed yet.
    const hosted = new Set(["parked", "woken", "ended", "submitted"]);
    const worker = new ClusterWorker({
      storage,
      executor: { owner: ME, leaseMs: 10_000, activeRuns: 0, holds: () => false } as unknown as Executor,
      dataDir: tempDir(),
      logger: createLogger({ level: "silent" }),
      maxRuns: 0,
      intervalMs: 60_000,
      hosted: (id) => hosted.has(id),
      hostedIds: () => [...hosted],
      take: async () => {},
      unhost: (id) => void hosted.delete(id),
    });
    await worker.start();
    await eventually(
      () => hosted.size === 2,
      () => `two runs let go of; hosted: ${[...hosted]}`,
    );
    await worker.stop();
    expect([...hosted].sort()).toEqual(["parked", "submitted"]);
  });
});
