/** Waking parked runs: claims folded into the first transition, races between executors, slots. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { backends, captureLogs, eventually, harness, within } from "../../helpers.js";

function approvalSaga(runs: Map<string, number>) {
  return saga("approval", { version: 1 })
    .waitForSignal("approve", { signal: "go", produces: { ok: z.boolean() } })
    .action("finish", {
      reads: ["ok"],
      produces: { done: z.boolean() },
      run: ({ ok }, ctx) => {
        runs.set(ctx.runId, (runs.get(ctx.runId) ?? 0) + 1);
        return { done: ok };
      },
    })
    .build();
}

describe.each(backends)("claims on $name", (backend) => {
  it("wakes parked runs with one write each: the claim rides on the first transition", async () => {
    const h = harness(backend);
    const runs = new Map<string, number>();
    const approval = approvalSaga(runs);
    const executor = await h.executor({ sagas: [approval] });
    const handles = await Promise.all(Array.from({ length: 300 }, () => executor.start(approval, {})));
    await eventually(() => executor.activeRuns === 0, "all parked");
    const revisions = new Map<string, number>();
    for (const { id } of handles) revisions.set(id, (await h.storage.getRun(id))!.revision);
    await Promise.all(handles.map((handle) => executor.signal(handle.id, "go", { ok: true })));
    const results = await within(Promise.all(handles.map((handle) => handle.result())), "completions");
    expect(results.every((r) => r.status === "completed" && r.output.done === true)).toBe(true);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    for (const { id } of handles) {
      const record = (await h.storage.getRun(id))!;
      expect(record.owner).toBeNull();
      // Two transitions (the wake-up with its claim, then the end), no separate claim.
      expect(record.revision).toBe(revisions.get(id)! + 2);
    }
  });

  it("two executors waking the same runs at once: each runs exactly once, the losers stay quiet", async () => {
    const h = harness(backend);
    const runs = new Map<string, number>();
    const approval = approvalSaga(runs);
    const logsA = captureLogs();
    const logsB = captureLogs();
    const a = await h.executor({ sagas: [approval], logger: logsA.logger, recover: false });
    const handles = await Promise.all(Array.from({ length: 100 }, () => a.start(approval, {})));
    await eventually(() => a.activeRuns === 0, "all parked");
    const b = await h.executor({ sagas: [approval], logger: logsB.logger, recover: false });
    // A signals (and starts claiming) all of them; B recovers them (pending signals) before A's
    // claims have committed: both load the same revisions, one first transition wins per run.
    await Promise.all(handles.map((handle) => a.signal(handle.id, "go", { ok: true })));
    const recovered = b.recover();
    const results = await within(Promise.all(handles.map((handle) => a.result(handle.id))), "completions");
    await recovered;
    expect(results.every((r) => r.status === "completed")).toBe(true);
    expect(runs.size).toBe(100);
    expect([...runs.values()].every((n) => n === 1)).toBe(true);
    await eventually(() => a.activeRuns + b.activeRuns === 0, "both idle");
    const errors = [...logsA.lines, ...logsB.lines].filter((line) => (line.level as number) >= 50);
    expect(errors).toEqual([]);
  });

  it("a signal that lands while its run is being loaded is delivered", async () => {
    const h = harness(backend);
    const twice = saga("twice", { version: 1 })
      .waitForSignal("first", { signal: "one", produces: { a: z.number() } })
      .waitForSignal("second", { signal: "two", produces: { b: z.number() }, after: ["first"] })
      .build();
    const executor = await h.executor({ sagas: [twice], pollIntervalMs: 60_000 });
    const handle = await executor.start(twice, {});
    await eventually(() => executor.activeRuns === 0, "parked");
    // Both sent in the same turn: the second is persisted after the wake-up load was requested.
    const sent = [executor.signal(handle.id, "one", { a: 1 }), executor.signal(handle.id, "two", { b: 2 })];
    await Promise.all(sent);
    const result = await within(handle.result(), "completion without waiting for a poll");
    expect(result.output).toMatchObject({ a: 1, b: 2 });
  });

  it("bounds running bodies by maxConcurrentActions and hands freed slots on in order", async () => {
    const h = harness(backend);
    let running = 0;
    let peak = 0;
    const order: number[] = [];
    /** Each body holds its slot until the test releases it. */
    const release = new Map<number, () => void>();
    const slow = saga("slow", { version: 1, input: { n: z.number() } })
      .action("work", {
        reads: ["n"],
        produces: { m: z.number() },
        run: async ({ n }) => {
          order.push(n);
          peak = Math.max(peak, ++running);
          await new Promise<void>((resolve) => release.set(n, resolve));
          running--;
          return { m: n };
        },
      })
      .build();
    const executor = await h.executor({ sagas: [slow], maxConcurrentActions: 2 });
    const handles = [];
    for (let n = 0; n < 12; n++) handles.push(await executor.start(slow, { n }));
    await eventually(() => running === 2, "two bodies running");
    for (let n = 0; n < 12; n++) {
      await eventually(() => release.has(n), `body ${n} to start`);
      expect(running).toBeLessThanOrEqual(2);
      release.get(n)!();
    }
    const results = await within(Promise.all(handles.map((handle) => handle.result())), "completions");
    expect(results.map((r) => r.output.m)).toEqual(Array.from({ length: 12 }, (_, n) => n));
    expect(peak).toBe(2);
    expect(order).toEqual(Array.from({ length: 12 }, (_, n) => n));
  });
});
