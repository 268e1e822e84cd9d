/**
 * Isolated actions: a body in its own worker thread or child process. Whatever goes wrong there
 * (out of memory, process.exit, a throw from a timer, a runaway loop, a plain failure) fails that
 * action alone, while 100 healthy runs beside it all complete.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { isolated } from "../../../src/engine/isolated.js";
import { backends, captureLogs, harness, within } from "../../helpers.js";
import type * as bodies from "./fixtures/isolated-bodies.js";

const BODIES = new URL("./fixtures/isolated-bodies.ts", import.meta.url);
/** Memory storage (the crash is the point, not the backend), or the one backend a run is limited to. */
const memory = backends.find((b) => b.name === "memory") ?? backends[0]!;

describe.each(["thread", "process"] as const)("isolated actions in a %s", (where) => {
  it("runs the body with its input and context: output, log lines and progress come back", async () => {
    const h = harness(memory);
    const logs = captureLogs();
    const math = saga("math", { version: 1, input: { n: z.number() } })
      .action("double", {
        reads: ["n"],
        produces: { doubled: z.number() },
        run: isolated<typeof bodies.double>({ module: BODIES, export: "double", in: where }),
      })
      .build();
    const executor = await h.executor({ sagas: [math], logger: logs.logger });
    const progress: string[] = [];
    executor.on((event) => {
      if (event.type === "action:progress") progress.push(String(event.data?.message));
    });
    const handle = await executor.start(math, { n: 21 });
    const result = await within(handle.result(), "the run");
    expect(result.status).toBe("completed");
    expect(result.output.doubled).toBe(42);
    expect(progress).toEqual(["halfway"]);
    expect(logs.lines.find((l) => l.msg === "doubling")).toMatchObject({
      n: 21,
      runId: handle.id,
      action: "double",
      isolated: where,
    });
  });

  const cases = [
    { body: "hog", memoryMb: 32, error: "ran out of memory (limit 32 MiB)" },
    { body: "quit", error: "exited with code 3 before it answered" },
    { body: "timer", error: "thrown from a timer" },
    { body: "fail", error: "build failed: missing header" },
    { body: "spin", timeoutMs: 1_000, error: "timed out after 1000 ms" },
  ] as const;

  it.each(cases)("`$body` fails its action alone; 100 healthy runs beside it complete", async (c) => {
    const h = harness(memory);
    const undone: string[] = [];
    const broken = saga("broken", { version: 1 })
      .action("prepare", { run: () => {}, undo: () => void undone.push("prepare") })
      .action("build", {
        after: ["prepare"],
        ...("timeoutMs" in c && { timeoutMs: c.timeoutMs }),
        run: isolated({
          module: BODIES,
          export: c.body,
          in: where,
          ...("memoryMb" in c && { memoryMb: c.memoryMb }),
        }),
      })
      .build();
    const healthy = saga("healthy", { version: 1 })
      .action("work", { run: () => new Promise<void>((resolve) => setTimeout(resolve, 5)) })
      .build();
    const executor = await h.executor({ sagas: [broken, healthy] });
    const handle = await executor.start(broken, {});
    const others = await Promise.all(Array.from({ length: 100 }, () => executor.start(healthy, {})));
    const result = await within(handle.result(), "the broken run");
    expect(result.status).toBe("compensated");
    expect(result.cause).toMatchObject({ kind: "failure", action: "build" });
    expect(result.cause?.kind === "failure" && result.cause.error.message).toContain(c.error);
    expect(undone).toEqual(["prepare"]);
    const results = await within(Promise.all(others.map((o) => o.result())), "the healthy runs");
    expect(results.filter((r) => r.status !== "completed")).toEqual([]);
  });
});

describe("isolated()", () => {
  it("refuses a relative module path and a tiny heap, saying what to write instead", () => {
    expect(() => isolated({ module: "./build.js" })).toThrow(/new URL\("\.\/build\.js", import\.meta\.url\)/);
    expect(() => isolated({ module: BODIES, memoryMb: 1 })).toThrow(/at least 16/);
  });
});
