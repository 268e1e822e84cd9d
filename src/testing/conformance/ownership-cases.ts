/** Conformance cases for ownership: commits by non-owners, mixed batches, claims and executor upserts. */
import assert from "node:assert/strict";
import type { Storage, Transition } from "../../storage/types.js";
import {
  BASE_TIME,
  createTransition,
  eventRecord,
  executorRecord,
  runRecord,
  stepRecord,
} from "../records.js";
import { commitOne, create, mustLoad, OTHER, OWNER, observe } from "./helpers.js";

export async function nonOwnerWritesNothing(storage: Storage): Promise<void> {
  await create(storage, "e1");
  const signal = await storage.addSignal({ runId: "e1", name: "go", payload: 1, createdAt: BASE_TIME });
  const before = await observe(storage, "e1");
  const results = await storage.commit([
    {
      runId: "e1",
      owner: OTHER,
      run: { status: "completed", release: true },
      steps: [stepRecord("e1", "a")],
      events: [eventRecord("e1", 1)],
      consumeSignals: [{ seq: signal.seq, action: "a" }],
    },
  ]);
  assert.deepEqual(results, ["not_owner"]);
  assert.deepEqual(await observe(storage, "e1"), before);
  assert.equal((await storage.signalsAfter(0))[0]?.consumedBy, null);

  // A run that does not exist is nobody's: nothing of the transition lands.
  assert.deepEqual(
    await storage.commit([
      {
        runId: "ghost",
        owner: OWNER,
        steps: [stepRecord("ghost", "a")],
        events: [eventRecord("ghost", 1)],
      },
    ]),
    ["not_owner"],
  );
  assert.equal(await storage.load("ghost"), undefined);
  assert.deepEqual(await storage.history("ghost"), []);
}

export async function mixedBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2", {}, OTHER);
  await create(storage, "e3");
  const work = (id: string, extra: Partial<Transition> = {}): Transition => ({
    runId: id,
    owner: OWNER,
    run: { status: "waiting" },
    steps: [stepRecord(id, "a", { output: { id } })],
    events: [eventRecord(id, 1)],
    ...extra,
  });
  const e2Before = await observe(storage, "e2");
  const results = await storage.commit([
    work("e1"),
    work("e2"),
    work("e3"),
    createTransition(runRecord("e4"), OWNER),
    work("e4"), // sees the create earlier in the same batch
    createTransition(runRecord("e1"), OWNER), // taken
    work("missing"),
  ]);
  assert.deepEqual(results, ["ok", "not_owner", "ok", "ok", "ok", "exists", "not_owner"]);
  for (const id of ["e1", "e3", "e4"]) {
    const snapshot = await mustLoad(storage, id);
    assert.equal(snapshot.run.status, "waiting", id);
    assert.deepEqual(snapshot.steps, [stepRecord(id, "a", { output: { id } })], id);
    assert.equal(snapshot.nextEventSeq, 2, id);
  }
  assert.deepEqual(await observe(storage, "e2"), e2Before);
  assert.equal(await storage.load("missing"), undefined);

  // Transitions apply in order: after a release in the batch, the same owner no longer owns it.
  const sequenced = await storage.commit([
    { runId: "e3", owner: OWNER, run: { release: true } },
    { runId: "e3", owner: OWNER, run: { status: "completed" } },
  ]);
  assert.deepEqual(sequenced, ["ok", "not_owner"]);
  const e3 = await storage.getRun("e3");
  assert.equal(e3?.owner, null);
  assert.equal(e3?.status, "waiting");
}

export async function claimRules(storage: Storage): Promise<void> {
  await create(storage, "e1", {}, null);
  await storage.commit([
    createTransition(runRecord("e2"), OWNER, {
      steps: [stepRecord("e2", "a"), stepRecord("e2", "b", { status: "completed" })],
      events: [eventRecord("e2", 1), eventRecord("e2", 2)],
      run: { release: true },
    }),
  ]);
  const signal = await storage.addSignal({
    runId: "e2",
    name: "go",
    payload: { ok: true },
    createdAt: 1,
  });

  // Unowned: taken, revision and updatedAt bumped, full snapshot returned.
  const before = await storage.getRun("e2");
  assert.ok(before);
  const claimed = await storage.claim({ runId: "e2", owner: OWNER });
  assert.ok(claimed, "unowned run is claimable");
  assert.equal(claimed.run.owner, OWNER);
  assert.equal(claimed.run.revision, before.revision + 1);
  assert.ok(claimed.run.updatedAt >= before.updatedAt);
  assert.deepEqual(claimed.steps, [stepRecord("e2", "a"), stepRecord("e2", "b", { status: "completed" })]);
  assert.deepEqual(claimed.signals, [signal]);
  assert.equal(claimed.nextEventSeq, 3);
  assert.deepEqual(await storage.getRun("e2"), claimed.run);

  // Already ours: fine, and bumps again.
  const again = await storage.claim({ runId: "e2", owner: OWNER });
  assert.equal(again?.run.revision, before.revision + 2);

  // Someone else's: refused, unchanged.
  const owned = await storage.getRun("e2");
  assert.equal(await storage.claim({ runId: "e2", owner: OTHER }), undefined);
  assert.equal(await storage.claim({ runId: "e2", owner: OTHER, takeOverFrom: ["executor-x"] }), undefined);
  assert.deepEqual(await storage.getRun("e2"), owned);

  // Taken over from a dead executor.
  const taken = await storage.claim({ runId: "e2", owner: OTHER, takeOverFrom: ["executor-x", OWNER] });
  assert.equal(taken?.run.owner, OTHER);
  assert.equal(await commitOne(storage, { runId: "e2", owner: OWNER }), "not_owner");
  assert.equal(await commitOne(storage, { runId: "e2", owner: OTHER }), "ok");

  assert.equal(await storage.claim({ runId: "missing", owner: OWNER }), undefined);
  assert.equal((await storage.claim({ runId: "e1", owner: OTHER }))?.run.owner, OTHER);
}

export async function concurrentClaims(storage: Storage): Promise<void> {
  await create(storage, "free", {}, null);
  const before = await storage.getRun("free");
  const claimers = Array.from({ length: 8 }, (_, i) => `claimer-${i}`);
  const snapshots = await Promise.all(claimers.map((owner) => storage.claim({ runId: "free", owner })));
  const winners = snapshots.filter((s) => s !== undefined);
  assert.equal(winners.length, 1, "exactly one claimer wins an unowned run");
  const after = await storage.getRun("free");
  assert.equal(after?.owner, winners[0]?.run.owner);
  assert.equal(after?.revision, (before?.revision ?? 0) + 1);

  // Everyone believes "dead" died: still exactly one takes over.
  await create(storage, "orphan", {}, "dead");
  const takeovers = await Promise.all(
    claimers.map((owner) => storage.claim({ runId: "orphan", owner, takeOverFrom: ["dead"] })),
  );
  assert.equal(takeovers.filter((s) => s !== undefined).length, 1, "exactly one claimer takes over");
}

export async function claimMany(storage: Storage): Promise<void> {
  await create(storage, "m-free", {}, null);
  await create(storage, "m-mine", {}, OWNER);
  await create(storage, "m-theirs", {}, OTHER);
  await create(storage, "m-dead", {}, "dead");
  const results = await storage.claimMany([
    { runId: "m-free", owner: OWNER },
    { runId: "m-theirs", owner: OWNER },
    { runId: "m-mine", owner: OWNER },
    { runId: "m-missing", owner: OWNER },
    { runId: "m-dead", owner: OWNER, takeOverFrom: ["dead"] },
  ]);
  assert.deepEqual(
    results.map((r) => r?.run.id),
    ["m-free", undefined, "m-mine", undefined, "m-dead"],
  );
  for (const id of ["m-free", "m-mine", "m-dead"]) assert.equal((await storage.getRun(id))?.owner, OWNER);
  assert.equal((await storage.getRun("m-theirs"))?.owner, OTHER);
  assert.deepEqual(await storage.claimMany([]), []);
}

export async function executors(storage: Storage): Promise<void> {
  assert.deepEqual(await storage.listExecutors(), []);
  const b = executorRecord("b-exec", { host: "build-02", pid: 2 });
  const a = executorRecord("a-exec", { pid: 1 });
  await storage.upsertExecutor(b);
  await storage.upsertExecutor(a);
  assert.deepEqual(await storage.listExecutors(), [a, b]);
  const beat = { ...a, heartbeatAt: BASE_TIME + 5_000, pid: 11 };
  await storage.upsertExecutor(beat);
  assert.deepEqual(await storage.listExecutors(), [beat, b]);
  await storage.removeExecutor("a-exec");
  assert.deepEqual(await storage.listExecutors(), [b]);
  await storage.removeExecutor("missing");
  assert.deepEqual(await storage.listExecutors(), [b]);
}

/** An executor's capacity (`maxRuns`, null for no limit) is stored with it and follows its heartbeats. */
export async function executorCapacity(storage: Storage): Promise<void> {
  const limited = executorRecord("a-limited", { maxRuns: 10 });
  const unlimited = executorRecord("b-unlimited");
  await storage.upsertExecutor(limited);
  await storage.upsertExecutor(unlimited);
  assert.deepEqual(
    (await storage.listExecutors()).map((e) => e.maxRuns),
    [10, null],
  );
  // Every beat writes it again: a change replaces it (0 stays 0, which is not "no limit").
  await storage.upsertExecutor({ ...limited, heartbeatAt: BASE_TIME + 2_000, maxRuns: null });
  await storage.upsertExecutor({ ...unlimited, heartbeatAt: BASE_TIME + 2_000, maxRuns: 0 });
  assert.deepEqual(
    (await storage.listExecutors()).map((e) => e.maxRuns),
    [null, 0],
  );
}
