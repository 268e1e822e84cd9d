/** Running sagas: concurrency, undo order, undo inputs, undo failures and resume. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { backends, harness, within } from "../../helpers.js";
import { driveUntil } from "./time.js";

describe.each(backends)("run on $name", (backend) => {
  it("runs a diamond, independent actions concurrently, and returns every value", async () => {
    const h = harness(backend);
    let running = 0;
    let peak = 0;
    let bothRunning!: () => void;
    const both = new Promise<void>((resolve) => (bothRunning = resolve));
    // Each branch finishes only once both have started: run one after the other, they never would.
    const track = async <T>(value: T): Promise<T> => {
      peak = Math.max(peak, ++running);
      if (running === 2) bothRunning();
      await both;
      running--;
      return value;
    };
    const diamond = saga("diamond", { version: 1, input: { n: z.number() } })
      .action("left", { reads: ["n"], produces: { l: z.number() }, run: ({ n }) => track({ l: n + 1 }) })
      .action("right", { reads: ["n"], produces: { r: z.number() }, run: ({ n }) => track({ r: n * 10 }) })
      .action("join", {
        reads: ["l", "r"],
        produces: { sum: z.number() },
        run: ({ l, r }) => ({ sum: l + r }),
      })
      .build();
    const executor = await h.executor({ sagas: [diamond] });
    const handle = await executor.start(diamond, { n: 2 });
    const result = await within(handle.result(), "diamond to complete");
    expect(result.status).toBe("completed");
    expect(result.output).toEqual({ n: 2, l: 3, r: 20, sum: 23 });
    expect(peak).toBe(2);
  });

  it("undoes completed actions in reverse dependency order after a late failure", async () => {
    const h = harness(backend);
    const log: string[] = [];
    const undo = (name: string) => (input: object, output: object) => {
      log.push(`undo ${name} ${JSON.stringify(input)} ${JSON.stringify(output)}`);
    };
    const release = saga("release", { version: 1, input: { tag: z.string() } })
      .action("worker", {
        reads: ["tag"],
        produces: { workerImage: z.string() },
        run: ({ tag }) => ({ workerImage: `worker:${tag}` }),
        undo: undo("worker"),
      })
      .action("embeddings", {
        reads: ["tag"],
        produces: { embImage: z.string() },
        run: ({ tag }) => ({ embImage: `emb:${tag}` }),
        undo: undo("embeddings"),
      })
      .action("smoke", { reads: ["workerImage"], run: () => undefined })
      .action("app", {
        reads: ["tag"],
        after: ["smoke", "embeddings"],
        produces: { appImage: z.string() },
        run: ({ tag }) => ({ appImage: `app:${tag}` }),
        undo: undo("app"),
      })
      .action("rollout", {
        reads: ["appImage"],
        run: () => {
          throw new Error("cluster unreachable");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [release] });
    const events: string[] = [];
    executor.on((e) => events.push(`${e.type}${e.action ? ` ${e.action}` : ""}`));
    const result = await within((await executor.start(release, { tag: "v1" })).result(), "rollback");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      kind: "failure",
      action: "rollout",
      error: { message: "cluster unreachable" },
    });
    // app depends on worker (through smoke) and embeddings: it is undone first; then the other two.
    expect(log[0]).toBe(`undo app {"tag":"v1"} {"appImage":"app:v1"}`);
    expect(log.slice(1).sort()).toEqual([
      `undo embeddings {"tag":"v1"} {"embImage":"emb:v1"}`,
      `undo worker {"tag":"v1"} {"workerImage":"worker:v1"}`,
    ]);
    expect(events.at(-1)).toBe("run:compensated");
    const steps = (await executor.get(result.id))!.steps;
    expect(Object.fromEntries(steps.map((s) => [s.action, s.status]))).toEqual({
      worker: "undone",
      embeddings: "undone",
      smoke: "completed",
      app: "undone",
      rollout: "failed",
    });
  });

  it("never starts a fan-in action when a sibling fails", async () => {
    const h = harness(backend);
    let published = false;
    const gated = saga("gated", { version: 1 })
      // Still running when its sibling fails: it ends when compensation aborts it.
      .action("a", {
        run: (_input, ctx) =>
          new Promise<void>((_resolve, reject) =>
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
          ),
      })
      .action("b", {
        run: () => {
          throw new Error("b broke");
        },
      })
      .action("publish", {
        after: ["a", "b"],
        run: () => {
          published = true;
        },
      })
      .build();
    const executor = await h.executor({ sagas: [gated] });
    const result = await within((await executor.start(gated, {})).result(), "failure");
    expect(result.status).toBe("compensated");
    expect(published).toBe(false);
  });

  it("needs attention when an undo keeps failing, and a resume retries it", async () => {
    const h = harness(backend);
    const clock = new ManualClock();
    let undoCalls = 0;
    let undoWorks = false;
    const fragile = saga("fragile", { version: 1 })
      .action("provision", {
        produces: { db: z.string() },
        run: () => ({ db: "db-1" }),
        undo: () => {
          undoCalls++;
          if (!undoWorks) throw new Error("api down");
        },
        undoRetry: { maxAttempts: 2, initialDelayMs: 5 },
      })
      .action("fail", {
        reads: ["db"],
        run: () => {
          throw new Error("boom");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [fragile], clock });
    const handle = await executor.start(fragile, {});
    // The undo's retry comes after its backoff.
    const status = async () => (await executor.get(handle.id))?.run.status;
    await driveUntil(clock, async () => (await status()) === "needs_attention", "needs attention");
    const first = await within(handle.result(), "needs attention");
    expect(first.status).toBe("needs_attention");
    expect(first.error?.message).toBe(`undo of "provision" failed: api down`);
    expect(undoCalls).toBe(2);
    undoWorks = true;
    await executor.resume(handle.id);
    const second = await within(executor.result(handle.id), "resumed compensation");
    expect(second.status).toBe("compensated");
    expect(undoCalls).toBe(3);
  });
});
