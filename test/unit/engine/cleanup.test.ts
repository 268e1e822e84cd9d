/** `cleanup`: what runs after an attempt that started but did not complete, before any undo, also after a crash. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { RunEvent } from "../../../src/engine/events.js";
import { backends, eventually, harness, within } from "../../helpers.js";

/** The lifecycle of a run as `type action` lines, progress left out. */
function trail(history: RunEvent[]): string[] {
  return history
    .filter((e) => e.type !== "action:progress" && !e.type.startsWith("run:"))
    .map((e) => `${e.type} ${e.action}`);
}

describe.each(backends)("cleanup on $name", (backend) => {
  it("runs after each failed attempt, before its retry, with the attempt's number and its own key", async () => {
    const h = harness(backend);
    const cleaned: { attempt: number; key: string }[] = [];
    const flaky = saga("flaky", { version: 1 })
      .action("deploy", {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        run: (_input, ctx) => {
          if (ctx.attempt === 1) throw new Error("half deployed");
        },
        cleanup: (_input, ctx) => void cleaned.push({ attempt: ctx.attempt, key: ctx.idempotencyKey }),
      })
      .build();
    const executor = await h.executor({ sagas: [flaky] });
    const handle = await executor.start(flaky, {});
    expect((await within(handle.result(), "the retry")).status).toBe("completed");
    expect(cleaned).toEqual([{ attempt: 1, key: `${handle.id}/deploy/cleanup` }]);
    const history = await executor.history(handle.id);
    expect(trail(history)).toEqual([
      "action:started deploy",
      "cleanup:started deploy",
      "cleanup:completed deploy",
      "action:failed deploy",
      "action:started deploy",
      "action:completed deploy",
    ]);
    expect(history.find((e) => e.type === "cleanup:started")?.data).toEqual({
      attempt: 1,
      error: "half deployed",
    });
  });

  it("on a failure for good: the cut-short action's cleanup first, then the undos; a completed action is not cleaned up", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    const pipeline = saga("pipeline", { version: 1 })
      .action("build", {
        produces: { image: z.string() },
        run: () => ({ image: "img" }),
        undo: () => void ran.push("build undo"),
        cleanup: () => void ran.push("build cleanup"),
      })
      .action("deploy", {
        reads: ["image"],
        run: () => {
          ran.push("deploy run");
          throw new Error("crash loop");
        },
        undo: () => void ran.push("deploy undo"),
        cleanup: () => void ran.push("deploy cleanup"),
      })
      .build();
    const executor = await h.executor({ sagas: [pipeline] });
    const handle = await executor.start(pipeline, {});
    const result = await within(handle.result(), "the rollback");
    expect(result.status).toBe("compensated");
    expect(ran).toEqual(["deploy run", "deploy cleanup", "build undo"]);
    const steps = (await executor.get(handle.id))!.steps;
    expect(steps.find((s) => s.action === "deploy")).toMatchObject({
      status: "failed",
      error: { message: "crash loop" },
    });
  });

  it("on a cancel: the running action is stopped, cleaned up after, then what completed is undone", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    const pipeline = saga("pipeline", { version: 1 })
      .action("build", {
        produces: { image: z.string() },
        run: () => ({ image: "img" }),
        undo: () => void ran.push("build undo"),
      })
      .action("deploy", {
        reads: ["image"],
        run: (_input, ctx) =>
          new Promise<void>((_resolve, reject) => {
            ran.push("deploy run");
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason));
          }),
        cleanup: async (_input, ctx) => {
          // A cleanup is not stopped by the cancel it follows.
          await Promise.resolve();
          ran.push(`deploy cleanup${ctx.signal.aborted ? " (aborted)" : ""}`);
        },
      })
      .build();
    const executor = await h.executor({ sagas: [pipeline] });
    const handle = await executor.start(pipeline, {});
    await eventually(() => ran.includes("deploy run"), "the deploy to run");
    await executor.cancel(handle.id, "operator");
    expect((await within(handle.result(), "the cancel")).status).toBe("cancelled");
    expect(ran).toEqual(["deploy run", "deploy cleanup", "build undo"]);
  });

  it("reports a cleanup that fails, and still undoes what completed", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    const pipeline = saga("pipeline", { version: 1 })
      .action("build", {
        produces: { image: z.string() },
        run: () => ({ image: "img" }),
        undo: () => void ran.push("build undo"),
      })
      .action("deploy", {
        reads: ["image"],
        run: () => {
          throw new Error("deploy failed");
        },
        cleanup: () => {
          throw new Error("stack already gone");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [pipeline] });
    const handle = await executor.start(pipeline, {});
    expect((await within(handle.result(), "the rollback")).status).toBe("compensated");
    expect(ran).toEqual(["build undo"]);
    const failed = (await executor.history(handle.id)).find((e) => e.type === "cleanup:failed");
    expect(failed?.data).toEqual({ attempt: 1, error: "stack already gone" });
  });

  it("runs after an attempt its process never finished, on recovery, before the attempt runs again", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const pipeline = saga("pipeline", { version: 1 })
      .action("build", {
        produces: { image: z.string() },
        run: () => ({ image: "img" }),
        undo: () => void ran.push("build undo"),
      })
      .action("deploy", {
        reads: ["image"],
        run: async (_input, ctx) => {
          ran.push(`deploy run ${ctx.attempt}`);
          if (ctx.attempt === 1) await gate;
        },
        cleanup: (_input, ctx) => void ran.push(`deploy cleanup ${ctx.attempt}`),
      })
      .build();

    // The first executor stops while the deploy runs: its attempt never completes.
    const first = await h.executor({ sagas: [pipeline] });
    const resumed = await first.start(pipeline, {});
    await eventually(() => ran.includes("deploy run 1"), "the deploy to run");
    const closing = first.close();
    release();
    await closing;
    const second = await h.executor({ sagas: [pipeline], recover: false });
    expect(await second.recover()).toBe(1);
    expect((await within(second.result(resumed.id), "recovery")).status).toBe("completed");
    expect(ran).toEqual(["deploy run 1", "deploy cleanup 1", "deploy run 2"]);
    const started = (await second.history(resumed.id)).find((e) => e.type === "cleanup:started");
    expect(started?.data).toEqual({ attempt: 1, interrupted: true });
  });

  it("cleans up after an interrupted attempt when the run is cancelled before anyone continues it", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const pipeline = saga("pipeline", { version: 1 })
      .action("build", {
        produces: { image: z.string() },
        run: () => ({ image: "img" }),
        undo: () => void ran.push("build undo"),
      })
      .action("deploy", {
        reads: ["image"],
        run: async () => {
          ran.push("deploy run");
          await gate;
        },
        cleanup: () => void ran.push("deploy cleanup"),
      })
      .build();
    const first = await h.executor({ sagas: [pipeline] });
    const handle = await first.start(pipeline, {});
    await eventually(() => ran.includes("deploy run"), "the deploy to run");
    const closing = first.close();
    release();
    await closing;
    const second = await h.executor({ sagas: [pipeline], recover: false });
    await second.cancel(handle.id, "operator");
    expect(await second.recover()).toBe(1);
    expect((await within(second.result(handle.id), "the cancel")).status).toBe("cancelled");
    expect(ran).toEqual(["deploy run", "deploy cleanup", "build undo"]);
  });

  it("with onFailure hold: cleans up after the failed action, then holds", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    const held = saga("held", { version: 1, onFailure: "hold" })
      .action("deploy", {
        run: () => {
          throw new Error("nope");
        },
        cleanup: () => void ran.push("deploy cleanup"),
      })
      .build();
    const executor = await h.executor({ sagas: [held] });
    const handle = await executor.start(held, {});
    expect((await within(handle.result(), "the hold")).status).toBe("failed");
    expect(ran).toEqual(["deploy cleanup"]);
    expect((await executor.get(handle.id))?.steps[0]?.status).toBe("failed");
    // Followers stop at `run:failed`: it comes once the cleanup is done.
    const history = await executor.history(handle.id);
    expect(history.map((e) => e.type).slice(-4)).toEqual([
      "cleanup:started",
      "cleanup:completed",
      "action:failed",
      "run:failed",
    ]);
  });

  it("retries a run held before its cleanup ran (its process died): cleanup first, then the action again", async () => {
    const h = harness(backend);
    const ran: string[] = [];
    let fixed = false;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = saga("held", { version: 1, onFailure: "hold" })
      .action("deploy", {
        run: (_input, ctx) => {
          ran.push(`deploy run ${ctx.attempt}`);
          if (!fixed) throw new Error("nope");
        },
        cleanup: async (_input, ctx) => {
          ran.push(`deploy cleanup ${ctx.attempt}`);
          if (ctx.attempt === 1 && !fixed) await gate;
        },
      })
      .build();
    const first = await h.executor({ sagas: [held] });
    const handle = await first.start(held, {});
    await eventually(() => ran.includes("deploy cleanup 1"), "the cleanup to start");
    // The process stops while the cleanup runs: held, the failed attempt not cleaned up after.
    const closing = first.close();
    release();
    await closing;
    fixed = true;
    const second = await h.executor({ sagas: [held], recover: false });
    await second.retry(handle.id);
    expect((await within(second.result(handle.id), "the retry")).status).toBe("completed");
    expect(ran).toEqual(["deploy run 1", "deploy cleanup 1", "deploy cleanup 1", "deploy run 2"]);
  });
});
