/** Events, progress, history and logs: what a listener or an operator sees of a run. */

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import type { RunEvent } from "../../../src/engine/events.js";
import { log as globalLog } from "../../../src/logging.js";
import { stagedRefSchema } from "../../../src/staging/staging.js";
import { backends, captureLogs, eventually, harness, within } from "../../helpers.js";

describe.each(backends)("observability on $name", (backend) => {
  it("streams lifecycle and progress events to a subscriber, and keeps the history", async () => {
    const h = harness(backend);
    const build = saga("build", { version: 1 })
      .action("compile", {
        produces: { binary: z.string() },
        run: (_input, ctx) => {
          ctx.progress("compiling", { percent: 50 });
          ctx.progress("linking", { percent: 100 });
          return { binary: "app" };
        },
      })
      .action("package", { reads: ["binary"], run: () => undefined })
      .build();
    const executor = await h.executor({ sagas: [build] });
    const id = executor.newRunId();
    const seen: RunEvent[] = [];
    const listening = (async () => {
      for await (const event of executor.subscribe(id)) seen.push(event);
    })();
    await executor.start(build, {}, { id, runName: "T-12-main-1" });
    await within(listening, "the subscription to end with the run");
    expect(seen.map((e) => `${e.type}${e.action ? `:${e.action}` : ""}`)).toEqual([
      "run:started",
      "action:started:compile",
      "action:progress:compile",
      "action:progress:compile",
      "action:completed:compile",
      "action:started:package",
      "action:completed:package",
      "run:completed",
    ]);
    expect(seen[2]).toMatchObject({ runName: "T-12-main-1", data: { message: "compiling", percent: 50 } });
    const history = await executor.history(id);
    // Progress is live only; everything else is persisted, in order, with contiguous seqs.
    expect(history.map((e) => e.type)).toEqual(
      seen.filter((e) => e.type !== "action:progress").map((e) => e.type),
    );
    expect(history.map((e) => e.seq)).toEqual(history.map((_e, i) => i + 1));
  });

  it("tags every log line written inside an action, without the action passing anything", async () => {
    const h = harness(backend);
    const { lines, logger } = captureLogs();
    const helper = () => globalLog.info("deep inside a helper");
    const logs = saga("logs", { version: 1 })
      .action("work", {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        run: async (_input, ctx) => {
          ctx.log.info("via the context");
          await new Promise((resolve) => setTimeout(resolve, 1));
          helper();
          if (ctx.attempt === 1) throw new Error("retry me");
        },
      })
      .build();
    const executor = await h.executor({ sagas: [logs], logger });
    const captured: Record<string, unknown>[] = [];
    const original = globalLog.info.bind(globalLog);
    // The global logger writes to stdout; route it through the captured one for this test.
    globalLog.info = ((...args: Parameters<typeof original>) =>
      logger.info(...args)) as typeof globalLog.info;
    try {
      const handle = await executor.start(logs, {}, { runName: "PKG-7-fix-2" });
      await within(handle.result(), "completion");
      captured.push(...lines.filter((l) => l.msg !== undefined));
      const expected = { runId: handle.id, runName: "PKG-7-fix-2", saga: "logs", action: "work" };
      const inside = captured.filter((l) => l.msg === "via the context" || l.msg === "deep inside a helper");
      expect(inside).toHaveLength(4);
      for (const line of inside) expect(line).toMatchObject(expected);
      // `executionId`, the 0.1 name of `runId`, stays in every line for queries written against it.
      for (const line of inside) expect(line.executionId).toBe(handle.id);
      expect(inside.map((l) => l.attempt)).toEqual([1, 1, 2, 2]);
    } finally {
      globalLog.info = original;
    }
  });

  it("stages an inbound stream durably, readable by actions, removed when the run ends", async () => {
    const h = harness(backend);
    const receive = saga("receive", { version: 1, input: { source: stagedRefSchema } })
      .action("extract", {
        reads: ["source"],
        produces: { text: z.string() },
        run: async ({ source }, ctx) => ({ text: await readFile(ctx.stagedPath(source), "utf8") }),
      })
      .build();
    const executor = await h.executor({ sagas: [receive] });
    const id = executor.newRunId();
    const ref = await executor.stage(
      id,
      "source.tar",
      Readable.from([Buffer.from("hello "), Buffer.from("world")]),
    );
    expect(ref).toMatchObject({ kind: "staged", runId: id, name: "source.tar", bytes: 11 });
    const path = join(h.dir, "data", ref.path);
    expect(existsSync(path)).toBe(true);
    const result = await within(
      (await executor.start(receive, { source: ref }, { id })).result(),
      "completion",
    );
    expect(result.output.text).toBe("hello world");
    await eventually(() => !existsSync(path), "staged data to be removed");
  });

  it("sweeps staged data that no run will read", async () => {
    const h = harness(backend);
    const nothing = saga("nothing", { version: 1 })
      .action("noop", { run: () => undefined })
      .build();
    const first = await h.executor({ sagas: [nothing] });
    const orphan = first.newRunId();
    const ref = await first.stage(orphan, "upload.bin", Readable.from([Buffer.from("x")]));
    await first.close();
    // Staged, then the process died before starting the run: swept on the next open.
    await h.executor({ sagas: [nothing], stagedGraceMs: 0 });
    expect(existsSync(join(h.dir, "data", ref.path))).toBe(false);
  });

  it("keeps what an attempt recorded of its timing on the event that ends it, without a write of its own", async () => {
    const h = harness(backend);
    const flaky = saga("flaky", { version: 1 })
      .action("deploy", {
        retry: { maxAttempts: 2, initialDelayMs: 1 },
        produces: { stack: z.string() },
        run: (_input, ctx) => {
          ctx.timing?.({ admission: { at: 1, grantedAt: null, waits: [] }, attempt: ctx.attempt });
          if (ctx.attempt === 1) throw new Error("flaked");
          ctx.timing?.({ grantedAt: 2 });
          return { stack: "s1" };
        },
        undo: (_input, _output, ctx) => ctx.timing?.({ undone: true }),
      })
      .action("fail", { reads: ["stack"], run: () => Promise.reject(new Error("no")) })
      .build();
    const executor = await h.executor({ sagas: [flaky] });
    const handle = await executor.start(flaky);
    expect((await within(handle.result(), "the run")).status).toBe("compensated");
    const ends = (await executor.history(handle.id))
      .filter((e) => e.action === "deploy" && e.type !== "action:started" && e.type !== "undo:started")
      .map((e) => [e.type, e.data?.timing]);
    expect(ends).toEqual([
      ["action:failed", { admission: { at: 1, grantedAt: null, waits: [] }, attempt: 1 }],
      // Later calls merge into earlier ones.
      ["action:completed", { admission: { at: 1, grantedAt: null, waits: [] }, attempt: 2, grantedAt: 2 }],
      ["undo:completed", { undone: true }],
    ]);
  });
});
