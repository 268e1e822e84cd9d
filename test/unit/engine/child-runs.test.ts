/** Child runs: a step that starts another saga and waits durably for it; failures, cancels and undos both ways. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { Executor } from "../../../src/engine/executor.js";
import { SagaDefinitionError } from "../../../src/errors.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { backends, eventually, harness, within } from "../../helpers.js";
import { reach } from "./time.js";

/** What the test sagas did, in order. */
function journal() {
  const lines: string[] = [];
  return { lines, add: (line: string) => void lines.push(line) };
}

function sagas(
  log: ReturnType<typeof journal>,
  options: { childFails?: boolean; laterFails?: boolean } = {},
) {
  let release: (() => void) | undefined;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const migrate = saga("migrate", { version: 1, input: { db: z.string() } })
    .action("backup", {
      reads: ["db"],
      produces: { backup: z.string() },
      run: ({ db }) => {
        log.add(`backup ${db}`);
        return { backup: `${db}.bak` };
      },
      undo: (_input, { backup }) => log.add(`drop ${backup}`),
    })
    .action("apply", {
      reads: ["backup"],
      produces: { schema: z.number() },
      run: async ({ backup }, ctx) => {
        if (options.childFails) throw new Error("migration 7 failed");
        log.add(`apply after ${backup}`);
        if (release && !options.laterFails) await Promise.race([gate, aborted(ctx.signal)]);
        return { schema: 7 };
      },
      undo: () => log.add("revert schema"),
    })
    .build();
  const deploy = saga("deploy", { version: 1, input: { service: z.string() } })
    .action("build", {
      reads: ["service"],
      produces: { image: z.string() },
      run: ({ service }) => ({ image: `${service}:1` }),
      undo: () => log.add("delete image"),
    })
    .child("deploy-db", {
      saga: migrate,
      // Reads the image so that the image is undone only after the child run.
      reads: ["service", "image"],
      input: ({ service, image }) => ({ db: `${service}-db`, ...(image === "" && { db: "none" }) }),
      produces: { schema: z.number(), backup: z.string() },
    })
    .action("roll-out", {
      reads: ["image", "schema"],
      produces: { url: z.string() },
      run: ({ image, schema }) => {
        if (options.laterFails) throw new Error("roll-out failed");
        return { url: `https://svc/${image}/${schema}` };
      },
    })
    .build();
  return { migrate, deploy, release: () => release?.() };
}

function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) =>
    signal.addEventListener("abort", () => reject(signal.reason), { once: true }),
  );
}

async function statusOf(executor: Executor, id: string) {
  return (await executor.get(id))?.run.status;
}

describe.each(backends)("child runs on $name", (backend) => {
  it("the child's produced values become the step's output", async () => {
    const log = journal();
    const { deploy, release } = sagas(log);
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const childId = `${handle.id}.deploy-db`;
    await eventually(async () => (await statusOf(executor, childId)) === "running", "the child run");
    // The parent holds nothing while its child runs.
    await eventually(async () => (await statusOf(executor, handle.id)) === "waiting", "the parent parked");
    release();
    const result = await within(handle.result(), "the parent's end");
    expect(result.status).toBe("completed");
    expect(result.output).toMatchObject({ schema: 7, backup: "shop-db.bak", url: "https://svc/shop:1/7" });
    const child = await executor.get(childId);
    expect(child!.run.status).toBe("completed");
    expect(child!.run.parent).toEqual({ runId: handle.id, step: "deploy-db" });
    expect(await h.storage.listRuns({ parent: handle.id })).toHaveLength(1);
  });

  it("refuses a signal that poses as a child run's end", async () => {
    const log = journal();
    const { deploy, release } = sagas(log);
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const forged = { run: `${handle.id}.deploy-db`, status: "completed", values: {}, error: null };
    await expect(executor.signal(handle.id, "child:deploy-db", forged)).rejects.toThrow(/reserved/);
    release();
    expect((await within(handle.result(), "the parent's end")).status).toBe("completed");
  });

  it("a child's failure fails the step, and the parent undoes what completed", async () => {
    const log = journal();
    const { deploy } = sagas(log, { childFails: true });
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const result = await within(handle.result(), "the parent's end");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({ kind: "failure", action: "deploy-db" });
    const step = (await executor.get(handle.id))!.steps.find((s) => s.action === "deploy-db")!;
    expect(step.error?.message).toBe(
      `child run ${handle.id}.deploy-db failed: action "apply" failed: migration 7 failed`,
    );
    expect(await statusOf(executor, `${handle.id}.deploy-db`)).toBe("compensated");
    expect(log.lines).toEqual(["backup shop-db", "drop shop-db.bak", "delete image"]);
  });

  it("cancelling the parent cancels the child, and waits for it to undo before undoing the rest", async () => {
    const log = journal();
    const { deploy } = sagas(log);
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const childId = `${handle.id}.deploy-db`;
    await eventually(async () => log.lines.includes("apply after shop-db.bak"), "the child's apply");
    await executor.cancel(handle.id, "release abandoned");
    const result = await within(handle.result(), "the parent's end");
    expect(result.status).toBe("cancelled");
    const child = await executor.get(childId);
    expect(child!.run.status).toBe("cancelled");
    expect(child!.run.cause).toEqual({ kind: "cancel", reason: `stopped by its parent run ${handle.id}` });
    // The child's undo ended before the parent undid what the child's step read.
    expect(log.lines).toEqual([
      "backup shop-db",
      "apply after shop-db.bak",
      "drop shop-db.bak",
      "delete image",
    ]);
  });

  it("cancelling the child fails the parent's step, and the parent undoes", async () => {
    const log = journal();
    const { deploy } = sagas(log);
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const childId = `${handle.id}.deploy-db`;
    await eventually(async () => log.lines.includes("apply after shop-db.bak"), "the child's apply");
    await executor.cancel(childId, "wrong database");
    const result = await within(handle.result(), "the parent's end");
    expect(result.status).toBe("compensated");
    const step = (await executor.get(handle.id))!.steps.find((s) => s.action === "deploy-db")!;
    expect(step.error?.message).toBe(`child run ${childId} failed: cancelled: wrong database`);
    expect(await statusOf(executor, childId)).toBe("cancelled");
    expect(log.lines).toEqual([
      "backup shop-db",
      "apply after shop-db.bak",
      "drop shop-db.bak",
      "delete image",
    ]);
  });

  it("a later failure of the parent undoes its completed child run", async () => {
    const log = journal();
    const { deploy } = sagas(log, { laterFails: true });
    const h = harness(backend);
    const executor = await h.executor({ sagas: [deploy] });
    const handle = await executor.start(deploy, { service: "shop" });
    const result = await within(handle.result(), "the parent's end");
    expect(result.status).toBe("compensated");
    const childId = `${handle.id}.deploy-db`;
    const child = await executor.get(childId);
    expect(child!.run.status).toBe("compensated");
    expect(child!.run.cause).toEqual({ kind: "parent", runId: handle.id, step: "deploy-db" });
    expect(child!.steps.map((s) => [s.action, s.status])).toEqual([
      ["backup", "undone"],
      ["apply", "undone"],
    ]);
    const step = (await executor.get(handle.id))!.steps.find((s) => s.action === "deploy-db")!;
    expect(step.status).toBe("undone");
    expect(log.lines).toEqual([
      "backup shop-db",
      "apply after shop-db.bak",
      "revert schema",
      "drop shop-db.bak",
      "delete image",
    ]);
  });

  it("takes the child's values whole (output) or mapped (fromResult), and reuses a child registered by hand", async () => {
    const count = saga("count", { version: 1, input: { upTo: z.number() } })
      .action("list", {
        reads: ["upTo"],
        output: z.array(z.number()),
        run: ({ upTo }) => Array.from({ length: upTo }, (_, i) => i + 1),
      })
      .action("sum", {
        reads: ["list"],
        produces: { total: z.number() },
        run: ({ list }) => ({ total: list.reduce((a, b) => a + b, 0) }),
      })
      .build();
    const parent = saga("parent", { version: 1 })
      .child("whole", {
        saga: count,
        input: () => ({ upTo: 3 }),
        output: z.object({ list: z.array(z.number()), total: z.number() }),
      })
      .child("mapped", {
        saga: count,
        input: () => ({ upTo: 4 }),
        produces: { doubled: z.number() },
        fromResult: (values) => ({ doubled: (values.total ?? 0) * 2 }),
      })
      .build();
    const h = harness(backend);
    // Registered by hand beside its parent: no "registered twice".
    const executor = await h.executor({ sagas: [parent, count] });
    const result = await within((await executor.start(parent)).result(), "the parent");
    expect(result.status).toBe("completed");
    expect(result.output).toMatchObject({ whole: { list: [1, 2, 3], total: 6 }, doubled: 20 });
  });

  it("a child step whose input cannot be computed fails without starting a child", async () => {
    const child = saga("child", { version: 1 })
      .action("noop", { run: () => undefined })
      .build();
    const parent = saga("parent", { version: 1 })
      .child("broken", {
        saga: child,
        input: () => {
          throw new Error("no database named");
        },
      })
      .build();
    const h = harness(backend);
    const executor = await h.executor({ sagas: [parent] });
    const handle = await executor.start(parent);
    const result = await within(handle.result(), "the parent");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({
      kind: "failure",
      action: "broken",
      error: { message: "no database named" },
    });
    expect(await h.storage.listRuns({ parent: handle.id })).toEqual([]);
  });

  it("a child run inside a loop iteration is named after the iteration's step", async () => {
    const check = saga("check", { version: 1, input: { n: z.number() } })
      .action("test", {
        reads: ["n"],
        produces: { passed: z.boolean() },
        run: ({ n }) => ({ passed: n >= 2 }),
      })
      .build();
    const parent = saga("parent", { version: 1 })
      .loop("attempts", {
        max: 5,
        body: (steps) =>
          steps.child("verify", {
            saga: check,
            reads: ["iteration"],
            input: ({ iteration }) => ({ n: iteration as number }),
            produces: { passed: z.boolean() },
          }),
        until: ({ passed }) => passed,
      })
      .build();
    const h = harness(backend);
    const executor = await h.executor({ sagas: [parent] });
    const handle = await executor.start(parent);
    const outcome = await within(handle.result(), "the parent");
    expect(outcome, JSON.stringify(await executor.get(handle.id))).toMatchObject({ status: "completed" });
    const children = await h.storage.listRuns({ parent: handle.id });
    expect(children.map((c) => [c.id, c.parent?.step, c.status])).toEqual([
      [`${handle.id}.attempts~1.verify`, "attempts#1.verify", "completed"],
      [`${handle.id}.attempts~2.verify`, "attempts#2.verify", "completed"],
    ]);
  });

  it("a child step's timeout cancels the child, and fails once the child has undone its work", async () => {
    const log = journal();
    const slow = saga("slow", { version: 1 })
      .action("reserve", { run: () => log.add("reserve"), undo: () => log.add("release") })
      .action("hang", {
        after: ["reserve"],
        run: (_input, ctx) => aborted(ctx.signal),
      })
      .build();
    const parent = saga("parent", { version: 1 })
      .child("wait-slow", { saga: slow, timeoutMs: 60_000 })
      .build();
    const clock = new ManualClock();
    const h = harness(backend);
    const executor = await h.executor({ sagas: [parent], clock });
    const handle = await executor.start(parent);
    const childId = `${handle.id}.wait-slow`;
    await reach(clock, async () => (await statusOf(executor, handle.id)) === "waiting", "the parent parked");
    await reach(clock, () => log.lines.includes("reserve"), "the child's first action");
    await clock.advance(60_000);
    await reach(clock, async () => (await statusOf(executor, handle.id)) === "compensated", "the timeout");
    const step = (await executor.get(handle.id))!.steps[0]!;
    expect(step.error).toMatchObject({
      name: "TimeoutError",
      message: `child run ${childId} did not complete within 60000 ms`,
    });
    expect(await statusOf(executor, childId)).toBe("cancelled");
    expect(log.lines).toEqual(["reserve", "release"]);
  });

  it("a held parent cancels its running child; its retry starts a fresh child run", async () => {
    let failNext = true;
    const child = saga("child", { version: 1 })
      .action("work", {
        produces: { done: z.boolean() },
        run: async (_input, ctx) => {
          if (failNext) await aborted(ctx.signal);
          return { done: true };
        },
      })
      .build();
    const parent = saga("parent", { version: 1, onFailure: "hold" })
      .child("sub", { saga: child, produces: { done: z.boolean() } })
      .action("flaky", {
        run: () => {
          if (failNext) throw new Error("flaky failed");
        },
      })
      .build();
    const h = harness(backend);
    const executor = await h.executor({ sagas: [parent] });
    const handle = await executor.start(parent);
    await eventually(async () => (await statusOf(executor, handle.id)) === "failed", "the hold");
    await eventually(
      async () => (await statusOf(executor, `${handle.id}.sub`)) === "cancelled",
      "the child cancelled",
    );
    failNext = false;
    await executor.retry(handle.id);
    const result = await within(handle.result(), "the retried parent");
    expect(result.status).toBe("completed");
    expect(result.output.done).toBe(true);
    expect(await statusOf(executor, `${handle.id}.sub.2`)).toBe("completed");
  });

  it("refuses signal names reserved for the ends of child runs, and a child saga that is not built", () => {
    expect(() => saga("s", { version: 1 }).waitForSignal("w", { signal: "child:x" }).build()).toThrow(
      SagaDefinitionError,
    );
    expect(() =>
      saga("s", { version: 1 })
        .child("c", { saga: saga("t", { version: 1 }) as never })
        .build(),
    ).toThrow(/must be a built saga/);
  });
});
