/** Conformance cases for optional capabilities: batched reads, claiming transitions, job peaks and the audit log. */
import assert from "node:assert/strict";
import type { PeakStore, Storage } from "../../storage/types.js";
import { BASE_TIME, createTransition, eventRecord, runRecord, stepRecord } from "../records.js";
import { mustLoad, OTHER, OWNER } from "./helpers.js";

/** A parked run (waiting, unowned) with two steps, one event and a pending signal. */
async function parked(storage: Storage, id: string): Promise<void> {
  const run = runRecord(id, { status: "waiting", wakeAt: null });
  assert.deepEqual(
    await storage.commit([
      createTransition(run, OWNER, {
        run: { release: true },
        steps: [stepRecord(id, "first", { status: "completed", output: { n: 1 } }), stepRecord(id, "wait")],
        events: [eventRecord(id, 1)],
      }),
    ]),
    ["ok"],
  );
  await storage.addSignal({ runId: id, name: "go", payload: { ok: true }, createdAt: 1 });
}

export async function loadManyLikeLoad(storage: Storage): Promise<void> {
  for (const id of ["x1", "x2", "x3"]) await parked(storage, id);
  const wanted = ["x3", "missing", "x1", "x2", "x1"];
  const many = await storage.loadMany!(wanted);
  assert.deepEqual(many, await Promise.all(wanted.map((id) => storage.load(id))));
  assert.equal(many[1], undefined);
  assert.notEqual(many[2], many[4], "a fresh object per answer, even for the same id");
  assert.deepEqual(
    many[0]!.steps.map((s) => s.action),
    ["first", "wait"],
  );
  assert.deepEqual(
    many[0]!.signals.map((s) => s.name),
    ["go"],
  );
  assert.equal(many[0]!.nextEventSeq, 2);
  assert.deepEqual(await storage.loadMany!([]), []);
}

export async function getRunsLikeGetRun(storage: Storage): Promise<void> {
  for (const id of ["y1", "y2"]) await parked(storage, id);
  const wanted = ["y2", "nope", "y1", "y2"];
  assert.deepEqual(await storage.getRuns!(wanted), await Promise.all(wanted.map((id) => storage.getRun(id))));
  assert.deepEqual(await storage.getRuns!([]), []);
}

export async function signalsWithRunsLikeSignalsAfter(storage: Storage): Promise<void> {
  for (const id of ["z1", "z2"]) await parked(storage, id);
  await storage.addSignal({ runId: "z1", name: "poke", payload: [1], createdAt: 2 });
  // Each signal comes with its run as it is now, not as it was when signalled.
  await storage.requestCancel("z2", "stop");
  const all = await storage.signalsAfter(0);
  assert.equal(all.length, 3);
  for (const [after, limit] of [[0], [0, 2], [all[0]!.seq], [all[0]!.seq, 1], [all.at(-1)!.seq]]) {
    const signals = await storage.signalsAfter(after!, limit);
    const runs = await Promise.all(signals.map((signal) => storage.getRun(signal.runId)));
    assert.deepEqual(
      await storage.signalsWithRunsAfter!(after!, limit),
      signals.map((signal, i) => ({ signal, run: runs[i] })),
    );
  }
  assert.equal((await storage.signalsWithRunsAfter!(0))[1]?.run?.cancelRequested, "stop");
}

export async function claimingTransitionTakesOwnership(storage: Storage): Promise<void> {
  await parked(storage, "e1");
  const [snapshot] = await storage.loadMany!(["e1"]);
  const revision = snapshot!.run.revision;
  const results = await storage.commit([
    {
      runId: "e1",
      owner: OWNER,
      claim: { revision },
      run: { status: "running", wakeAt: null },
      steps: [stepRecord("e1", "wait", { status: "completed", output: { ok: true } })],
      events: [eventRecord("e1", 2, { type: "action:completed", action: "wait" })],
      consumeSignals: [{ seq: snapshot!.signals[0]!.seq, action: "wait" }],
    },
    // A later transition of the same batch passes the ordinary ownership check.
    { runId: "e1", owner: OWNER, run: { status: "completed", release: true } },
  ]);
  assert.deepEqual(results, ["ok", "ok"]);
  const after = await mustLoad(storage, "e1");
  assert.equal(after.run.status, "completed");
  assert.equal(after.run.owner, null);
  assert.equal(after.run.revision, revision + 2);
  assert.deepEqual(after.signals, []);
  assert.equal(after.steps.find((s) => s.action === "wait")!.status, "completed");
}

export async function claimingTransitionReleases(storage: Storage): Promise<void> {
  await parked(storage, "e2");
  const revision = (await storage.getRun("e2"))!.revision;
  assert.deepEqual(
    await storage.commit([
      { runId: "e2", owner: OTHER, claim: { revision }, run: { wakeAt: 5, release: true } },
    ]),
    ["ok"],
  );
  const record = (await storage.getRun("e2"))!;
  assert.equal(record.owner, null);
  assert.equal(record.wakeAt, 5);
  assert.equal(record.revision, revision + 1);
}

export async function claimingTransitionLoses(storage: Storage): Promise<void> {
  await parked(storage, "e3");
  const [loaded] = await storage.loadMany!(["e3"]);
  // Someone else claims it between our read and our commit.
  assert.notEqual(await storage.claim({ runId: "e3", owner: OTHER }), undefined);
  const before = await storage.load("e3");
  assert.deepEqual(
    await storage.commit([
      {
        runId: "e3",
        owner: OWNER,
        claim: { revision: loaded!.run.revision },
        run: { status: "running" },
        steps: [stepRecord("e3", "wait", { status: "completed" })],
        events: [eventRecord("e3", 2)],
        consumeSignals: [{ seq: loaded!.signals[0]!.seq, action: "wait" }],
      },
      // ... and what we queued after it fails the ownership check.
      { runId: "e3", owner: OWNER, run: { status: "completed", release: true } },
    ]),
    ["not_owner", "not_owner"],
  );
  assert.deepEqual(await storage.load("e3"), before);
  assert.equal((await storage.getRun("e3"))!.owner, OTHER);
  // Two claimers of the same revision: exactly one wins.
  const revision = before!.run.revision;
  const both = await storage.commit([
    { runId: "e3", owner: OWNER, claim: { revision } },
    { runId: "e3", owner: OTHER, claim: { revision } },
  ]);
  assert.deepEqual(both, ["ok", "not_owner"]);
  assert.equal((await storage.getRun("e3"))!.owner, OWNER);
  assert.deepEqual(await storage.commit([{ runId: "missing", owner: OWNER, claim: { revision: 0 } }]), [
    "not_owner",
  ]);
}

/** The optional `peaks()` of a backend (SqliteStorage has it); the case runs only where it exists. */
function peaksOf(storage: Storage): PeakStore {
  return (storage as Storage & { peaks(): PeakStore }).peaks();
}

export async function peaksPerJob(storage: Storage): Promise<void> {
  const peaks = peaksOf(storage);
  const MiB = 1_048_576;
  assert.deepEqual(peaks.recentPeaks("release", "build", 10), [], "no peaks before any is recorded");
  assert.deepEqual(peaks.measuredJobs(), [], "no job measured before any peak is recorded");
  for (let i = 1; i <= 5; i++) peaks.recordPeak("release", "build", i * MiB, BASE_TIME + i);
  peaks.recordPeak("release", "test", 7 * MiB, BASE_TIME + 1);
  peaks.recordPeak("release", "test", 8 * MiB, BASE_TIME + 2);
  peaks.recordPeak("nightly", "build", 9 * MiB, BASE_TIME + 3);
  assert.deepEqual(peaks.recentPeaks("release", "build", 3), [5 * MiB, 4 * MiB, 3 * MiB], "newest first");
  assert.deepEqual(
    peaks.recentPeaks("release", "build", 10),
    [5, 4, 3, 2, 1].map((n) => n * MiB),
  );

  // Past 100 for one job, its oldest go; other jobs, and the same job of another pipeline, keep theirs.
  for (let i = 6; i <= 130; i++) peaks.recordPeak("release", "build", i * MiB, BASE_TIME + i);
  const kept = peaks.recentPeaks("release", "build", 1_000);
  assert.equal(kept.length, 100);
  assert.deepEqual(
    kept,
    Array.from({ length: 100 }, (_, k) => (130 - k) * MiB),
  );
  assert.deepEqual(peaks.recentPeaks("release", "build", 2), [130 * MiB, 129 * MiB]);
  assert.deepEqual(peaks.recentPeaks("release", "test", 10), [8 * MiB, 7 * MiB]);
  assert.deepEqual(peaks.recentPeaks("nightly", "build", 10), [9 * MiB]);
  assert.deepEqual(peaks.recentPeaks("nightly", "test", 10), []);
  assert.deepEqual(
    peaks.measuredJobs(),
    [
      { pipeline: "nightly", job: "build" },
      { pipeline: "release", job: "build" },
      { pipeline: "release", job: "test" },
    ],
    "every measured job once, by pipeline then job",
  );
}

export async function auditLog(storage: Storage): Promise<void> {
  const record = (n: number, key: string | null = null) => ({
    at: BASE_TIME + n,
    actor: n % 2 === 0 ? "ci" : "alice",
    method: "POST",
    route: "/runs/:id/signals/:name",
    path: `/runs/r${n}/signals/go`,
    runId: n === 3 ? null : `r${n}`,
    status: n === 4 ? 409 : 200,
    key,
    replay: key === null ? null : { fingerprint: `f${n}`, body: { seq: n, ok: true, unicode: "ünï 🚀" } },
  });
  assert.deepEqual(await storage.listAudit!({ limit: 10 }), []);
  // One batch of two, then one at a time: seqs go on increasing across batches.
  const added = await storage.addAudit!([record(1), record(2, "k")]);
  for (let n = 3; n <= 5; n++) added.push(...(await storage.addAudit!([record(n, n === 5 ? "k" : null)])));
  assert.deepEqual(await storage.addAudit!([]), []);
  assert.deepEqual(
    added.map((a) => a.seq),
    [...added.map((a) => a.seq)].sort((a, b) => a - b),
    "seqs increase",
  );
  assert.equal(new Set(added.map((a) => a.seq)).size, 5);
  for (let n = 1; n <= 5; n++)
    assert.deepEqual(added[n - 1], { ...record(n, n === 2 || n === 5 ? "k" : null), seq: added[n - 1]!.seq });
  const all = await storage.listAudit!({ limit: 10 });
  assert.deepEqual(all, [...added].reverse(), "newest first, as added");
  const firstPage = await storage.listAudit!({ limit: 2 });
  assert.deepEqual(firstPage, [added[4], added[3]]);
  const nextPage = await storage.listAudit!({ limit: 2, beforeSeq: firstPage[1]!.seq });
  assert.deepEqual(nextPage, [added[2], added[1]]);
  assert.deepEqual(await storage.listAudit!({ limit: 10, key: "k" }), [added[4], added[1]]);
  assert.deepEqual(await storage.listAudit!({ limit: 10, key: "k", beforeSeq: added[4]!.seq }), [added[1]]);
  assert.deepEqual(await storage.listAudit!({ limit: 10, key: "other" }), []);
  all[0]!.actor = "changed";
  assert.equal((await storage.listAudit!({ limit: 1 }))[0]!.actor, "alice", "records handed out are copies");
}
