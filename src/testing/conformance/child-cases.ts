/** Conformance cases for child runs: the parent link, listing children, signals a transition sends to other runs. */
import assert from "node:assert/strict";
import type { Storage } from "../../storage/types.js";
import { BASE_TIME, createTransition, runRecord } from "../records.js";
import { commitOne, create, ids, mustLoad, OTHER, OWNER } from "./helpers.js";

export async function parentLink(storage: Storage): Promise<void> {
  await create(storage, "p1");
  await create(storage, "p2");
  await create(storage, "p1.deploy", { parent: { runId: "p1", step: "deploy" }, createdAt: BASE_TIME + 2 });
  await create(storage, "p1.test", { parent: { runId: "p1", step: "test" }, createdAt: BASE_TIME + 1 });
  await create(storage, "p2.deploy", { parent: { runId: "p2", step: "deploy" } });
  assert.equal((await storage.getRun("p1"))?.parent, null);
  assert.deepEqual((await storage.getRun("p1.deploy"))?.parent, { runId: "p1", step: "deploy" });
  assert.deepEqual((await mustLoad(storage, "p1.test")).run.parent, { runId: "p1", step: "test" });
  // Children of a run, in the usual order; with other filters too.
  assert.deepEqual(ids(await storage.listRuns({ parent: "p1" })), ["p1.test", "p1.deploy"]);
  assert.deepEqual(ids(await storage.listRuns({ parent: "p1", newestFirst: true, limit: 1 })), ["p1.deploy"]);
  assert.deepEqual(ids(await storage.listRuns({ parent: "p2", statuses: ["waiting"] })), []);
  assert.deepEqual(ids(await storage.listRuns({ parent: "p1.deploy" })), []);
  // A patch leaves the link alone.
  assert.equal(
    await commitOne(storage, { runId: "p1.deploy", owner: OWNER, run: { status: "waiting" } }),
    "ok",
  );
  assert.deepEqual((await storage.getRun("p1.deploy"))?.parent, { runId: "p1", step: "deploy" });
}

export async function notifyOtherRuns(storage: Storage): Promise<void> {
  await create(storage, "parent", {}, null);
  await create(storage, "parent.child", { parent: { runId: "parent", step: "child" } });
  const end = { run: "parent.child", status: "completed", values: { n: 1 }, error: null };
  const before = await storage.lastSignalSeq();
  // Not the owner: nothing of the transition is written, its signal neither.
  assert.equal(
    await commitOne(storage, {
      runId: "parent.child",
      owner: OTHER,
      run: { status: "completed", release: true },
      notify: [{ runId: "parent", name: "child:child", payload: end, createdAt: BASE_TIME }],
    }),
    "not_owner",
  );
  assert.deepEqual((await mustLoad(storage, "parent")).signals, []);
  assert.equal(
    await commitOne(storage, {
      runId: "parent.child",
      owner: OWNER,
      run: { status: "completed", release: true },
      notify: [
        { runId: "parent", name: "child:child", payload: end, createdAt: BASE_TIME + 1 },
        // A signal to a run that does not exist is dropped; the transition commits.
        { runId: "gone", name: "child:x", payload: null, createdAt: BASE_TIME + 1 },
      ],
    }),
    "ok",
  );
  assert.equal((await storage.getRun("parent.child"))?.status, "completed");
  const [signal, ...rest] = (await mustLoad(storage, "parent")).signals;
  assert.deepEqual(rest, []);
  assert.ok(signal && signal.seq > before, "the signal gets a fresh seq");
  assert.deepEqual(
    { runId: signal.runId, name: signal.name, payload: signal.payload, consumedBy: signal.consumedBy },
    { runId: "parent", name: "child:child", payload: end, consumedBy: null },
  );
  assert.deepEqual(await storage.signalsAfter(before), [signal]);
  assert.equal(await storage.lastSignalSeq(), signal.seq);
  // The parent waits unowned with a pending signal: recovery finds it.
  assert.deepEqual(ids(await storage.listRuns({ owner: null, withPendingSignals: true })), ["parent"]);
  // A creating transition may notify too.
  const record = runRecord("parent.other", { parent: { runId: "parent", step: "other" } });
  const created = createTransition(record, OWNER, {
    notify: [{ runId: "parent", name: "child:other", payload: { hello: true }, createdAt: BASE_TIME }],
  });
  assert.equal(await commitOne(storage, created), "ok");
  assert.deepEqual(
    (await mustLoad(storage, "parent")).signals.map((s) => s.name),
    ["child:child", "child:other"],
  );
}

export async function notifyIsAtomic(storage: Storage): Promise<void> {
  await create(storage, "parent", {}, null);
  await create(storage, "parent.child");
  const before = await storage.lastSignalSeq();
  // A batch whose other transition cannot be written fails whole: the signal is not written either.
  await assert.rejects(
    storage.commit([
      {
        runId: "parent.child",
        owner: OWNER,
        run: { status: "completed" },
        notify: [{ runId: "parent", name: "child:child", payload: {}, createdAt: BASE_TIME }],
      },
      { runId: "parent.child", owner: OWNER, steps: [], events: [bad()] },
    ]),
  );
  assert.deepEqual((await mustLoad(storage, "parent")).signals, []);
  assert.equal((await storage.getRun("parent.child"))?.status, "running");
  // Nor does a payload JSON cannot hold write anything.
  await assert.rejects(
    storage.commit([
      {
        runId: "parent.child",
        owner: OWNER,
        run: { status: "completed" },
        notify: [{ runId: "parent", name: "child:child", payload: { n: 10n } as never, createdAt: 1 }],
      },
    ]),
  );
  assert.deepEqual((await mustLoad(storage, "parent")).signals, []);
  assert.equal((await storage.getRun("parent.child"))?.status, "running");
  const next = await storage.addSignal({ runId: "parent", name: "later", payload: null, createdAt: 1 });
  assert.ok(next.seq > before);
}

/** An event whose data JSON cannot hold: fails the batch it is in. */
function bad() {
  return { runId: "parent.child", seq: 1, type: "x", action: null, at: 1, data: { n: 10n } as never };
}
