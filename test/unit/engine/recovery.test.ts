/** Recovery in one process: executors sharing storage continue only their own sagas, and never the same run twice. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { RunRecord, Storage } from "../../../src/storage/types.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { backends, deadExecutor, eventually, harness, within } from "../../helpers.js";
import { driveUntil, reach } from "./time.js";

const ran: string[] = [];
const record = <T>(what: string, value: T): T => {
  ran.push(what);
  return value;
};
const buildV1 = saga("build", { version: 1 })
  .action("compile", {
    produces: { out: z.string() },
    run: () => record("build v1 compile", { out: "v1" }),
  })
  .build();
const buildV2 = saga("build", { version: 2 })
  .action("compile", {
    produces: { out: z.string() },
    run: () => record("build v2 compile", { out: "v2" }),
  })
  .build();
const sandbox = saga("sandbox", { version: 1 })
  .action("boot", { run: () => void ran.push("sandbox boot") })
  .build();

/**
 * Writes a run as a dead executor left it: owned, mid-way, its owner (on another host) silent
 * since `long` (default an hour ago).
 */
async function leftByDeadExecutor(
  storage: Storage,
  id: string,
  sagaName: string,
  version: number,
  long = Date.now() - 3_600_000,
): Promise<void> {
  await storage.upsertExecutor({
    id: "ghost",
    host: "elsewhere",
    pid: 1,
    startedAt: long,
    heartbeatAt: long,
    maxRuns: null,
  });
  const record: RunRecord = {
    id,
    saga: sagaName,
    version,
    status: "running",
    input: {},
    runName: null,
    owner: "ghost",
    revision: 0,
    wakeAt: null,
    cancelRequested: null,
    cause: null,
    error: null,
    createdAt: long,
    updatedAt: long,
    endedAt: null,
    parent: null,
  };
  const [result] = await storage.commit([{ runId: id, owner: "ghost", create: record }]);
  expect(result).toBe("ok");
}

describe.each(backends)("recovery on $name", (backend) => {
  it("continues only the sagas an executor owns, skipping the others without error", async () => {
    const h = harness(backend);
    ran.length = 0;
    await h.storage.init();
    await leftByDeadExecutor(h.storage, "b-1", "build", 2);
    await leftByDeadExecutor(h.storage, "s-1", "sandbox", 1);
    const builds = await h.executor({ sagas: [buildV2] });
    expect((await within(builds.result("b-1"), "build recovery")).status).toBe("completed");
    expect((await h.storage.getRun("s-1"))!.status).toBe("running"); // not touched
    expect(ran).toEqual(["build v2 compile"]);
    const sandboxes = await h.executor({ sagas: [sandbox] });
    expect((await within(sandboxes.result("s-1"), "sandbox recovery")).status).toBe("completed");
    expect(ran).toEqual(["build v2 compile", "sandbox boot"]);
  });

  it("reports a run of an unregistered version as needing attention, and resumes it once registered", async () => {
    const h = harness(backend);
    ran.length = 0;
    await h.storage.init();
    await leftByDeadExecutor(h.storage, "old", "build", 1);
    const current = await h.executor({ sagas: [buildV2] });
    const result = await within(current.result("old"), "needs attention");
    expect(result.status).toBe("needs_attention");
    expect(result.error?.message).toMatch(/saga build v1 is not registered with this executor \(it has v2\)/);
    expect(ran).toEqual([]);
    await current.close();
    const both = await h.executor({ sagas: [buildV1, buildV2] });
    await both.resume("old");
    expect((await within(both.result("old"), "resumed")).status).toBe("completed");
    expect(ran).toEqual(["build v1 compile"]);
  });

  it("never lets two executors run one run; the second takes over only when the first is gone", async () => {
    const h = harness(backend);
    let runs = 0;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const guarded = saga("guarded", { version: 1 })
      .action("work", {
        run: async () => {
          runs++;
          await gate;
        },
      })
      .build();
    const first = await h.executor({ sagas: [guarded] });
    const second = await h.executor({ sagas: [guarded] });
    const handle = await first.start(guarded, {});
    await eventually(() => runs === 1, "the action to start");
    expect(await second.recover()).toBe(0);
    expect(await h.storage.claim({ runId: handle.id, owner: second.owner })).toBeUndefined();
    // The first executor stops (releasing the run); the second continues it, re-running the
    // interrupted action once.
    const closing = first.close();
    release();
    await closing;
    expect(await second.recover()).toBe(1);
    expect((await within(second.result(handle.id), "completion")).status).toBe("completed");
    expect(runs).toBe(2);
  });
});

describe.each(backends)("leases on $name", (backend) => {
  it("takes over from an executor silent past its lease, not before, within a heartbeat or so", async () => {
    const h = harness(backend);
    ran.length = 0;
    const clock = new ManualClock();
    await h.storage.init();
    const lease = 30_000;
    const heartbeat = 2_000;
    const poll = 1_000;
    // Its last heartbeat is now: it dies at this moment, and is provably dead once the lease passes.
    const died = clock.now();
    await leftByDeadExecutor(h.storage, "b-2", "build", 2, died);
    const executor = await h.executor({
      sagas: [buildV2],
      clock,
      leaseMs: lease,
      heartbeatIntervalMs: heartbeat,
      pollIntervalMs: poll,
    });
    const owner = async () => (await h.storage.getRun("b-2"))?.owner;
    expect(await owner()).toBe("ghost");
    await clock.advance(lease);
    expect(await owner()).toBe("ghost");
    expect(ran).toEqual([]);
    // Time moves one timer at a time (a backend's I/O takes real time), until the run is taken over
    // and completed: by the recovery that runs every heartbeat, in a poll, once the lease ran out.
    await driveUntil(
      clock,
      async () => (await h.storage.getRun("b-2"))?.status === "completed",
      "the takeover",
    );
    expect(ran).toEqual(["build v2 compile"]);
    const takenAt = (await h.storage.load("b-2"))!.steps.find((s) => s.action === "compile")!.startedAt!;
    expect(takenAt).toBeGreaterThan(died + lease);
    // A heartbeat's recovery, the poll it runs in, and the dead executors' lookup kept for a poll. A
    // database server answers in real time while this clock moves a timer at a time: a poll still in
    // flight when the clock moves on (to the next heartbeat) is set again from there, so allow that.
    const drift = backend.name === "postgres" ? 2 * heartbeat : 0;
    expect(takenAt).toBeLessThanOrEqual(died + lease + heartbeat + 2 * poll + drift);
    // The dead executor, owning nothing any more, is forgotten by a later recovery.
    const executors = async () => (await h.storage.listExecutors()).map((e) => e.id);
    await driveUntil(
      clock,
      async () => (await executors()).length === 1,
      "the dead executor to be forgotten",
    );
    expect(await executors()).toEqual([executor.owner]);
  });

  it("proves it is alive with a heartbeat every interval, on its clock", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const started = clock.now();
    const executor = await h.executor({ sagas: [buildV2], clock, heartbeatIntervalMs: 5_000 });
    const heartbeat = async () =>
      (await h.storage.listExecutors()).find((e) => e.id === executor.owner)?.heartbeatAt;
    expect(await heartbeat()).toBe(started);
    await clock.advance(4_999);
    expect(await heartbeat()).toBe(started);
    await clock.advance(1);
    await reach(clock, async () => (await heartbeat()) === started + 5_000, "the second heartbeat");
    await clock.advance(5_000);
    await reach(clock, async () => (await heartbeat()) === started + 10_000, "the third heartbeat");
  });
});

describe.each(backends)("versions on $name", (backend) => {
  it("leaves runs of a newer version to the executors that have it", async () => {
    const h = harness(backend);
    ran.length = 0;
    await h.storage.init();
    await leftByDeadExecutor(h.storage, "new", "build", 2);
    const old = await h.executor({ sagas: [buildV1] });
    expect(await old.recover()).toBe(0);
    expect((await h.storage.getRun("new"))!.status).toBe("running");
    const current = await h.executor({ sagas: [buildV2] });
    expect((await within(current.result("new"), "recovery")).status).toBe("completed");
    expect(ran).toEqual(["build v2 compile"]);
  });

  it("registers sagas after open and forgets them: a server compiles one per plan and drops it when done", async () => {
    const h = harness(backend);
    ran.length = 0;
    const executor = await h.executor({ sagas: [] });
    expect(executor.registered(buildV1.name, buildV1.version)).toBe(false);
    expect(executor.register(buildV1)).toBe(true);
    expect(executor.register(buildV1)).toBe(false);
    const run = await executor.start(buildV1, {});
    expect((await within(run.result(), "the run")).status).toBe("completed");
    executor.unregister(buildV1);
    expect(executor.registered(buildV1.name, buildV1.version)).toBe(false);
    await expect(executor.start(buildV1, {})).rejects.toThrow(/is not registered/);
  });

  it("frees a dead executor's lock slots and waiting rows when it forgets the executor", async () => {
    const h = harness(backend);
    await h.storage.init();
    const long = await deadExecutor(h.storage);
    const locks = h.storage.locks!();
    const party = { runId: "r-1", runName: null, pipeline: "deploy", action: "deploy", job: "deploy" };
    const row = { ...party, owner: "ghost", key: "deploy", weight: 1, priority: 0, since: long };
    await locks.wait([
      { ...row, lock: "swarm", holder: "held" },
      { ...row, lock: "swarm", holder: "waiting" },
    ]);
    const capacity = { swarm: 1 };
    expect(await locks.take(() => [{ holder: "held", capacity }], long)).toHaveLength(1);
    // Its runs are all taken over (it has none left): recovery at open forgets it. Were its slot
    // kept, nothing would prove its owner dead any more, and swarm would be held for good.
    await h.executor({ sagas: [buildV1] });
    expect((await h.storage.listExecutors()).map((e) => e.id)).not.toContain("ghost");
    expect(await locks.view()).toEqual({ slots: [], waiters: [] });
  });
});
