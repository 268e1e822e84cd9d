/** Retries with backoff, timeouts, idempotency keys, and cancel. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { TimeoutError } from "../../../src/errors.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { backends, eventually, harness, within } from "../../helpers.js";
import { reach } from "./time.js";

describe.each(backends)("retries, timeouts and cancel on $name", (backend) => {
  it("retries with backoff, keeping one idempotency key across attempts", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const seen: { attempt: number; key: string; at: number }[] = [];
    const flaky = saga("flaky", { version: 1 })
      .action("submit", {
        produces: { buildId: z.string() },
        retry: { maxAttempts: 3, initialDelayMs: 40, backoffFactor: 2 },
        run: (_input, ctx) => {
          seen.push({ attempt: ctx.attempt, key: ctx.idempotencyKey, at: clock.now() });
          if (ctx.attempt < 3) throw new Error(`transient ${ctx.attempt}`);
          return { buildId: "b-1" };
        },
      })
      .build();
    const executor = await h.executor({ sagas: [flaky], clock });
    const started = clock.now();
    const handle = await executor.start(flaky, {});
    // Backoff: 40 ms after the first failure, then 80 ms.
    await reach(clock, () => seen.length === 1, "the first attempt");
    await clock.advance(39);
    expect(seen).toHaveLength(1);
    await clock.advance(1);
    await reach(clock, () => seen.length === 2, "the second attempt");
    await clock.advance(79);
    expect(seen).toHaveLength(2);
    await clock.advance(1);
    const result = await within(handle.result(), "retries");
    expect(result.status).toBe("completed");
    expect(seen.map((s) => s.attempt)).toEqual([1, 2, 3]);
    expect(new Set(seen.map((s) => s.key))).toEqual(new Set([`${handle.id}/submit`]));
    expect(seen.map((s) => s.at - started)).toEqual([0, 40, 120]);
    const failures = (await executor.history(handle.id)).filter((e) => e.type === "action:failed");
    expect(failures.map((e) => e.data?.error)).toEqual(["transient 1", "transient 2"]);
  });

  it("fails for good once retries are spent, and compensates", async () => {
    const h = harness(backend);
    let attempts = 0;
    const doomed = saga("doomed", { version: 1 })
      .action("always", {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        run: () => {
          attempts++;
          throw new Error("nope");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [doomed] });
    const result = await within((await executor.start(doomed, {})).result(), "failure");
    expect(result.status).toBe("compensated");
    expect(attempts).toBe(2);
  });

  it("times an attempt out through its abort signal, then retries", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    const reasons: unknown[] = [];
    const slow = saga("slow", { version: 1 })
      .action("hang", {
        timeoutMs: 30,
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        run: (_input, ctx) =>
          new Promise<void>((resolve, reject) => {
            if (ctx.attempt === 2) return resolve();
            ctx.signal.addEventListener("abort", () => {
              reasons.push(ctx.signal.reason);
              reject(new Error("aborted"));
            });
          }),
      })
      .build();
    const executor = await h.executor({ sagas: [slow], clock });
    const handle = await executor.start(slow, {});
    await reach(
      clock,
      async () => (await executor.get(handle.id))?.steps[0]?.status === "running",
      "the attempt",
    );
    await clock.advance(29);
    expect(reasons).toHaveLength(0);
    await clock.advance(1);
    expect(reasons).toHaveLength(1);
    // The retry comes after its 1 ms backoff.
    await reach(
      clock,
      async () => (await executor.get(handle.id))?.steps[0]?.status === "retrying",
      "the retry",
    );
    await clock.advance(1);
    const result = await within(handle.result(), "timeout and retry");
    expect(result.status).toBe("completed");
    expect(reasons).toHaveLength(1);
    expect(reasons[0]).toBeInstanceOf(TimeoutError);
    const history = await executor.history(handle.id);
    expect(history.find((e) => e.type === "action:failed")?.data?.error).toBe(
      `action "hang" timed out after 30 ms`,
    );
  });

  it("gives up on a body that ignores its signal after the grace period", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let aborted = false;
    const stubborn = saga("stubborn", { version: 1 })
      .action("ignore", {
        timeoutMs: 20,
        run: (_input, ctx) =>
          new Promise<void>(() => ctx.signal.addEventListener("abort", () => (aborted = true))),
      })
      .build();
    const executor = await h.executor({ sagas: [stubborn], abortGraceMs: 50, clock });
    const handle = await executor.start(stubborn, {});
    await reach(
      clock,
      async () => (await executor.get(handle.id))?.steps[0]?.status === "running",
      "the attempt",
    );
    await clock.advance(20);
    expect(aborted).toBe(true);
    await clock.advance(49);
    expect((await executor.get(handle.id))?.steps[0]?.status).toBe("running");
    await clock.advance(1);
    const result = await within(handle.result(), "timeout");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      kind: "failure",
      action: "ignore",
      error: { name: "TimeoutError" },
    });
  });

  it("cancel aborts running actions, waits for them, and undoes what completed", async () => {
    const h = harness(backend);
    const order: string[] = [];
    let sawAbort = false;
    let cleanUp!: () => void;
    const cleanedUp = new Promise<void>((resolve) => (cleanUp = resolve));
    const deploy = saga("deploy", { version: 1 })
      .action("stack", {
        produces: { stack: z.string() },
        run: () => ({ stack: "s-1" }),
        undo: (_input, { stack }) => {
          order.push(`teardown ${stack}`);
        },
      })
      .action("tests", {
        reads: ["stack"],
        run: (_input, ctx) =>
          new Promise<void>((_resolve, reject) => {
            order.push("tests started");
            ctx.signal.addEventListener("abort", () => {
              sawAbort = true;
              // Cleanup takes a moment (until the test ends it): the undo must wait for it.
              cleanedUp.then(() => {
                order.push("tests stopped");
                reject(ctx.signal.reason);
              });
            });
          }),
      })
      .action("never", { after: ["tests"], run: () => void order.push("never") })
      .build();
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, {});
    await eventually(() => order.includes("tests started"), "tests to start");
    await executor.cancel(handle.id, "operator interrupt");
    await eventually(() => sawAbort, "the abort");
    // Nothing is undone while the aborted action is still cleaning up.
    expect((await executor.get(handle.id))?.steps.find((s) => s.action === "stack")?.status).toBe(
      "completed",
    );
    expect(order).toEqual(["tests started"]);
    cleanUp();
    const result = await within(handle.result(), "cancel");
    expect(result.status).toBe("cancelled");
    expect(result.cause).toEqual({ kind: "cancel", reason: "operator interrupt" });
    expect(sawAbort).toBe(true);
    expect(order).toEqual(["tests started", "tests stopped", "teardown s-1"]);
  });
});
