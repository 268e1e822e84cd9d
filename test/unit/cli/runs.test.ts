/** `slipway ls` and `slipway show` read runs from the SQLite file, as text and as JSON. */
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { Executor } from "../../../src/engine/executor.js";
import { createLogger } from "../../../src/logging.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import { eventually, tempDir, within } from "../../helpers.js";
import { run } from "./cli.js";

describe("slipway ls and show", () => {
  it("list runs and show where each stands, failures and waits included", async () => {
    const dir = tempDir();
    const db = join(dir, "state", "slipway.db");
    const storage = new SqliteStorage({ path: db });
    const release = saga("release", { version: 1 })
      .action("build", { run: () => undefined })
      .action("publish", {
        after: ["build"],
        run: () => {
          throw new Error("registry refused the push");
        },
      })
      .build();
    const gated = saga("gated", { version: 1 }).waitForSignal("approve", { signal: "approved" }).build();
    const executor = await Executor.open({
      storage,
      sagas: [release, gated],
      dataDir: dir,
      logger: createLogger({ level: "silent" }),
    });
    const failed = await executor.start(release, {}, { runName: "rel-main-1" });
    await within(failed.result(), "the failed run");
    const waiting = await executor.start(gated, {});
    await eventually(async () => (await storage.getRun(waiting.id))?.status === "waiting", "the wait");
    await executor.close();
    await storage.close();

    const listed = await run("ls", "--db", db);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/^ID +NAME +PIPELINE +STATUS/);
    expect(listed.out).toContain("rel-main-1");
    expect(listed.out).toMatch(new RegExp(`${waiting.id} +- +gated +waiting`));
    const json = JSON.parse((await run("ls", "--db", db, "--json")).out) as { id: string; status: string }[];
    expect(json.map((r) => [r.id, r.status])).toEqual([
      [waiting.id, "waiting"],
      [failed.id, "compensated"],
    ]);

    const shown = await run("show", "rel-main-1", "--db", db);
    expect(shown.code).toBe(0);
    expect(shown.out).toContain("status    compensated");
    expect(shown.out).toContain("failed    publish: registry refused the push");
    expect(shown.out).toMatch(/publish +failed +1 +\S+ +- +registry refused the push/);
    const parked = await run("show", waiting.id, "--db", db);
    expect(parked.out).toMatch(/approve +waiting +1 +\S+ +- +waiting for signal "approved"/);
    const shownJson = JSON.parse((await run("show", waiting.id, "--db", db, "--json")).out) as {
      steps: unknown[];
      waiting: unknown[];
      criticalPath: unknown;
    };
    expect(shownJson.steps).toHaveLength(1);
    // The NOTE column above is the service's `waiting`, the queue's answer.
    expect(shownJson.waiting).toEqual([
      expect.objectContaining({ job: "approve", state: "waiting", reason: "signal" }),
    ]);
    expect(shownJson.criticalPath).toBeNull();

    expect(await run("show", "nope", "--db", db)).toMatchObject({ code: 1, err: 'slipway: no run "nope"\n' });
    expect((await run("show", "--db", db)).code).toBe(2);
  });
});

describe("slipway signal", () => {
  it("persists a signal from another process's point of view; the run picks it up", async () => {
    const dir = tempDir();
    const db = join(dir, "slipway.db");
    const storage = new SqliteStorage({ path: db });
    const gated = saga("gated", { version: 1 })
      .waitForSignal("approve", { signal: "approved", produces: { by: z.string() } })
      .build();
    const executor = await Executor.open({
      storage,
      sagas: [gated],
      dataDir: dir,
      pollIntervalMs: 20,
      logger: createLogger({ level: "silent" }),
    });
    try {
      const handle = await executor.start(gated, {}, { runName: "gate-1" });
      const sent = await run("signal", "gate-1", "approved", '{"by":"ops"}', "--db", db);
      expect(sent).toMatchObject({ code: 0, out: expect.stringContaining('signal "approved" sent to') });
      const result = await within(handle.result(), "the signalled run");
      expect(result.output).toMatchObject({ by: "ops" });
      expect((await run("signal", "gate-1", "approved", "{oops", "--db", db)).code).toBe(2);
      const ended = await run("signal", "gate-1", "approved", "--db", db);
      expect(ended.code).toBe(1);
      expect(ended.err).toContain("has already ended");
    } finally {
      await executor.close();
      await storage.close();
    }
  });
});

describe("slipway cancel", () => {
  it("requests a cancel that the running process acts on: undo runs, status cancelled", async () => {
    const dir = tempDir();
    const db = join(dir, "slipway.db");
    const storage = new SqliteStorage({ path: db });
    const undone: string[] = [];
    const deploy = saga("deploy", { version: 1 })
      .action("stack", { run: () => undefined, undo: () => void undone.push("stack") })
      .action("tests", {
        after: ["stack"],
        run: (_input, ctx) =>
          new Promise<void>((_resolve, reject) =>
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)),
          ),
      })
      .build();
    const executor = await Executor.open({
      storage,
      sagas: [deploy],
      dataDir: dir,
      pollIntervalMs: 20,
      logger: createLogger({ level: "silent" }),
    });
    try {
      const handle = await executor.start(deploy, {}, { runName: "deploy-1" });
      await eventually(
        async () =>
          (await storage.load(handle.id))?.steps.find((s) => s.action === "tests")?.status === "running",
        "the tests to run",
      );
      const cancelled = await run("cancel", "deploy-1", "--reason", "operator", "--db", db);
      expect(cancelled).toMatchObject({ code: 0, out: expect.stringContaining("is stopping its jobs") });
      const result = await within(handle.result(), "the cancel");
      expect(result.status).toBe("cancelled");
      expect(result.cause).toEqual({ kind: "cancel", reason: "operator" });
      expect(undone).toEqual(["stack"]);
      expect((await run("cancel", "deploy-1", "--db", db)).code).toBe(1);
    } finally {
      await executor.close();
      await storage.close();
    }
  });

  it("show links a child run and its parent, as text and as JSON", async () => {
    const dir = tempDir();
    const db = join(dir, "slipway.db");
    const storage = new SqliteStorage({ path: db });
    const migrate = saga("migrate", { version: 1 })
      .action("apply", { produces: { schema: z.number() }, run: () => ({ schema: 7 }) })
      .build();
    const deploy = saga("deploy", { version: 1 })
      .child("deploy-db", { saga: migrate, produces: { schema: z.number() } })
      .build();
    const executor = await Executor.open({
      storage,
      sagas: [deploy],
      dataDir: dir,
      logger: createLogger({ level: "silent" }),
    });
    const parent = await executor.start(deploy);
    expect((await within(parent.result(), "the parent")).status).toBe("completed");
    await executor.close();
    await storage.close();
    const child = `${parent.id}.deploy-db`;

    const listed = await run("ls", "--db", db);
    expect(listed.out).toContain(parent.id);
    expect(listed.out).toContain(child);
    const shown = await run("show", parent.id, "--db", db);
    expect(shown.out).toContain(`child     ${child} completed (step deploy-db, migrate)`);
    const json = JSON.parse((await run("show", parent.id, "--json", "--db", db)).out);
    expect(json.children).toEqual([
      expect.objectContaining({ id: child, step: "deploy-db", pipeline: "migrate", status: "completed" }),
    ]);
    expect(json.parent).toBeNull();
    expect((await run("show", child, "--db", db)).out).toContain(`parent    ${parent.id} (step deploy-db)`);
    const childJson = JSON.parse((await run("show", child, "--json", "--db", db)).out);
    expect(childJson).toMatchObject({ parent: { runId: parent.id, step: "deploy-db" }, children: [] });
  });
});
