/** Admission: all-or-nothing grants, releases on every path, no head-of-line blocking, reservations, fairness, priority, disk, explanations. */
import { afterEach, describe, expect, it, vi } from "vitest";
import { clockTime } from "../../../src/format.js";
import {
  Admission,
  AdmissionError,
  type AdmissionOptions,
  type Grant,
} from "../../../src/scheduler/admission.js";
import type { Capacity } from "../../../src/scheduler/types.js";
import { fakeClock, flush, GiB, need, type Tracked, ticket, track } from "./helpers.js";

/** Every pass of the policy, with how many requests were waiting: the work admission does, counted. */
const passes = vi.hoisted(() => [] as number[]);
vi.mock("../../../src/scheduler/policy.js", async (importOriginal) => {
  const policy = await importOriginal<typeof import("../../../src/scheduler/policy.js")>();
  return {
    ...policy,
    policyPass: (input: Parameters<typeof policy.policyPass>[0]) => {
      const waiting = [...input.waiting];
      passes.push(waiting.length);
      return policy.policyPass({ ...input, waiting });
    },
  };
});

const open: Admission[] = [];

function admission(capacity: Partial<Capacity>, options: Partial<AdmissionOptions> = {}) {
  const clock = fakeClock();
  const a = new Admission({
    capacity: { memoryBytes: 16 * GiB, cpu: 2, diskBytes: 50 * GiB, locks: {}, ...capacity },
    now: clock.now,
    ...options,
  });
  open.push(a);
  return { a, clock };
}

afterEach(() => {
  for (const a of open.splice(0)) a.close();
  vi.useRealTimers();
});

/** Asserts nothing is held or waiting: the end state of every path. */
function expectIdle(a: Admission): void {
  const snapshot = a.snapshot();
  expect(snapshot.inUse.memoryBytes).toBe(0);
  expect(snapshot.inUse.cpu).toBe(0);
  expect(snapshot.inUse.diskBytes).toBe(0);
  for (const slots of Object.values(snapshot.inUse.locks)) expect(slots).toBe(0);
  expect(snapshot.granted).toBe(0);
  expect(snapshot.waiting).toBe(0);
}

async function granted(tracked: Tracked): Promise<Grant> {
  await flush();
  if (tracked.error !== undefined) throw tracked.error;
  expect(tracked.grant, "expected the request to be granted").toBeDefined();
  return tracked.grant!;
}

describe("granting", () => {
  it("grants all of a need at once, and holds nothing of it while any part is short", async () => {
    const { a } = admission({ memoryBytes: 8 * GiB, locks: { swarm: 1 } });
    const big = await a.acquire(ticket("r1"), need({ memoryBytes: 6 * GiB }));
    const both = track(a.acquire(ticket("r2"), need({ memoryBytes: 4 * GiB, locks: ["swarm"] })));
    await flush();
    expect(both.settled).toBe(false);
    // Waiting for memory, it holds neither memory nor the lock.
    expect(a.snapshot().inUse).toMatchObject({ memoryBytes: 6 * GiB, locks: { swarm: 0 } });

    big.release();
    const grant = await granted(both);
    expect(a.snapshot().inUse).toMatchObject({ memoryBytes: 4 * GiB, locks: { swarm: 1 } });
    expect(grant.need).toEqual(need({ memoryBytes: 4 * GiB, locks: ["swarm"] }));
    grant.release();
    expectIdle(a);
  });

  it("grants a need of nothing at once, even with others waiting", async () => {
    const { a } = admission({ cpu: 1 });
    const held = await a.acquire(ticket("r1"), need({ cpu: 1 }));
    const waiting = track(a.acquire(ticket("r2"), need({ cpu: 1 })));
    const nothing = await a.acquire(ticket("r3"), need());
    expect(a.snapshot().waiting).toBe(1);
    nothing.release();
    held.release();
    (await granted(waiting)).release();
    expectIdle(a);
  });

  it("reports how long a grant waited", async () => {
    const { a, clock } = admission({ cpu: 1 });
    const held = await a.acquire(ticket("r1"), need({ cpu: 1 }));
    const waiting = track(a.acquire(ticket("r2"), need({ cpu: 1 })));
    clock.advance(2_500);
    held.release();
    const grant = await granted(waiting);
    expect(grant.waitedMs).toBe(2_500);
    expect(grant.since).toBe(clock.now());
    expect(grant.ticket).toMatchObject({ key: "ci", weight: 1, priority: 0 });
  });

  it("reports what a grant waited for: what was short when it began to wait, else all it needs", async () => {
    const { a } = admission({ memoryBytes: 4 * GiB, cpu: 2, locks: { swarm: 1 } });
    const first = await a.acquire(ticket("r1"), need({ cpu: 1, locks: ["swarm"] }));
    expect(first.waitedFor).toEqual([]);
    // Short of the lock only: cpu is free.
    const lock = track(a.acquire(ticket("r2"), need({ cpu: 1, locks: ["swarm"] })));
    // r5 is short of nothing (1 GiB is free), but r4 ahead of it reserved that memory: it waits for all it needs.
    const big = await a.acquire(ticket("r3"), need({ memoryBytes: 3 * GiB }));
    const reserving = track(a.acquire(ticket("r4"), need({ memoryBytes: 4 * GiB })));
    const behind = track(a.acquire(ticket("r5"), need({ memoryBytes: 1 * GiB })));
    first.release();
    expect((await granted(lock)).waitedFor).toEqual(["lock:swarm"]);
    big.release();
    const reserved = await granted(reserving);
    expect(reserved.waitedFor).toEqual(["memory"]);
    reserved.release();
    expect((await granted(behind)).waitedFor).toEqual(["memory"]);
  });

  it("treats fractional cpu exactly enough for 0.1 + 0.2 to fit in 0.3", async () => {
    const { a } = admission({ cpu: 0.3 });
    const one = await a.acquire(ticket("r1"), need({ cpu: 0.1 }));
    const two = await a.acquire(ticket("r2"), need({ cpu: 0.2 }));
    one.release();
    two.release();
    expectIdle(a);
  });
});

describe("releasing on every path", () => {
  it("release is idempotent: a second call frees nothing more", async () => {
    const { a } = admission({ cpu: 2 });
    const one = await a.acquire(ticket("r1"), need({ cpu: 1 }));
    const two = await a.acquire(ticket("r2"), need({ cpu: 1 }));
    one.release();
    one.release();
    expect(a.snapshot().inUse.cpu).toBe(1);
    two.release();
    expectIdle(a);
  });

  it("an aborted waiter is removed, rejected with the signal's reason, and its reservation freed", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB });
    const held = await a.acquire(ticket("r1"), need({ memoryBytes: 8 * GiB }));
    const controller = new AbortController();
    const large = track(a.acquire(ticket("large"), need({ memoryBytes: 12 * GiB }), controller.signal));
    // Behind the large one's reservation even though 8 GiB are free.
    const small = track(a.acquire(ticket("small"), need({ memoryBytes: 2 * GiB })));
    await flush();
    expect(small.settled).toBe(false);

    const reason = new Error("run cancelled");
    controller.abort(reason);
    await flush();
    expect(large.error).toBe(reason);
    (await granted(small)).release();
    held.release();
    expectIdle(a);
  });

  it("an already aborted signal rejects at once without queueing", async () => {
    const { a } = admission({});
    const controller = new AbortController();
    controller.abort(new Error("too late"));
    await expect(a.acquire(ticket("r1"), need({ cpu: 1 }), controller.signal)).rejects.toThrow("too late");
    expectIdle(a);
  });

  it("aborting after the grant does nothing: the grant stays until released", async () => {
    const { a } = admission({});
    const controller = new AbortController();
    const grant = await a.acquire(ticket("r1"), need({ cpu: 1 }), controller.signal);
    controller.abort();
    expect(a.snapshot().inUse.cpu).toBe(1);
    grant.release();
    expectIdle(a);
  });

  it("a rejected request holds nothing and leaves the others alone", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB });
    const held = await a.acquire(ticket("r1"), need({ memoryBytes: 4 * GiB }));
    await expect(a.acquire(ticket("r2"), need({ memoryBytes: 32 * GiB, cpu: 1 }))).rejects.toThrow(
      AdmissionError,
    );
    expect(a.snapshot()).toMatchObject({ granted: 1, waiting: 0, inUse: { memoryBytes: 4 * GiB, cpu: 0 } });
    held.release();
    expectIdle(a);
  });

  it("close rejects every waiter as shutting down, stops the recheck timer, and grants stay releasable", async () => {
    vi.useFakeTimers();
    const { a } = admission({ cpu: 1 }, { recheckMs: 1_000, freeDisk: () => 100 * GiB });
    expect(vi.getTimerCount()).toBe(1);
    const held = await a.acquire(ticket("r1"), need({ cpu: 1 }));
    const waiting = track(a.acquire(ticket("r2", { job: "test" }), need({ cpu: 1 })));
    a.close();
    await vi.runAllTimersAsync();
    expect(vi.getTimerCount()).toBe(0);
    expect(waiting.error).toBeInstanceOf(AdmissionError);
    expect((waiting.error as AdmissionError).reason).toBe("shutting_down");
    expect((waiting.error as Error).message).toBe(
      "admission is shutting down: job test of run r2 was still waiting for resources and did not start",
    );
    await expect(a.acquire(ticket("r3"), need({ cpu: 1 }))).rejects.toThrow(/shutting down/);
    held.release();
    expectIdle(a);
  });
});

describe("no head-of-line blocking (story 3)", () => {
  it("light runs proceed while a heavy run holds swarm: 1 and other heavy runs queue for it", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB, cpu: 2, locks: { swarm: 1 } });
    const heavy = need({ memoryBytes: 4 * GiB, cpu: 1, locks: ["swarm"] });
    const first = await a.acquire(ticket("heavy1", { key: "recipe-a" }), heavy);
    const queued = [2, 3, 4].map((n) => track(a.acquire(ticket(`heavy${n}`, { key: `recipe-${n}` }), heavy)));

    // Twenty light runs, one after another, each needs memory and the one cpu left.
    for (let n = 0; n < 20; n++) {
      const light = await a.acquire(
        ticket(`light${n}`, { key: "light" }),
        need({ memoryBytes: 2 * GiB, cpu: 1 }),
      );
      light.release();
    }
    await flush();
    expect(queued.every((q) => !q.settled)).toBe(true);

    // The lock goes to the heavy runs in arrival order.
    first.release();
    const second = await granted(queued[0]!);
    expect(queued[1]!.settled).toBe(false);
    second.release();
    (await granted(queued[1]!)).release();
    (await granted(queued[2]!)).release();
    expectIdle(a);
  });

  it("once the lock frees, the heavy run next in line reserves the memory light runs hold, and starts when they end", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB, cpu: 8, locks: { swarm: 1 } });
    const first = await a.acquire(ticket("heavy1"), need({ memoryBytes: 4 * GiB, locks: ["swarm"] }));
    const next = track(a.acquire(ticket("heavy2"), need({ memoryBytes: 10 * GiB, locks: ["swarm"] })));
    // heavy2 waits for the lock, so it reserves no memory: five light runs take 10 GiB meanwhile.
    const lights: Grant[] = [];
    for (let n = 1; n <= 5; n++)
      lights.push(await a.acquire(ticket(`light${n}`), need({ memoryBytes: 2 * GiB })));

    first.release();
    await flush();
    // heavy2 can have the lock now but only 6 GiB of memory: it reserves both, so light6 waits.
    expect(next.settled).toBe(false);
    const light6 = track(a.acquire(ticket("light6"), need({ memoryBytes: 2 * GiB })));
    await flush();
    expect(light6.settled).toBe(false);
    const reason = a.explain().find((e) => e.ticket.runId === "light6")!.reason;
    expect(reason).toBe(
      "waits behind a reservation for memory by run heavy2 job build (needs 10 GiB, 6 GiB free); 2nd in line",
    );

    lights[0]!.release();
    await flush();
    expect(next.settled).toBe(false);
    lights[1]!.release();
    const grant = await granted(next);
    expect(light6.settled).toBe(false);
    grant.release();
    (await granted(light6)).release();
    for (const light of lights) light.release();
    expectIdle(a);
  });
});

describe("reservations: small jobs cannot starve a large one", () => {
  it("a stream of small jobs arriving and releasing does not keep a 12 GiB job waiting", async () => {
    const { a, clock } = admission({ memoryBytes: 16 * GiB, cpu: 64 });
    const small = need({ memoryBytes: 2 * GiB, cpu: 1 });
    const running: Grant[] = [];
    for (let n = 0; n < 6; n++) running.push(await a.acquire(ticket(`s${n}`), small));
    const large = track(a.acquire(ticket("large"), need({ memoryBytes: 12 * GiB, cpu: 1 })));
    const pending: Tracked[] = [];
    let releases = 0;
    // Each step: the oldest running small job ends and a new one arrives. Without a reservation the
    // newcomer would take the 2 GiB just freed, forever.
    for (let n = 6; n < 40 && !large.settled; n++) {
      clock.advance(1_000);
      running.shift()!.release();
      releases++;
      pending.push(track(a.acquire(ticket(`s${n}`), small)));
      await flush();
    }
    expect(large.grant).toBeDefined();
    // 4 GiB were free when it arrived: four 2 GiB releases make its 12 GiB.
    expect(releases).toBe(4);
    // No small job that arrived after it started before it.
    expect(pending.filter((p) => p.grant !== undefined)).toHaveLength(0);
    large.grant!.release();
    for (const grant of running) grant.release();
    for (const p of pending) (await granted(p)).release();
    expectIdle(a);
  });

  it("a small job may start ahead of a blocked large one with capacity the large one does not need", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB, cpu: 4 });
    const held = await a.acquire(ticket("r1"), need({ memoryBytes: 8 * GiB, cpu: 1 }));
    const large = track(a.acquire(ticket("large"), need({ memoryBytes: 12 * GiB, cpu: 1 })));
    // Needs cpu only: the large one reserved 1 of the 3 free cpus, 2 are left.
    const cpuOnly = await a.acquire(ticket("cpu-only"), need({ cpu: 2 }));
    const memory = track(a.acquire(ticket("memory"), need({ memoryBytes: 1 * GiB })));
    await flush();
    expect(large.settled).toBe(false);
    expect(memory.settled).toBe(false);
    cpuOnly.release();
    held.release();
    (await granted(large)).release();
    (await granted(memory)).release();
    expectIdle(a);
  });
});

describe("fairness across keys", () => {
  /** Releases the oldest grant, one at a time, and records which key each new grant went to. */
  async function drain(requests: Array<{ key: string; tracked: Tracked }>, steps: number) {
    const order: string[] = [];
    const seen = new Set<Tracked>();
    const running: Grant[] = [];
    const collect = async () => {
      await flush();
      for (const { key, tracked } of requests) {
        if (tracked.grant && !seen.has(tracked)) {
          seen.add(tracked);
          order.push(key);
          running.push(tracked.grant);
        }
      }
    };
    await collect();
    for (let step = 0; step < steps && running.length > 0; step++) {
      running.shift()!.release();
      await collect();
    }
    for (const grant of running) grant.release();
    return order;
  }

  it("a burst of 20 from key A does not hold up key B's 2 requests", async () => {
    const { a } = admission({ cpu: 2 });
    const requests: Array<{ key: string; tracked: Tracked }> = [];
    for (let n = 0; n < 20; n++) {
      requests.push({ key: "A", tracked: track(a.acquire(ticket(`a${n}`, { key: "A" }), need({ cpu: 1 }))) });
    }
    for (let n = 0; n < 2; n++) {
      requests.push({ key: "B", tracked: track(a.acquire(ticket(`b${n}`, { key: "B" }), need({ cpu: 1 }))) });
    }
    const order = await drain(requests, 100);
    expect(order).toHaveLength(22);
    // A's first two took the free capacity on arrival; B's two come within the next three grants.
    expect(order.slice(0, 5).filter((key) => key === "B")).toHaveLength(2);
    expectIdle(a);
  });

  it("with weights 2:1 the grant counts follow the weights", async () => {
    // Weights show in steady state only when a key can hold several slots at once: with 6 slots
    // A (weight 2) settles at 4 and B at 2.
    const { a } = admission({ cpu: 6 }, { weights: { A: 2 } });
    const requests: Array<{ key: string; tracked: Tracked }> = [];
    for (let n = 0; n < 60; n++) {
      for (const key of ["B", "A"]) {
        requests.push({ key, tracked: track(a.acquire(ticket(`${key}${n}`, { key }), need({ cpu: 1 }))) });
      }
    }
    const order = await drain(requests, 60);
    const window = order.slice(6, 66);
    const countA = window.filter((key) => key === "A").length;
    const countB = window.length - countA;
    expect(countA / countB).toBeGreaterThanOrEqual(1.8);
    expect(countA / countB).toBeLessThanOrEqual(2.2);
    a.close();
  });

  it("equal weights share equally", async () => {
    const { a } = admission({ cpu: 6 });
    const requests: Array<{ key: string; tracked: Tracked }> = [];
    for (let n = 0; n < 60; n++) {
      for (const key of ["A", "A", "B"]) {
        requests.push({ key, tracked: track(a.acquire(ticket(`${key}${n}`, { key }), need({ cpu: 1 }))) });
      }
    }
    const order = await drain(requests, 60);
    const window = order.slice(6, 66);
    const countA = window.filter((key) => key === "A").length;
    expect(countA).toBe(30);
    a.close();
  });

  it("a ticket's weight overrides the configured one", async () => {
    const { a } = admission({}, { weights: { A: 2 } });
    const grant = await a.acquire(ticket("r1", { key: "A", weight: 3 }), need({ cpu: 1 }));
    expect(grant.ticket.weight).toBe(3);
    const other = await a.acquire(ticket("r2", { key: "A" }), need({ cpu: 1 }));
    expect(other.ticket.weight).toBe(2);
    grant.release();
    other.release();
  });

  it("the key defaults to the pipeline's name", async () => {
    const { a } = admission({});
    const grant = await a.acquire(ticket("r1", { pipeline: "recipe-ci" }), need({ cpu: 1 }));
    expect(grant.ticket.key).toBe("recipe-ci");
    grant.release();
  });
});

describe("priority and aging", () => {
  it("a higher priority goes first", async () => {
    const { a, clock } = admission({ cpu: 1 });
    const held = await a.acquire(ticket("holder"), need({ cpu: 1 }));
    const low = track(a.acquire(ticket("low"), need({ cpu: 1 })));
    clock.advance(1_000);
    const high = track(a.acquire(ticket("high", { priority: 5 }), need({ cpu: 1 })));
    held.release();
    (await granted(high)).release();
    (await granted(low)).release();
    expectIdle(a);
  });

  it("waiting raises the priority by one every agingMs, so low priority is not starved", async () => {
    const { a, clock } = admission({ cpu: 1 }, { agingMs: 1_000 });
    const held = await a.acquire(ticket("holder"), need({ cpu: 1 }));
    const old = track(a.acquire(ticket("old"), need({ cpu: 1 })));
    clock.advance(10_500);
    const urgent = track(a.acquire(ticket("urgent", { priority: 5 }), need({ cpu: 1 })));
    const explained = a.explain();
    expect(explained.map((e) => [e.ticket.runId, e.effectivePriority, e.position])).toEqual([
      ["old", 10, 1],
      ["urgent", 5, 2],
    ]);
    held.release();
    const grant = await granted(old);
    expect(urgent.settled).toBe(false);
    grant.release();
    (await granted(urgent)).release();
    expectIdle(a);
  });

  it("priority beats fair share: a high-priority request of a busy key goes first", async () => {
    const { a } = admission({ cpu: 2 });
    const busy = await a.acquire(ticket("busy", { key: "A" }), need({ cpu: 1 }));
    const blocker = await a.acquire(ticket("blocker", { key: "C" }), need({ cpu: 1 }));
    const idle = track(a.acquire(ticket("idle", { key: "B" }), need({ cpu: 1 })));
    const urgent = track(a.acquire(ticket("urgent", { key: "A", priority: 1 }), need({ cpu: 1 })));
    blocker.release();
    const grant = await granted(urgent);
    expect(idle.settled).toBe(false);
    grant.release();
    (await granted(idle)).release();
    busy.release();
    expectIdle(a);
  });
});

describe("requests that can never be granted fail at once", () => {
  const cases: Array<[string, Parameters<typeof need>[0], string]> = [
    [
      "memory",
      { memoryBytes: 32 * GiB },
      "job build of run r1 (nightly) needs 32 GiB of memory but the pool has 16 GiB (lower the job's `resources.memory` or raise `resources.memory` in the server config)",
    ],
    [
      "cpu",
      { cpu: 4 },
      "job build of run r1 (nightly) needs 4 cpu but the pool has 2 cpu (lower the job's `resources.cpu` or raise `resources.cpu` in the server config)",
    ],
    [
      "disk",
      { diskBytes: 60 * GiB },
      "job build of run r1 (nightly) needs 60 GiB of disk but the pool has 50 GiB (lower the job's `resources.disk` or raise `resources.disk` in the server config)",
    ],
    [
      "an unknown lock",
      { locks: ["swarn"] },
      "job build of run r1 (nightly) needs lock `swarn`, which the server config does not declare (declared: `swarm` and `docker`) (did you mean `swarm`?)",
    ],
  ];
  for (const [what, partial, message] of cases) {
    it(`more ${what} than there is`, async () => {
      const { a } = admission({ locks: { swarm: 1, docker: 2 } });
      const error = await a
        .acquire(ticket("r1", { runName: "nightly" }), need(partial))
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(AdmissionError);
      expect((error as Error).message).toBe(message);
      expectIdle(a);
    });
  }

  it("a lock of capacity 0, and every problem of one request at once", async () => {
    const { a } = admission({ locks: { off: 0 } });
    const error = (await a
      .acquire(ticket("r1"), need({ memoryBytes: 20 * GiB, locks: ["off"] }))
      .catch((e: unknown) => e)) as AdmissionError;
    expect(error.reason).toBe("too_large");
    expect(error.message).toContain("needs 20 GiB of memory but the pool has 16 GiB");
    expect(error.message).toContain("; and needs lock `off`, whose capacity in the server config is 0");
  });

  it("negative or non-numeric needs are refused", async () => {
    const { a } = admission({});
    const error = (await a
      .acquire(ticket("r1"), need({ cpu: -1 }))
      .catch((e: unknown) => e)) as AdmissionError;
    expect(error.reason).toBe("invalid");
    expect(error.message).toBe("job build of run r1 `resources.cpu` must be 0 or more, got -1");
  });

  it("an invalid capacity is refused when admission is made", () => {
    expect(
      () => new Admission({ capacity: { memoryBytes: -1, cpu: 1, diskBytes: 0, locks: { x: 1.5 } } }),
    ).toThrow(
      "admission: memory capacity must be 0 or more, got -1; lock x capacity must be a whole number 0 or more, got 1.5",
    );
  });
});

describe("disk", () => {
  it("waits while the volume is short but disk granted to running jobs may be freed, then starts", async () => {
    let volumeFree = 8 * GiB;
    const { a } = admission({ diskBytes: 50 * GiB }, { freeDisk: () => volumeFree });
    const writer = await a.acquire(ticket("r1", { job: "export" }), need({ diskBytes: 5 * GiB }));
    // 8 GiB free, but r1 may still write 5 of them: 3 GiB usable.
    const next = track(a.acquire(ticket("r2"), need({ diskBytes: 6 * GiB })));
    await flush();
    expect(next.settled).toBe(false);
    const [explanation] = a.explain();
    expect(explanation!.blockers).toMatchObject([
      { resource: "disk", need: 6 * GiB, free: 3 * GiB, volumeFree: 8 * GiB, position: 1 },
    ]);
    expect(explanation!.reason).toMatch(
      /^waits for disk \(needs 6 GiB, 8 GiB free on the work volume, 5 GiB of it granted to run r1 job export since \d\d:\d\d:\d\d \(5 GiB\)\); 1st in line$/,
    );
    expect(a.snapshot().free.diskBytes).toBe(3 * GiB);

    // r1 wrote its 5 GiB (the volume had 3 GiB free), then cleaned up and ended.
    volumeFree = 3 * GiB;
    expect(a.snapshot().free.diskBytes).toBe(0);
    volumeFree = 8 * GiB;
    writer.release();
    (await granted(next)).release();
    expectIdle(a);
  });

  it("fails at once when the volume is short and nothing running holds disk", async () => {
    const { a } = admission({}, { freeDisk: () => 3 * GiB });
    await expect(a.acquire(ticket("r1"), need({ diskBytes: 10 * GiB }))).rejects.toThrow(
      "job build of run r1 needs 10 GiB of disk, 3 GiB free on the work volume, and no running job holds disk that could be freed (free space on the volume or lower the job's `resources.disk`)",
    );
    expectIdle(a);
  });

  it("fails a waiter when the disk holders end without freeing enough", async () => {
    let volumeFree = 8 * GiB;
    const { a } = admission({}, { freeDisk: () => volumeFree });
    const writer = await a.acquire(ticket("r1"), need({ diskBytes: 5 * GiB }));
    const next = track(a.acquire(ticket("r2"), need({ diskBytes: 6 * GiB })));
    // r1 wrote its 5 GiB and kept them (an artifact for a later job).
    volumeFree = 3 * GiB;
    writer.release();
    await flush();
    expect(next.error).toBeInstanceOf(AdmissionError);
    expect((next.error as AdmissionError).reason).toBe("disk_full");
    expect((next.error as Error).message).toContain("needs 6 GiB of disk, 3 GiB free on the work volume");
    expectIdle(a);
  });

  it("poke() and the recheck timer notice space freed by someone else", async () => {
    vi.useFakeTimers();
    let volumeFree = 4 * GiB;
    const { a } = admission({}, { freeDisk: () => volumeFree, recheckMs: 5_000 });
    const holder = await a.acquire(ticket("r1"), need({ diskBytes: 2 * GiB }));
    const first = track(a.acquire(ticket("r2"), need({ diskBytes: 3 * GiB })));
    await vi.advanceTimersByTimeAsync(0);
    expect(first.settled).toBe(false);
    volumeFree = 5 * GiB;
    a.poke();
    await vi.advanceTimersByTimeAsync(0);
    expect(first.grant).toBeDefined();

    const second = track(a.acquire(ticket("r3"), need({ diskBytes: 1 * GiB })));
    await vi.advanceTimersByTimeAsync(0);
    expect(second.settled).toBe(false);
    volumeFree = 7 * GiB;
    await vi.advanceTimersByTimeAsync(5_000);
    expect(second.grant).toBeDefined();
    for (const grant of [holder, first.grant!, second.grant!]) grant.release();
    expectIdle(a);
  });

  it("a failing statfs does not break releases: disk is then checked against the pool only", async () => {
    const { a } = admission(
      { diskBytes: 10 * GiB },
      {
        freeDisk: () => {
          throw new Error("EIO");
        },
      },
    );
    const grant = await a.acquire(ticket("r1"), need({ diskBytes: 5 * GiB }));
    expect(a.snapshot().volumeFreeBytes).toBeNull();
    grant.release();
    expectIdle(a);
  });
});

describe("explanations", () => {
  it("a lock wait names the holder (run, job, since) and the position in line", async () => {
    const { a, clock } = admission({ locks: { swarm: 1 } });
    const since = clock.now();
    const holder = await a.acquire(
      ticket("r1", { runName: "recipe-a", job: "deploy", key: "recipe-a" }),
      need({ locks: ["swarm"] }),
    );
    clock.advance(60_000);
    const second = track(
      a.acquire(ticket("r2", { job: "deploy", key: "recipe-b" }), need({ locks: ["swarm"] })),
    );
    clock.advance(1_000);
    const third = track(
      a.acquire(ticket("r3", { job: "deploy", key: "recipe-c" }), need({ locks: ["swarm"] })),
    );

    const explained = a.explain();
    expect(explained).toHaveLength(2);
    const [first, last] = explained;
    expect(first!.reason).toBe(
      `waits for lock swarm (1 of 1 held by run r1 (recipe-a) job deploy since ${clockTime(since)}); 1st in line`,
    );
    expect(last!.reason).toBe(
      `waits for lock swarm (1 of 1 held by run r1 (recipe-a) job deploy since ${clockTime(since)}); 2nd in line`,
    );
    expect(clockTime(since)).toBe("10:00:00");
    expect(last).toMatchObject({
      ticket: { runId: "r3", job: "deploy", key: "recipe-c", weight: 1, priority: 0 },
      since: since + 61_000,
      position: 2,
      blockers: [
        {
          resource: "lock:swarm",
          need: 1,
          free: 0,
          capacity: 1,
          holders: [{ runId: "r1", runName: "recipe-a", pipeline: "ci", job: "deploy", since, amount: 1 }],
          position: 2,
        },
      ],
    });
    holder.release();
    (await granted(second)).release();
    (await granted(third)).release();
    expectIdle(a);
  });

  it("a reservation wait names the request it waits behind, and every blocker has a reason", async () => {
    const { a } = admission({ memoryBytes: 16 * GiB, locks: { swarm: 1 } });
    const held = await a.acquire(
      ticket("r1", { job: "deploy" }),
      need({ memoryBytes: 12 * GiB, locks: ["swarm"] }),
    );
    const large = track(a.acquire(ticket("r2"), need({ memoryBytes: 12 * GiB })));
    const small = track(
      a.acquire(ticket("r3", { job: "lint" }), need({ memoryBytes: 2 * GiB, locks: ["swarm"] })),
    );
    const [first, second] = a.explain();
    expect(first!.reason).toMatch(
      /^waits for memory \(needs 12 GiB, 4 GiB free of 16 GiB; held by run r1 job deploy since \d\d:\d\d:\d\d \(12 GiB\)\); 1st in line$/,
    );
    expect(second!.blockers.map((b) => b.resource)).toEqual(["memory", "lock:swarm"]);
    expect(second!.blockers[0]!.reservedBy).toMatchObject([{ runId: "r2" }]);
    expect(second!.reason).toMatch(
      /^waits behind a reservation for memory by run r2 job build \(needs 12 GiB, 4 GiB free\); 2nd in line; also waits for lock swarm \(1 of 1 held by run r1 job deploy since \d\d:\d\d:\d\d\); 1st in line$/,
    );
    for (const e of a.explain()) {
      expect(e.blockers.length).toBeGreaterThan(0);
      expect(e.reason).not.toBe("");
    }
    held.release();
    (await granted(large)).release();
    (await granted(small)).release();
    expectIdle(a);
  });
});

describe("snapshot", () => {
  it("shows capacity, use, free space (real disk included), holders and the waiting count", async () => {
    const { a, clock } = admission(
      { memoryBytes: 16 * GiB, cpu: 2, diskBytes: 50 * GiB, locks: { swarm: 1 } },
      { freeDisk: () => 20 * GiB },
    );
    const one = await a.acquire(
      ticket("r1", { runName: "recipe-a", job: "deploy" }),
      need({ memoryBytes: 4 * GiB, cpu: 1, diskBytes: 10 * GiB, locks: ["swarm"] }),
    );
    clock.advance(1_000);
    const two = await a.acquire(ticket("r2"), need({ memoryBytes: 2 * GiB, cpu: 0.5 }));
    const waiting = track(a.acquire(ticket("r3"), need({ locks: ["swarm"] })));
    expect(a.snapshot()).toEqual({
      capacity: { memoryBytes: 16 * GiB, cpu: 2, diskBytes: 50 * GiB, locks: { swarm: 1 } },
      inUse: { memoryBytes: 6 * GiB, cpu: 1.5, diskBytes: 10 * GiB, locks: { swarm: 1 } },
      // Disk: 20 GiB free on the volume, 10 of them promised to r1.
      free: { memoryBytes: 10 * GiB, cpu: 0.5, diskBytes: 10 * GiB, locks: { swarm: 0 } },
      volumeFreeBytes: 20 * GiB,
      holders: {
        memory: [
          {
            runId: "r1",
            runName: "recipe-a",
            pipeline: "ci",
            job: "deploy",
            since: one.since,
            amount: 4 * GiB,
          },
          { runId: "r2", runName: null, pipeline: "ci", job: "build", since: two.since, amount: 2 * GiB },
        ],
        cpu: [
          { runId: "r1", runName: "recipe-a", pipeline: "ci", job: "deploy", since: one.since, amount: 1 },
          { runId: "r2", runName: null, pipeline: "ci", job: "build", since: two.since, amount: 0.5 },
        ],
        disk: [
          {
            runId: "r1",
            runName: "recipe-a",
            pipeline: "ci",
            job: "deploy",
            since: one.since,
            amount: 10 * GiB,
          },
        ],
        locks: {
          swarm: [
            { runId: "r1", runName: "recipe-a", pipeline: "ci", job: "deploy", since: one.since, amount: 1 },
          ],
        },
      },
      granted: 2,
      waiting: 1,
    });
    one.release();
    two.release();
    (await granted(waiting)).release();
    expectIdle(a);
  });
});

describe("scale", () => {
  it("10,000 waiting requests are queued and drained without quadratic work per request", async () => {
    const { a } = admission({ cpu: 1 });
    const held = await a.acquire(ticket("holder"), need({ cpu: 1 }));
    passes.length = 0;
    const started = performance.now();
    const waiting: Tracked[] = [];
    for (let n = 0; n < 10_000; n++) {
      waiting.push(track(a.acquire(ticket(`r${n}`, { key: `k${n % 50}` }), need({ cpu: 1 }))));
    }
    const queuedMs = performance.now() - started;
    expect(a.snapshot().waiting).toBe(10_000);
    // A newcomer that does not fit changes nothing: no pass over the others.
    expect(passes).toEqual([]);
    const wake = performance.now();
    held.release();
    await flush();
    const wakeMs = performance.now() - wake;
    expect(waiting.filter((w) => w.grant !== undefined)).toHaveLength(1);
    // A release is one pass over the waiting list.
    expect(passes).toEqual([10_000]);
    // Backstops only, far above this machine's times even when it is busy: quadratic work would
    // take minutes.
    expect(queuedMs).toBeLessThan(20_000);
    expect(wakeMs).toBeLessThan(5_000);
    a.close();
  });
});

describe("change notifications", () => {
  it("tells listeners when the queue or the grants change, and not when nothing did", async () => {
    const { a } = admission({ locks: { swarm: 1 } });
    let changes = 0;
    const stop = a.onChange(() => changes++);
    const first = await a.acquire(ticket("r1"), need({ locks: ["swarm"] }));
    const granted = changes;
    // A read changes nothing.
    a.explain();
    expect(changes).toBe(granted);
    const controller = new AbortController();
    const second = track(a.acquire(ticket("r2"), need({ locks: ["swarm"] }), controller.signal));
    expect(changes).toBeGreaterThan(granted);
    const queued = changes;
    const third = track(a.acquire(ticket("r3"), need({ locks: ["swarm"] })));
    expect(changes).toBeGreaterThan(queued);
    // Withdrawn from the line: the one behind it moves up.
    const before = changes;
    controller.abort(new Error("cancelled"));
    expect(changes).toBeGreaterThan(before);
    expect(a.explain().map((e) => [e.ticket.runId, e.position])).toEqual([["r3", 1]]);
    // A holder leaves: the next one is granted.
    const released = changes;
    first.release();
    expect(changes).toBeGreaterThan(released);
    await flush();
    expect(second.error).toBeInstanceOf(Error);
    third.grant!.release();
    stop();
    const stopped = changes;
    (await a.acquire(ticket("r4"), need({ locks: ["swarm"] }))).release();
    expect(changes).toBe(stopped);
    expectIdle(a);
  });
});
