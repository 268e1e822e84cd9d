/** Durable waits: signals (early, late, cross-executor, timeouts, bad payloads), sleeps and polls. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { Executor } from "../../../src/engine/executor.js";
import { SlipwayError, ValidationError } from "../../../src/errors.js";
import type { RunStatus, StepStatus } from "../../../src/storage/types.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { backends, eventually, harness, within } from "../../helpers.js";
import { driveUntil, reach } from "./time.js";

/** Reads one run's status and its steps' statuses. */
function observe(executor: Executor, id: string) {
  return {
    async status(): Promise<RunStatus | undefined> {
      return (await executor.get(id))?.run.status;
    },
    async step(action: string): Promise<StepStatus | undefined> {
      return (await executor.get(id))?.steps.find((s) => s.action === action)?.status;
    },
  };
}

const approval = saga("approval", { version: 1, input: { change: z.string() } })
  .action("prepare", {
    reads: ["change"],
    produces: { plan: z.string() },
    run: ({ change }) => ({ plan: `plan ${change}` }),
  })
  .waitForSignal("approve", {
    signal: "approved",
    produces: { by: z.string() },
    after: ["prepare"],
    timeoutMs: 60_000,
  })
  .action("apply", {
    reads: ["plan", "by"],
    produces: { applied: z.string() },
    run: ({ plan, by }) => ({ applied: `${plan} by ${by}` }),
  })
  .build();

describe.each(backends)("durable waits on $name", (backend) => {
  it("holds nothing in memory while waiting, and the payload becomes the output", async () => {
    const h = harness(backend);
    const executor = await h.executor({ sagas: [approval] });
    const handle = await executor.start(approval, { change: "c1" });
    await eventually(async () => (await executor.get(handle.id))?.run.status === "waiting", "the wait");
    expect(executor.activeRuns).toBe(0);
    expect((await executor.get(handle.id))!.run.owner).toBeNull();
    await executor.signal(handle.id, "approved", { by: "alice" });
    const result = await within(handle.result(), "completion after the signal");
    expect(result.status).toBe("completed");
    expect(result.output.applied).toBe("plan c1 by alice");
  });

  it("keeps a signal that arrives before the wait starts", async () => {
    const h = harness(backend);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const early = saga("early", { version: 1 })
      .action("slow", { run: () => gate })
      .waitForSignal("go", { signal: "go", produces: { n: z.number() }, after: ["slow"] })
      .build();
    const executor = await h.executor({ sagas: [early] });
    const handle = await executor.start(early, {});
    await executor.signal(handle.id, "go", { n: 1 });
    await executor.signal(handle.id, "go", { n: 2 });
    release();
    const result = await within(handle.result(), "completion");
    expect(result.output.n).toBe(1); // the oldest signal is consumed first
  });

  it("wakes a run for a signal sent through another executor (another process)", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const runner = await h.executor({ sagas: [approval], clock, pollIntervalMs: 200 });
    const handle = await runner.start(approval, { change: "c2" });
    const run = observe(runner, handle.id);
    await reach(clock, async () => (await run.status()) === "waiting", "the wait");
    const other = await h.executor({ sagas: [] });
    await other.signal(handle.id, "approved", { by: "bob" });
    // The runner learns of it from its next poll of storage, not before; unless the storage tells
    // of changes (PostgreSQL's NOTIFY), which has it poll at once, whatever the clock.
    await clock.advance(199);
    if (!h.storage.onChange) expect(await run.status()).toBe("waiting");
    await clock.advance(1);
    const result = await within(runner.result(handle.id), "completion");
    expect(result.output.applied).toBe("plan c2 by bob");
  });

  it("rejects a payload that does not fit, persisting nothing; and signals to ended runs", async () => {
    const h = harness(backend);
    const executor = await h.executor({ sagas: [approval] });
    const handle = await executor.start(approval, { change: "c3" });
    await expect(executor.signal(handle.id, "approved", { by: 42 })).rejects.toThrow(ValidationError);
    expect(await h.storage.lastSignalSeq()).toBe(0);
    await executor.signal(handle.id, "approved", { by: "carol" });
    await within(handle.result(), "completion");
    await expect(executor.signal(handle.id, "approved", { by: "dave" })).rejects.toThrow(SlipwayError);
    await expect(executor.signal("no-such-id", "approved", {})).rejects.toThrow(/no run no-such-id/);
  });

  it("times a signal wait out and compensates", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const undone: string[] = [];
    const impatient = saga("impatient", { version: 1 })
      .action("reserve", {
        produces: { slot: z.string() },
        run: () => ({ slot: "s" }),
        undo: () => void undone.push("reserve"),
      })
      .waitForSignal("approve", { signal: "approved", after: ["reserve"], timeoutMs: 50 })
      .build();
    const executor = await h.executor({ sagas: [impatient], clock });
    const handle = await executor.start(impatient, {});
    const run = observe(executor, handle.id);
    await reach(clock, async () => (await run.step("approve")) === "waiting", "the wait");
    await clock.advance(49);
    expect(await run.step("approve")).toBe("waiting");
    await clock.advance(1);
    const result = await within(handle.result(), "timeout");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      action: "approve",
      error: { message: `no signal "approved" arrived within 50 ms` },
    });
    expect(undone).toEqual(["reserve"]);
  });

  it("sleeps durably, for a duration and until a time", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const napper = saga("napper", { version: 1, input: { at: z.number() } })
      .sleep("short", { durationMs: 30 })
      .sleep("until", { reads: ["at"], until: ({ at }) => at, after: ["short"] })
      .build();
    const executor = await h.executor({ sagas: [napper], clock });
    const started = clock.now();
    const handle = await executor.start(napper, { at: started + 80 });
    const run = observe(executor, handle.id);
    await reach(clock, async () => (await run.step("short")) === "waiting", "the first sleep");
    await clock.advance(29);
    expect(await run.step("short")).toBe("waiting");
    await clock.advance(1);
    await reach(clock, async () => (await run.step("until")) === "waiting", "the second sleep");
    expect(await run.step("short")).toBe("completed");
    await clock.advanceTo(started + 79);
    expect(await run.step("until")).toBe("waiting");
    await clock.advance(1);
    const result = await within(handle.result(), "sleeps");
    expect(result.status).toBe("completed");
    expect(clock.now()).toBe(started + 80);
  });

  it("polls until done, holding nothing between checks", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let checks = 0;
    const external = saga("external", { version: 1 })
      .poll("build", {
        produces: { artifact: z.string() },
        everyMs: 20,
        timeoutMs: 5_000,
        check: () =>
          ++checks < 4
            ? { done: false, message: `queued (${checks})` }
            : { done: true, output: { artifact: "pkg.rpm" } },
      })
      .build();
    const executor = await h.executor({ sagas: [external], evictAfterMs: 10, clock });
    const handle = await executor.start(external, {});
    for (let check = 1; check < 4; check++) {
      await reach(clock, () => checks === check && executor.activeRuns === 0, `check ${check}, then parked`);
      await clock.advance(19);
      expect(checks).toBe(check);
      await clock.advance(1);
    }
    // Timers the woken run sets once its storage answers (later than advance settles, on PostgreSQL)
    // are due now: fired while waiting, time standing still.
    let result: Awaited<ReturnType<typeof handle.result>> | undefined;
    void handle.result().then((outcome) => (result = outcome));
    await reach(clock, () => result, "the poll's result");
    expect(result!.output.artifact).toBe("pkg.rpm");
    expect(checks).toBe(4);
  });

  it("fails a poll that never reports done by its timeout", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let checks = 0;
    const never = saga("never", { version: 1 })
      .poll("build", {
        everyMs: 10,
        timeoutMs: 60,
        check: () => {
          checks++;
          return { done: false };
        },
      })
      .build();
    const executor = await h.executor({ sagas: [never], clock });
    const handle = await executor.start(never, {});
    const run = observe(executor, handle.id);
    // Checks at 0, 10, ... 50; at 60 the deadline comes before the next check.
    for (let check = 1; check <= 6; check++) {
      await reach(clock, () => checks === check, `check ${check}`);
      await clock.advance(10);
    }
    const result = await within(handle.result(), "poll timeout");
    expect(checks).toBe(6);
    expect(await run.status()).toBe("compensated");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({ action: "build", error: { name: "TimeoutError" } });
  });

  it("cancels a run that waits unowned", async () => {
    const h = harness(backend);
    const undone: string[] = [];
    const cancellable = saga("cancellable", { version: 1 })
      .action("reserve", {
        produces: { slot: z.string() },
        run: () => ({ slot: "s" }),
        undo: () => void undone.push("reserve"),
      })
      .waitForSignal("approve", { signal: "approved", after: ["reserve"] })
      .build();
    const clock = new ManualClock();
    const executor = await h.executor({ sagas: [cancellable], clock, pollIntervalMs: 200 });
    const handle = await executor.start(cancellable, {});
    const run = observe(executor, handle.id);
    await reach(clock, async () => (await run.status()) === "waiting", "the wait");
    const other = await h.executor({ sagas: [] });
    await other.cancel(handle.id, "no longer needed");
    // Picked up by the executor's next poll of storage (at once where the storage tells of changes).
    await clock.advance(199);
    if (!h.storage.onChange) expect(undone).toEqual([]);
    await clock.advance(1);
    const result = await within(executor.result(handle.id), "cancel");
    expect(result.status).toBe("cancelled");
    expect(undone).toEqual(["reserve"]);
  });
});

describe.each(backends)("wait edge cases on $name", (backend) => {
  it("fails only the action when a sleep's time cannot be computed", async () => {
    const h = harness(backend);
    const broken = saga("broken-sleep", { version: 1 })
      .sleep("nap", {
        until: () => {
          throw new Error("no calendar");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [broken] });
    const result = await within((await executor.start(broken, {})).result(), "failure");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({ action: "nap", error: { message: "no calendar" } });
  });

  it("retries a poll whose check throws, without spinning on stale timers", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let checks = 0;
    const flaky = saga("flaky-poll", { version: 1 })
      .poll("build", {
        produces: { ok: z.boolean() },
        everyMs: 30,
        retry: { maxAttempts: 2, initialDelayMs: 30 },
        check: () => {
          checks++;
          if (checks === 1) throw new Error("build service 503");
          return checks < 3 ? { done: false } : { done: true, output: { ok: true } };
        },
      })
      .build();
    const timers = { count: 0 };
    const counting = {
      ...clock,
      setTimeout: (callback: () => void, ms: number) => {
        timers.count++;
        return clock.setTimeout(callback, ms);
      },
    };
    const executor = await h.executor({ sagas: [flaky], evictAfterMs: 10_000, clock: counting });
    const run = observe(executor, (await executor.start(flaky, {})).id);
    await driveUntil(clock, async () => (await run.status()) === "completed", "completion");
    expect(checks).toBe(3);
    // A handful of timers (the retry, the checks, polls), not hundreds of zero-delay re-arms.
    expect(timers.count).toBeLessThan(40);
  });

  it("cuts off a hanging poll check at the poll's deadline", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let aborted: number | undefined;
    const hanging = saga("hanging-poll", { version: 1 })
      .poll("build", {
        everyMs: 10,
        timeoutMs: 80,
        check: (_input, ctx) =>
          new Promise<never>(() => ctx.signal.addEventListener("abort", () => (aborted = clock.now()))),
      })
      .build();
    const executor = await h.executor({ sagas: [hanging], abortGraceMs: 10, clock });
    const started = clock.now();
    const handle = await executor.start(hanging, {});
    const run = observe(executor, handle.id);
    await reach(clock, async () => (await run.step("build")) === "waiting", "the first check");
    await clock.advance(79);
    expect(aborted).toBeUndefined();
    await clock.advance(1);
    expect(aborted).toBe(started + 80);
    // The check ignores its signal: it is given up on after the grace period.
    await clock.advance(9);
    expect(await run.status()).toBe("running");
    await clock.advance(1);
    const result = await within(handle.result(), "poll timeout");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      action: "build",
      error: { name: "TimeoutError", message: "the poll did not report done within 80 ms" },
    });
  });
});
