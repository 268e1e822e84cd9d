/** Conformance cases for run records: create, patch, release, cancel, value round-trips and isolation. */
import assert from "node:assert/strict";
import type { StepRecord, Storage, Transition } from "../../storage/types.js";
import { BASE_TIME, createTransition, eventRecord, runRecord, stepRecord } from "../records.js";
import { commitOne, create, ids, mustLoad, OTHER, OWNER, observe } from "./helpers.js";

export async function initIsIdempotent(storage: Storage): Promise<void> {
  await storage.init();
  await create(storage, "e1");
  await storage.init();
  assert.equal((await storage.getRun("e1"))?.id, "e1");
}

export async function createStoresEverything(storage: Storage): Promise<void> {
  const record = runRecord("e1", {
    saga: "release",
    version: 3,
    status: "compensating",
    input: { ticket: "OPS-7", flags: [true, false], nested: { n: 1.5 } },
    runName: "OPS-7-main-1",
    owner: "ignored: create is owned by the committer",
    revision: 4,
    wakeAt: BASE_TIME + 60_000,
    cancelRequested: "operator asked",
    cause: { kind: "failure", action: "deploy", error: { name: "Error", message: "boom", code: "E1" } },
    error: { name: "TypeError", message: "bad", stack: "TypeError: bad\n    at x" },
    createdAt: BASE_TIME + 1,
    updatedAt: BASE_TIME + 2,
    endedAt: BASE_TIME + 3,
  });
  const steps: StepRecord[] = [
    stepRecord("e1", "build", {
      status: "completed",
      attempt: 2,
      failures: 1,
      output: { image: "registry/app:1" },
      error: { name: "Error", message: "first try failed" },
      state: { deadline: BASE_TIME + 5 },
      endedAt: BASE_TIME + 9,
    }),
    stepRecord("e1", "deploy", {
      status: "undo_failed",
      undoAttempt: 3,
      undoError: { name: "Error", message: "undo failed", code: "EUNDO" },
      startedAt: null,
    }),
  ];
  const events = [
    eventRecord("e1", 1, { type: "run_started", data: { input: { ticket: "OPS-7" } } }),
    eventRecord("e1", 2, { type: "step_completed", action: "build" }),
  ];
  const results = await storage.commit([createTransition(record, OWNER, { steps, events })]);
  assert.deepEqual(results, ["ok"]);
  const expected = { ...record, owner: OWNER };
  assert.deepEqual(await storage.getRun("e1"), expected);
  const snapshot = await mustLoad(storage, "e1");
  assert.deepEqual(snapshot, { run: expected, steps, signals: [], nextEventSeq: 3 });
  assert.deepEqual(await storage.history("e1"), events);

  // A creating transition may carry a patch: it is folded into the new row, with no extra revision.
  const other = runRecord("e2", { revision: 0 });
  await storage.commit([createTransition(other, OWNER, { run: { status: "waiting", wakeAt: 77 } })]);
  assert.deepEqual(await storage.getRun("e2"), {
    ...other,
    owner: OWNER,
    status: "waiting",
    wakeAt: 77,
  });
}

export async function duplicateCreate(storage: Storage): Promise<void> {
  await storage.commit([createTransition(runRecord("e1"), OWNER, { steps: [stepRecord("e1", "a")] })]);
  const before = await observe(storage, "e1");
  const again = runRecord("e1", { saga: "other", input: { different: true } });
  const results = await storage.commit([
    createTransition(again, OTHER, {
      steps: [stepRecord("e1", "a", { status: "failed" }), stepRecord("e1", "b")],
      events: [eventRecord("e1", 1)],
    }),
  ]);
  assert.deepEqual(results, ["exists"]);
  assert.deepEqual(await observe(storage, "e1"), before);

  // Twice in one batch: the first creates it, the second finds it taken.
  const twice = await storage.commit([
    createTransition(runRecord("e2"), OWNER),
    createTransition(runRecord("e2", { saga: "x" }), OTHER, { steps: [stepRecord("e2", "a")] }),
  ]);
  assert.deepEqual(twice, ["ok", "exists"]);
  const e2 = await mustLoad(storage, "e2");
  assert.equal(e2.run.owner, OWNER);
  assert.equal(e2.run.saga, "deploy");
  assert.deepEqual(e2.steps, []);
}

export async function patchChangesOnlyGivenFields(storage: Storage): Promise<void> {
  const initial = await create(storage, "e1", {
    runName: "run",
    wakeAt: 100,
    cause: { kind: "cancel", reason: "r" },
    error: { name: "Error", message: "m" },
    endedAt: 5,
    cancelRequested: "c",
  });

  assert.equal(await commitOne(storage, { runId: "e1", owner: OWNER, run: { status: "waiting" } }), "ok");
  const afterStatus = await storage.getRun("e1");
  assert.ok(afterStatus);
  assert.ok(afterStatus.updatedAt >= initial.updatedAt, "updatedAt moves forward");
  assert.deepEqual(afterStatus, {
    ...initial,
    status: "waiting",
    revision: initial.revision + 1,
    updatedAt: afterStatus.updatedAt,
  });

  // null is a value (clears the field); undefined means "not in the patch".
  await commitOne(storage, {
    runId: "e1",
    owner: OWNER,
    run: { wakeAt: null, error: { name: "E2", message: "m2" }, status: undefined, cause: undefined },
  });
  const afterNulls = await storage.getRun("e1");
  assert.ok(afterNulls);
  assert.deepEqual(afterNulls, {
    ...afterStatus,
    wakeAt: null,
    error: { name: "E2", message: "m2" },
    revision: initial.revision + 2,
    updatedAt: afterNulls.updatedAt,
  });

  await commitOne(storage, {
    runId: "e1",
    owner: OWNER,
    run: { cause: null, endedAt: 9, cancelRequested: null, status: "compensated" },
  });
  const afterAll = await storage.getRun("e1");
  assert.ok(afterAll);
  assert.deepEqual(afterAll, {
    ...afterNulls,
    cause: null,
    endedAt: 9,
    cancelRequested: null,
    status: "compensated",
    revision: initial.revision + 3,
    updatedAt: afterAll.updatedAt,
  });

  // A transition with no patch at all still bumps the revision (and only that, plus updatedAt).
  await commitOne(storage, { runId: "e1", owner: OWNER, steps: [stepRecord("e1", "a")] });
  const afterEmpty = await storage.getRun("e1");
  assert.ok(afterEmpty);
  assert.deepEqual(afterEmpty, {
    ...afterAll,
    revision: initial.revision + 4,
    updatedAt: afterEmpty.updatedAt,
  });
}

export async function releaseEndsOwnership(storage: Storage): Promise<void> {
  await create(storage, "e1");
  assert.equal(
    await commitOne(storage, {
      runId: "e1",
      owner: OWNER,
      run: { status: "waiting", wakeAt: 50, release: true },
    }),
    "ok",
  );
  const released = await storage.getRun("e1");
  assert.equal(released?.owner, null);
  assert.equal(released?.status, "waiting");
  assert.equal(released?.wakeAt, 50);
  // The former owner no longer owns it.
  assert.equal(
    await commitOne(storage, { runId: "e1", owner: OWNER, run: { status: "running" } }),
    "not_owner",
  );
  assert.equal((await storage.getRun("e1"))?.status, "waiting");
  // Created unowned (release folded into the create).
  await create(storage, "e2", {}, null);
  assert.equal((await storage.getRun("e2"))?.owner, null);
}

export async function latestStateWins(storage: Storage): Promise<void> {
  const initial = await create(storage, "e1");
  const statuses = ["running", "retrying", "waiting", "completed", "failed"] as const;
  const stepAt = (i: number) =>
    stepRecord("e1", "build", {
      status: statuses[i % statuses.length]!,
      attempt: i + 1,
      failures: i,
      output: { i, text: `output #${i}`, list: Array.from({ length: i % 7 }, (_, k) => k) },
      error: i % 2 === 0 ? null : { name: "Error", message: `failure ${i}` },
      state: { next: BASE_TIME + i },
      updatedAt: BASE_TIME + i,
    });
  const patchAt = (i: number): Transition => ({
    runId: "e1",
    owner: OWNER,
    run: {
      status: i % 2 === 0 ? "running" : "waiting",
      wakeAt: BASE_TIME + i,
      error: { name: "Error", message: `patch ${i}` },
    },
    steps: [stepAt(i)],
  });
  // 25 separate commits, then 25 transitions of the same run in one batch.
  for (let i = 0; i < 25; i++) assert.equal(await commitOne(storage, patchAt(i)), "ok");
  const batch = await storage.commit(Array.from({ length: 25 }, (_, k) => patchAt(25 + k)));
  assert.deepEqual(batch, Array(25).fill("ok"));

  const snapshot = await mustLoad(storage, "e1");
  assert.deepEqual(snapshot.steps, [stepAt(49)]);
  assert.equal(snapshot.run.revision, initial.revision + 50);
  assert.equal(snapshot.run.status, "waiting");
  assert.equal(snapshot.run.wakeAt, BASE_TIME + 49);
  assert.deepEqual(snapshot.run.error, { name: "Error", message: "patch 49" });
  const listed = await storage.listRuns({ sagas: ["deploy"] });
  assert.deepEqual(listed, [snapshot.run]);
}

export async function largeValues(storage: Storage): Promise<void> {
  // ~5 MB of varied text (multi-byte characters included, so it is well over 5 MB in UTF-8).
  const chunk = "log line: build step ok — ✓ 構築 🚀\n";
  const big = chunk.repeat(Math.ceil((5 * 1024 * 1024) / chunk.length));
  const record = runRecord("big", { input: { big } });
  const steps = [stepRecord("big", "build", { output: { log: big, size: big.length }, state: { big } })];
  const events = [eventRecord("big", 1, { data: { log: big } })];
  // Many rows in one transition, too.
  for (let i = 0; i < 200; i++) steps.push(stepRecord("big", `step-${i}`, { output: { i } }));
  assert.deepEqual(await storage.commit([createTransition(record, OWNER, { steps, events })]), ["ok"]);
  const signal = await storage.addSignal({ runId: "big", name: "log", payload: [big], createdAt: 1 });
  assert.deepEqual(signal.payload, [big]);

  const snapshot = await mustLoad(storage, "big");
  assert.equal(snapshot.run.input.big, big);
  assert.equal(snapshot.steps.length, 201);
  assert.equal(snapshot.steps[0]?.output?.log, big);
  assert.equal(snapshot.steps[0]?.state?.big, big);
  assert.deepEqual(snapshot.steps, steps);
  assert.equal((await storage.history("big"))[0]?.data?.log, big);
  assert.deepEqual(snapshot.signals[0]?.payload, [big]);
}

export async function unicodeValues(storage: Storage): Promise<void> {
  const texts = [
    "emoji 🚀 👩‍👩‍👧‍👦 🏳️‍🌈 𝄞",
    "中文 日本語 한국어",
    "עברית العربية \u200f\u202e",
    "control \u0001\u0007\b\f\n\r\t\u001b\u001f\u007f\u0085",
    "separators \u2028 \u2029",
    "quotes \" ' ` and \\ backslashes \\\\ and /",
    "combining é vs é, zero-width \u200b\u200d\ufeff, noncharacter \uffff",
    "",
    " leading and trailing spaces ",
  ];
  const payload = {
    texts,
    "ключ 🔑": "value",
    "": "empty key",
    numbers: [0, -1, 1.5, -2.25e-300, 1e300, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER],
    flags: [true, false, null],
    nested: { a: [[], {}, [[{ deep: "é" }]]] },
  };
  const id = "exécution-🚀-中文";
  const record = runRecord(id, {
    saga: "saga-ש",
    runName: "OPS-1-fix/ü-1",
    input: payload,
    error: { name: "Error", message: texts.join("|") },
    cancelRequested: "arrêt 🛑",
  });
  const step = stepRecord(id, "action-日本", { output: payload, state: { texts } });
  const event = eventRecord(id, 1, { type: "événement", action: "action-日本", data: payload });
  assert.deepEqual(
    await storage.commit([createTransition(record, "exécuteur-1", { steps: [step], events: [event] })]),
    ["ok"],
  );
  const signal = await storage.addSignal({ runId: id, name: "signal-✓", payload, createdAt: 1 });

  const snapshot = await mustLoad(storage, id);
  assert.deepEqual(snapshot.run, { ...record, owner: "exécuteur-1" });
  assert.deepEqual(snapshot.steps, [step]);
  assert.deepEqual(snapshot.signals, [signal]);
  assert.deepEqual(signal.payload, payload);
  assert.deepEqual(await storage.history(id), [event]);
  assert.deepEqual(ids(await storage.listRuns({ sagas: ["saga-ש"], owner: "exécuteur-1" })), [id]);
  const cancelled = await storage.requestCancel(id, texts[0]!);
  assert.equal(cancelled?.cancelRequested, texts[0]);
}

export async function requestCancel(storage: Storage): Promise<void> {
  const initial = await create(storage, "e1");
  const marked = await storage.requestCancel("e1", "operator asked");
  assert.ok(marked);
  assert.equal(marked.cancelRequested, "operator asked");
  assert.equal(marked.owner, OWNER, "ownership is untouched");
  assert.equal(marked.status, initial.status);
  assert.deepEqual(await storage.getRun("e1"), marked);

  // The owner's later patches that do not mention it keep the mark.
  await commitOne(storage, {
    runId: "e1",
    owner: OWNER,
    run: { status: "compensating", wakeAt: 1 },
  });
  assert.equal((await storage.getRun("e1"))?.cancelRequested, "operator asked");
  assert.deepEqual(ids(await storage.listRuns({ cancelRequested: true })), ["e1"]);
  // Until it clears it.
  await commitOne(storage, { runId: "e1", owner: OWNER, run: { cancelRequested: null } });
  assert.equal((await storage.getRun("e1"))?.cancelRequested, null);

  // Unowned runs too.
  await create(storage, "e2", {}, null);
  assert.equal((await storage.requestCancel("e2", "r"))?.cancelRequested, "r");
  assert.equal(await storage.requestCancel("missing", "r"), undefined);
}

export async function noSharedObjects(storage: Storage): Promise<void> {
  const record = runRecord("e1", { input: { list: [1, 2] } });
  const step = stepRecord("e1", "a", { output: { list: [1, 2] } });
  const event = eventRecord("e1", 1, { data: { list: [1, 2] } });
  await storage.commit([createTransition(record, OWNER, { steps: [step], events: [event] })]);
  // Mutating what was committed...
  (record.input.list as number[]).push(3);
  record.saga = "mutated";
  (step.output!.list as number[]).push(3);
  (event.data!.list as number[]).push(3);
  // ...and what was read...
  const loaded = await mustLoad(storage, "e1");
  loaded.run.status = "completed";
  (loaded.steps[0]!.output!.list as number[]).push(4);
  (await storage.history("e1"))[0]!.type = "mutated";
  // ...changes nothing stored.
  const fresh = await mustLoad(storage, "e1");
  assert.equal(fresh.run.saga, "deploy");
  assert.equal(fresh.run.status, "running");
  assert.deepEqual(fresh.run.input, { list: [1, 2] });
  assert.deepEqual(fresh.steps[0]?.output, { list: [1, 2] });
  assert.deepEqual(await storage.history("e1"), [eventRecord("e1", 1, { data: { list: [1, 2] } })]);
}

export async function unknownRuns(storage: Storage): Promise<void> {
  assert.equal(await storage.load("nope"), undefined);
  assert.equal(await storage.getRun("nope"), undefined);
  assert.equal(await storage.claim({ runId: "nope", owner: OWNER }), undefined);
  assert.equal(await storage.requestCancel("nope", "r"), undefined);
  assert.deepEqual(await storage.history("nope"), []);
  assert.deepEqual(await storage.listRuns({}), []);
  assert.deepEqual(await storage.commit([]), []);
}
