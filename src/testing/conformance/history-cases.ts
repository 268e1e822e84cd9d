/** Conformance cases for history: event order, and batches that fail whole on a bad event or value. */
import assert from "node:assert/strict";
import type { EventRecord, Storage, Transition } from "../../storage/types.js";
import { createTransition, eventRecord, runRecord, stepRecord } from "../records.js";
import { commitOne, create, mustLoad, OWNER, observe } from "./helpers.js";

export async function historyOrder(storage: Storage): Promise<void> {
  await create(storage, "e1");
  assert.equal((await mustLoad(storage, "e1")).nextEventSeq, 1, "empty history: first seq is 1");
  assert.deepEqual(await storage.history("e1"), []);
  const event = (seq: number): EventRecord =>
    eventRecord("e1", seq, { type: `t${seq}`, action: seq % 2 ? "a" : null, data: { seq } });
  await commitOne(storage, { runId: "e1", owner: OWNER, events: [event(1), event(2), event(3)] });
  // Out of order within a transition: history is still in seq order.
  await commitOne(storage, { runId: "e1", owner: OWNER, events: [event(6), event(4), event(5)] });
  await create(storage, "e2");
  await commitOne(storage, { runId: "e2", owner: OWNER, events: [eventRecord("e2", 1)] });

  const all = [1, 2, 3, 4, 5, 6].map(event);
  assert.deepEqual(await storage.history("e1"), all);
  assert.deepEqual(await storage.history("e1", 0), all);
  assert.deepEqual(await storage.history("e1", 4), all.slice(4));
  assert.deepEqual(await storage.history("e1", 6), []);
  assert.equal((await mustLoad(storage, "e1")).nextEventSeq, 7);
  assert.deepEqual(await storage.history("e2"), [eventRecord("e2", 1)]);
}

export async function duplicateEventFailsBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  await commitOne(storage, { runId: "e1", owner: OWNER, events: [eventRecord("e1", 1)] });
  const before1 = await observe(storage, "e1");
  const before2 = await observe(storage, "e2");
  await assert.rejects(
    storage.commit([
      {
        runId: "e2",
        owner: OWNER,
        run: { status: "waiting" },
        steps: [stepRecord("e2", "a")],
        events: [eventRecord("e2", 1)],
      },
      createTransition(runRecord("e3"), OWNER, { steps: [stepRecord("e3", "a")] }),
      {
        runId: "e1",
        owner: OWNER,
        run: { status: "waiting" },
        steps: [stepRecord("e1", "a")],
        events: [eventRecord("e1", 2), eventRecord("e1", 1, { type: "duplicate" })],
      },
    ]),
    (error: { code?: unknown }) => error.code === "conflict",
  );
  assert.deepEqual(await observe(storage, "e1"), before1);
  assert.deepEqual(await observe(storage, "e2"), before2);
  assert.equal(await storage.getRun("e3"), undefined);
  // The storage is still usable afterwards.
  assert.equal(await commitOne(storage, { runId: "e1", owner: OWNER, events: [eventRecord("e1", 2)] }), "ok");
}

export async function unserializableFailsBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  const signal = await storage.addSignal({ runId: "e1", name: "go", payload: 1, createdAt: 1 });
  const before1 = await observe(storage, "e1");
  const before2 = await observe(storage, "e2");
  const good = (id: string): Transition => ({
    runId: id,
    owner: OWNER,
    run: { status: "waiting", wakeAt: 5 },
    steps: [stepRecord(id, "a", { output: { fine: true } })],
    events: [eventRecord(id, 1)],
  });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const poisons: [string, (t: Transition) => Transition][] = [
    [
      "a BigInt in a step output",
      (t) => ({ ...t, steps: [stepRecord(t.runId, "b", { output: { n: 10n } as never })] }),
    ],
    [
      "a cycle in event data",
      (t) => ({ ...t, events: [eventRecord(t.runId, 2, { data: circular as never })] }),
    ],
    ["a BigInt in a patch error", (t) => ({ ...t, run: { error: { name: "E", message: 1n as never } } })],
  ];
  for (const [what, poison] of poisons) {
    await assert.rejects(
      storage.commit([
        { ...good("e1"), consumeSignals: [{ seq: signal.seq, action: "a" }] },
        good("e2"),
        createTransition(runRecord("e3"), OWNER),
        poison({ runId: "e2", owner: OWNER }),
      ]),
      `${what} must make the batch throw`,
    );
    assert.deepEqual(await observe(storage, "e1"), before1, what);
    assert.deepEqual(await observe(storage, "e2"), before2, what);
    assert.equal(await storage.getRun("e3"), undefined, what);
  }
  await assert.rejects(
    storage.addSignal({ runId: "e1", name: "bad", payload: { n: 1n } as never, createdAt: 1 }),
  );
  assert.deepEqual(await storage.signalsAfter(0), [signal]);
  // Nothing half-done got in the way: the good transitions still commit.
  assert.deepEqual(await storage.commit([good("e1"), good("e2")]), ["ok", "ok"]);
}
