/** Child runs: a step that starts another saga and waits durably for it; failures, cancels and undos both ways. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { Executor } from "../../../src/engine/executor.js";
import { backends, eventually, harness, within } from "../../helpers.js";

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
});
