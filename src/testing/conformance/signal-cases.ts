/** Conformance cases for signals: seq order, consumption by transitions, unknown runs and batches. */
import assert from "node:assert/strict";
import type { Json } from "../../json.js";
import type { SignalRecord, Storage } from "../../storage/types.js";
import { BASE_TIME, stepRecord } from "../records.js";
import { commitOne, create, mustLoad, OTHER, OWNER } from "./helpers.js";

export async function signalOrder(storage: Storage): Promise<void> {
  assert.equal(await storage.lastSignalSeq(), 0);
  assert.deepEqual(await storage.signalsAfter(0), []);
  await create(storage, "e1");
  await create(storage, "e2");
  const payloads: Json[] = [null, 1, "text", [1, "two"], { a: { b: true } }, false, 0, "", [], {}];
  const added: SignalRecord[] = [];
  for (const [i, payload] of payloads.entries()) {
    const signal = await storage.addSignal({
      runId: i % 2 === 0 ? "e1" : "e2",
      name: i % 3 === 0 ? "approve" : "poke",
      payload,
      createdAt: BASE_TIME + i,
    });
    assert.equal(signal.consumedBy, null);
    assert.deepEqual(signal.payload, payload);
    added.push(signal);
  }
  for (let i = 1; i < added.length; i++) {
    assert.ok(added[i]!.seq > added[i - 1]!.seq, "seqs strictly increase");
  }
  assert.equal(await storage.lastSignalSeq(), added.at(-1)?.seq);
  assert.deepEqual(await storage.signalsAfter(0), added);
  assert.deepEqual(await storage.signalsAfter(added[3]!.seq), added.slice(4));
  assert.deepEqual(await storage.signalsAfter(0, 3), added.slice(0, 3));
  assert.deepEqual(await storage.signalsAfter(added[1]!.seq, 2), added.slice(2, 4));
  assert.deepEqual(await storage.signalsAfter(added.at(-1)!.seq), []);
  assert.deepEqual(
    (await mustLoad(storage, "e1")).signals,
    added.filter((s) => s.runId === "e1"),
  );
  assert.deepEqual(
    (await mustLoad(storage, "e2")).signals,
    added.filter((s) => s.runId === "e2"),
  );
}

export async function signalConsumption(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  const signal = (runId: string, name: string) =>
    storage.addSignal({ runId, name, payload: { name }, createdAt: BASE_TIME });
  const s1 = await signal("e1", "approve");
  const s2 = await signal("e1", "poke");
  const s3 = await signal("e1", "approve");
  const other = await signal("e2", "approve");

  assert.equal(
    await commitOne(storage, {
      runId: "e1",
      owner: OWNER,
      steps: [stepRecord("e1", "wait-approval", { status: "completed", output: { approved: true } })],
      consumeSignals: [{ seq: s1.seq, action: "wait-approval" }],
    }),
    "ok",
  );
  assert.deepEqual((await mustLoad(storage, "e1")).signals, [s2, s3]);
  const all = await storage.signalsAfter(0);
  assert.deepEqual(all, [{ ...s1, consumedBy: "wait-approval" }, s2, s3, other], "consumed ones stay listed");

  // Not the owner: nothing consumed.
  assert.equal(
    await commitOne(storage, {
      runId: "e1",
      owner: OTHER,
      consumeSignals: [{ seq: s2.seq, action: "x" }],
    }),
    "not_owner",
  );
  assert.deepEqual((await mustLoad(storage, "e1")).signals, [s2, s3]);

  // Several at once; an already consumed one keeps its first consumer; another run's is untouched.
  await commitOne(storage, {
    runId: "e1",
    owner: OWNER,
    consumeSignals: [
      { seq: s3.seq, action: "second" },
      { seq: s2.seq, action: "poker" },
      { seq: s1.seq, action: "again" },
      { seq: other.seq, action: "thief" },
    ],
  });
  assert.deepEqual((await mustLoad(storage, "e1")).signals, []);
  assert.deepEqual(await storage.signalsAfter(0), [
    { ...s1, consumedBy: "wait-approval" },
    { ...s2, consumedBy: "poker" },
    { ...s3, consumedBy: "second" },
    other,
  ]);
  assert.deepEqual((await mustLoad(storage, "e2")).signals, [other]);
}

export async function signalUnknownRun(storage: Storage): Promise<void> {
  await assert.rejects(
    storage.addSignal({ runId: "ghost", name: "go", payload: null, createdAt: 1 }),
    (error: { code?: unknown }) => error.code === "not_found",
  );
  assert.equal(await storage.lastSignalSeq(), 0);
  assert.deepEqual(await storage.signalsAfter(0), []);
  // Ended runs still take signals (they are kept, whoever reads them).
  await create(storage, "done", { status: "completed", endedAt: 1 }, null);
  const signal = await storage.addSignal({ runId: "done", name: "late", payload: 1, createdAt: 2 });
  assert.deepEqual(await storage.signalsAfter(0), [signal]);
}

export async function addSignalsBatch(storage: Storage): Promise<void> {
  await create(storage, "s-batch", {}, OWNER);
  const added = await storage.addSignals([
    { runId: "s-batch", name: "a", payload: { n: 1 }, createdAt: 1 },
    { runId: "s-batch", name: "b", payload: "two", createdAt: 2 },
    { runId: "s-batch", name: "a", payload: [3], createdAt: 3 },
  ]);
  assert.deepEqual(
    added.map((s) => [s.name, s.payload]),
    [
      ["a", { n: 1 }],
      ["b", "two"],
      ["a", [3]],
    ],
  );
  assert.ok(added[0]!.seq < added[1]!.seq && added[1]!.seq < added[2]!.seq, "seqs follow the batch order");
  const before = await storage.lastSignalSeq();
  await assert.rejects(
    storage.addSignals([
      { runId: "s-batch", name: "c", payload: null, createdAt: 4 },
      { runId: "s-nobody", name: "c", payload: null, createdAt: 4 },
    ]),
    (error: unknown) => (error as { code?: unknown }).code === "not_found",
  );
  const pending = (await storage.load("s-batch"))?.signals ?? [];
  assert.deepEqual(
    pending.map((s) => s.name),
    ["a", "b", "a"],
    "a rejected batch writes none of its signals",
  );
  assert.ok((await storage.lastSignalSeq()) >= before);
}
