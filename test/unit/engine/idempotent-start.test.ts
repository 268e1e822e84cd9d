/** Starting with an id that exists: the same start returns the existing run, another is refused. */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { IdempotencyConflictError } from "../../../src/errors.js";
import { backends, eventually, harness, within } from "../../helpers.js";

/** A run that stays live in memory: `work` holds until released, `approve` waits beside it. */
function liveSaga(state: { started: number; release: () => void }) {
  const gate = new Promise<void>((resolve) => (state.release = resolve));
  return saga("live", { version: 1, input: { change: z.string(), tags: z.array(z.string()) } })
    .action("work", {
      run: async () => {
        state.started++;
        await gate;
      },
    })
    .waitForSignal("approve", { signal: "approved", produces: { by: z.string() } })
    .build();
}

describe.each(backends)("idempotent start on $name", (backend) => {
  it("the same id, saga and input return the existing run, live or ended", async () => {
    const h = harness(backend);
    const state = { started: 0, release: () => {} };
    const live = liveSaga(state);
    // No storage poll within the test: a signal reaches the run only if it is still hosted.
    const executor = await h.executor({ sagas: [live], pollIntervalMs: 60_000 });
    const first = await executor.start(live, { change: "c1", tags: ["a"] }, { id: "run-1" });
    await eventually(() => state.started === 1, "the action to start");
    const again = await executor.start(live, { change: "c1", tags: ["a"] }, { id: "run-1" });
    expect(again.id).toBe("run-1");
    expect(state.started).toBe(1);
    // The live run is untouched: its signal is picked up at once.
    await executor.signal("run-1", "approved", { by: "alice" });
    state.release();
    const [a, b] = await within(Promise.all([first.result(), again.result()]), "completion");
    expect(a.status).toBe("completed");
    expect(b).toEqual(a);
    const ended = await executor.start(live, { change: "c1", tags: ["a"] }, { id: "run-1" });
    expect((await within(ended.result(), "the ended result")).output.by).toBe("alice");
    expect(state.started).toBe(1);
  });

  it("two starts of one id at once create one run", async () => {
    const h = harness(backend);
    let runs = 0;
    const once = saga("once", { version: 1, input: { n: z.number() } })
      .action("work", { run: () => void runs++ })
      .build();
    const executor = await h.executor({ sagas: [once] });
    const handles = await Promise.all([
      executor.start(once, { n: 1 }, { id: "same" }),
      executor.start(once, { n: 1 }, { id: "same" }),
    ]);
    const results = await within(Promise.all(handles.map((handle) => handle.result())), "completion");
    expect(results.map((r) => r.status)).toEqual(["completed", "completed"]);
    expect(runs).toBe(1);
  });

  it("another input or saga under an existing id is refused with idempotency_conflict, saying what differs", async () => {
    const h = harness(backend);
    const state = { started: 0, release: () => {} };
    const live = liveSaga(state);
    const other = saga("other", { version: 1, input: { change: z.string() } })
      .action("x", { run: () => undefined })
      .build();
    const executor = await h.executor({ sagas: [live, other], pollIntervalMs: 60_000 });
    const handle = await executor.start(live, { change: "c1", tags: ["a"] }, { id: "run-2" });
    await eventually(() => state.started === 1, "the action to start");
    const refused = executor.start(live, { change: "c2", tags: ["a"] }, { id: "run-2" });
    await expect(refused).rejects.toThrow(IdempotencyConflictError);
    await expect(refused).rejects.toMatchObject({
      code: "idempotency_conflict",
      message:
        "run run-2 already exists with a different input (change differs): start with a new id, " +
        "or repeat the original start to get the existing run",
    });
    await expect(executor.start(other, { change: "c1" }, { id: "run-2" })).rejects.toMatchObject({
      code: "idempotency_conflict",
      message: expect.stringContaining("already exists as saga live v1, not other v1"),
    });
    // The live run is untouched.
    await executor.signal("run-2", "approved", { by: "bob" });
    state.release();
    expect((await within(handle.result(), "completion")).output.by).toBe("bob");
    expect(state.started).toBe(1);
  });

  it("repeated starts of an existing id keep no action slot", async () => {
    const h = harness(backend);
    const state = { started: 0, release: () => {} };
    const live = liveSaga(state);
    const quick = saga("quick", { version: 1 })
      .action("a", { run: () => undefined })
      .action("b", { run: () => undefined })
      .build();
    const executor = await h.executor({
      sagas: [live, quick],
      maxConcurrentActions: 2,
      pollIntervalMs: 60_000,
    });
    const held = await executor.start(live, { change: "c1", tags: [] }, { id: "held" });
    await eventually(() => state.started === 1, "the action to start");
    const ended = await executor.start(quick, {}, { id: "ended" });
    await within(ended.result(), "the first quick run");
    for (let i = 0; i < 4; i++) {
      await executor.start(live, { change: "c1", tags: [] }, { id: "held" });
      await expect(executor.start(live, { change: "c9", tags: [] }, { id: "held" })).rejects.toThrow(
        IdempotencyConflictError,
      );
      await executor.start(quick, {}, { id: "ended" });
      await expect(executor.start(live, { change: "c1", tags: [] }, { id: "ended" })).rejects.toThrow(
        IdempotencyConflictError,
      );
    }
    // One slot is held by `work`; the other is free for both of quick's actions, one after the other.
    const fresh = await executor.start(quick, {});
    expect((await within(fresh.result(), "a fresh run")).status).toBe("completed");
    await executor.signal("held", "approved", { by: "carol" });
    state.release();
    expect((await within(held.result(), "the held run")).status).toBe("completed");
  });
});

describe.each(backends)("idempotent start across executors on $name", (backend) => {
  it("a start racing another process's creation of the same id returns that run", async () => {
    const h = harness(backend);
    let runs = 0;
    const once = saga("once", { version: 1, input: { n: z.number() } })
      .action("work", { run: () => void runs++ })
      .build();
    // One action slot each: a slot kept by the refused creation would stop that executor for good.
    const a = await h.executor({ sagas: [once], maxConcurrentActions: 1 });
    const b = await h.executor({ sagas: [once], maxConcurrentActions: 1 });
    const handles = await Promise.all([
      a.start(once, { n: 1 }, { id: "race" }),
      b.start(once, { n: 1 }, { id: "race" }),
    ]);
    const results = await within(Promise.all(handles.map((handle) => handle.result())), "completion");
    expect(results.map((r) => r.status)).toEqual(["completed", "completed"]);
    expect(runs).toBe(1);
    await expect(b.start(once, { n: 2 }, { id: "race" })).rejects.toThrow(/n differs/);
    for (const executor of [a, b]) {
      const fresh = await executor.start(once, { n: 3 });
      expect((await within(fresh.result(), "a fresh run")).status).toBe("completed");
    }
  });
});
