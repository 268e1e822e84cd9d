/**
 * Locks shared by the workers of one database (scheduler/cluster-locks.ts) over the memory lock store:
 * never more holders than slots across workers, fair order across workers and keys, explanations
 * naming the holder's worker, withdrawn and dead workers' rows freed.
 */
import { afterEach, describe, expect, it } from "vitest";
import { ClusterLocks } from "../../../src/scheduler/cluster-locks.js";
import { clusterPass } from "../../../src/scheduler/cluster-order.js";
import type { ResolvedTicket } from "../../../src/scheduler/types.js";
import type { LockView, LockWaiterRecord } from "../../../src/storage/locks.js";
import { MemoryLockStore } from "../../../src/storage/memory-locks.js";
import { eventually, within } from "../../wait.js";

const opened: ClusterLocks[] = [];
afterEach(async () => {
  await Promise.all(opened.splice(0).map((c) => c.close()));
});

function worker(store: MemoryLockStore, owner: string, dead: () => string[] = () => []): ClusterLocks {
  const cluster = new ClusterLocks({
    store,
    owner,
    capacity: { swarm: 1, pool: 2 },
    deadOwners: async () => dead(),
    pollMs: 5,
    sweepMs: 5,
  });
  opened.push(cluster);
  return cluster;
}

function ticket(runId: string, extra: Partial<ResolvedTicket> = {}): ResolvedTicket {
  return {
    runId,
    runName: null,
    pipeline: "deploy",
    job: "deploy",
    key: "deploy",
    weight: 1,
    priority: 0,
    ...extra,
  };
}

describe("cluster locks", () => {
  it("never admits two holders of a 1-slot lock across workers, and every request gets it in the end", async () => {
    const store = new MemoryLockStore();
    const workers = [worker(store, "w1"), worker(store, "w2"), worker(store, "w3")];
    let inside = 0;
    let most = 0;
    const runs = Array.from({ length: 30 }, async (_, i) => {
      const grant = await workers[i % 3]!.acquire(ticket(`r${i}`), "deploy", ["swarm"]);
      inside++;
      most = Math.max(most, inside);
      await new Promise((resolve) => setImmediate(resolve));
      inside--;
      grant.release();
    });
    await Promise.all(runs);
    expect(most).toBe(1);
    await eventually(async () => (await store.view()).slots.length === 0, "every slot released");
  });

  it("says who holds the lock on which worker, and the place in line", async () => {
    const store = new MemoryLockStore();
    const [a, b] = [worker(store, "w1"), worker(store, "w2")];
    const held = await a.acquire(ticket("r1", { runName: "first" }), "deploy", ["swarm"]);
    const waiting = b.acquire(ticket("r2"), "deploy", ["swarm"]);
    const why = await eventually(() => a.explain("r2", "deploy"), "the waiter seen by the other worker");
    expect(why.reason).toMatch(
      /^waits for lock swarm \(1 of 1 held by run r1 \(first\) job deploy since \S+ on worker w1\); 1st in line$/,
    );
    expect(a.holders("swarm")).toMatchObject([{ runId: "r1", worker: "w1" }]);
    held.release();
    (await waiting).release();
  });

  it("withdraws an aborted request, and frees the slots and rows of a dead worker", async () => {
    const store = new MemoryLockStore();
    let dead: string[] = [];
    const a = worker(store, "w1");
    const b = worker(store, "w2", () => dead);
    await a.acquire(ticket("r1"), "deploy", ["swarm"]);
    const abort = new AbortController();
    const aborted = b.acquire(ticket("r2"), "deploy", ["swarm"], abort.signal);
    await eventually(async () => (await store.view()).waiters.length === 1, "r2 queued");
    abort.abort(new Error("cancelled"));
    await expect(aborted).rejects.toThrow("cancelled");
    await eventually(async () => (await store.view()).waiters.length === 0, "r2 withdrawn");
    // w1 dies holding the lock: w2's sweep frees it, and w2's next request gets it.
    dead = ["w1"];
    const next = await b.acquire(ticket("r3"), "deploy", ["swarm"]);
    expect((await store.view()).slots.map((s) => s.owner)).toEqual(["w2"]);
    next.release();
  });

  it("is granted the slots a take wrote although its answer was lost (the database restarting)", async () => {
    const store = new MemoryLockStore();
    const take = store.take.bind(store);
    let lost = 0;
    store.take = async (decide, now) => {
      const taken = await take(decide, now);
      if (taken.length === 0 || lost++ > 0) return taken;
      throw new Error("Connection terminated unexpectedly");
    };
    const a = worker(store, "w1");
    const grant = await within(a.acquire(ticket("r1"), "deploy", ["pool", "swarm"]), "the grant");
    expect(lost).toBe(1);
    expect((await store.view()).slots.map((s) => s.lock).sort()).toEqual(["pool", "swarm"]);
    grant.release();
    await eventually(async () => (await store.view()).slots.length === 0, "its slots released");
  });
});

describe("cluster order", () => {
  const row = (holder: string, lock: string, extra: Partial<LockWaiterRecord> = {}): LockWaiterRecord => ({
    lock,
    holder,
    runId: `r-${holder}`,
    runName: null,
    pipeline: "p",
    action: "j",
    job: "j",
    owner: "w1",
    key: "p",
    weight: 1,
    priority: 0,
    since: 10,
    ...extra,
  });

  it("goes by priority, then the key holding the least, then arrival, across workers", () => {
    const view: LockView = {
      slots: [
        {
          lock: "pool",
          slot: 0,
          holder: "x",
          runId: "rx",
          runName: null,
          pipeline: "a",
          action: "j",
          job: "j",
          owner: "w9",
          key: "a",
          since: 1,
        },
      ],
      waiters: [
        row("a1", "pool", { key: "a", since: 1, owner: "w1" }),
        row("b1", "pool", { key: "b", since: 2, owner: "w2" }),
        row("c1", "pool", { key: "c", since: 3, owner: "w3", priority: 5 }),
      ],
    };
    const pass = clusterPass(view, { pool: 2 }, 100, 60_000);
    // One slot free: the high-priority request takes it; then key b (holding nothing) before key a.
    expect(pass.granted.map((r) => r.holder)).toEqual(["c1"]);
    expect([...pass.waiting.keys()]).toEqual(["b1", "a1"]);
    expect(pass.waiting.get("a1")!.explanation.reason).toMatch(/2nd in line/);
  });

  it("a request blocked on one lock keeps the free slot of its other lock from those behind it", () => {
    const view: LockView = {
      slots: [],
      waiters: [
        row("first", "swarm", { since: 1 }),
        row("first", "pool", { since: 1 }),
        row("late", "pool", { since: 2 }),
      ],
    };
    const blocked = clusterPass(view, { swarm: 0, pool: 1 }, 100, 60_000);
    expect(blocked.granted).toEqual([]);
    expect(blocked.waiting.get("late")!.explanation.reason).toMatch(
      /waits behind a reservation for lock pool by run r-first job j on worker w1/,
    );
  });
});
