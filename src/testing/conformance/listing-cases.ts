/** Conformance cases for queries (listRuns filters, order and limit, nextWakeAt) and deletion. */
import assert from "node:assert/strict";
import { ACTIVE_STATUSES, type RunRecord, type Storage } from "../../storage/types.js";
import { commitOne, create, ids, OTHER, OWNER } from "./helpers.js";

/** Fixture for the listing tests: ids sort in creation order. */
async function listFixture(storage: Storage): Promise<void> {
  const rows: [string, Partial<RunRecord>, string | null][] = [
    ["l01", { saga: "deploy", status: "running", createdAt: 10 }, OWNER],
    ["l02", { saga: "deploy", status: "waiting", wakeAt: 500, createdAt: 20 }, null],
    ["l03", { saga: "build", status: "waiting", wakeAt: 200, createdAt: 30 }, null],
    ["l04", { saga: "deploy", status: "completed", endedAt: 40, createdAt: 40 }, null],
    ["l05", { saga: "test", status: "compensating", cancelRequested: "stop", createdAt: 50 }, OTHER],
    ["l06", { saga: "build", status: "needs_attention", createdAt: 60 }, null],
    [
      "l07",
      { saga: "deploy", status: "waiting", wakeAt: 1_000, cancelRequested: "stop", createdAt: 70 },
      OTHER,
    ],
    ["l08", { saga: "test", status: "cancelled", createdAt: 80 }, null],
    ["l09", { saga: "deploy", status: "waiting", wakeAt: null, createdAt: 90 }, null],
  ];
  for (const [id, overrides, owner] of rows) await create(storage, id, overrides, owner);
  await storage.addSignal({ runId: "l02", name: "go", payload: null, createdAt: 1 });
  const consumed = await storage.addSignal({ runId: "l01", name: "go", payload: null, createdAt: 1 });
  await commitOne(storage, {
    runId: "l01",
    owner: OWNER,
    consumeSignals: [{ seq: consumed.seq, action: "a" }],
  });
  await storage.addSignal({ runId: "l06", name: "go", payload: null, createdAt: 1 });
}

export async function listFilters(storage: Storage): Promise<void> {
  await listFixture(storage);
  const list = async (query: Parameters<Storage["listRuns"]>[0]) => ids(await storage.listRuns(query));

  assert.deepEqual(await list({}), ["l01", "l02", "l03", "l04", "l05", "l06", "l07", "l08", "l09"]);
  assert.deepEqual(await list({ sagas: ["deploy"], statuses: ACTIVE_STATUSES }), [
    "l01",
    "l02",
    "l07",
    "l09",
  ]);
  assert.deepEqual(await list({ sagas: ["deploy", "build"], statuses: ["waiting"] }), [
    "l02",
    "l03",
    "l07",
    "l09",
  ]);
  assert.deepEqual(await list({ sagas: ["test", "build"] }), ["l03", "l05", "l06", "l08"]);
  assert.deepEqual(await list({ sagas: ["nope"] }), []);
  assert.deepEqual(await list({ sagas: [] }), [], "an empty saga list matches nothing");
  assert.deepEqual(await list({ statuses: [] }), [], "an empty status list matches nothing");
  assert.deepEqual(await list({ statuses: ["needs_attention", "cancelled"] }), ["l06", "l08"]);
  assert.deepEqual(await list({ owner: OWNER }), ["l01"]);
  assert.deepEqual(await list({ owner: OTHER, statuses: ACTIVE_STATUSES }), ["l05", "l07"]);
  assert.deepEqual(await list({ owner: null }), ["l02", "l03", "l04", "l06", "l08", "l09"]);
  assert.deepEqual(await list({ owner: null, statuses: ["waiting"], sagas: ["deploy"] }), ["l02", "l09"]);
  assert.deepEqual(await list({ wakeAtOrBefore: 500 }), ["l02", "l03"], "at or before, never null");
  assert.deepEqual(await list({ wakeAtOrBefore: 499 }), ["l03"]);
  assert.deepEqual(await list({ wakeAtOrBefore: 10_000, owner: null }), ["l02", "l03"]);
  assert.deepEqual(await list({ cancelRequested: true }), ["l05", "l07"]);
  assert.deepEqual(await list({ cancelRequested: true, sagas: ["deploy"] }), ["l07"]);
  assert.deepEqual(await list({ cancelRequested: false, statuses: ["waiting"] }), ["l02", "l03", "l09"]);
  assert.deepEqual(await list({ withPendingSignals: true }), ["l02", "l06"], "consumed signals do not count");
  assert.deepEqual(await list({ withPendingSignals: true, statuses: ACTIVE_STATUSES }), ["l02"]);
  assert.deepEqual(await list({ withPendingSignals: false, sagas: ["deploy"] }), [
    "l01",
    "l04",
    "l07",
    "l09",
  ]);
}

export async function listOrderAndLimit(storage: Storage): Promise<void> {
  // Inserted out of order; createdAt ties are broken by id.
  const rows: [string, number][] = [
    ["c", 300],
    ["b", 100],
    ["a2", 200],
    ["a1", 200],
    ["z", 50],
    ["m", 200],
  ];
  for (const [id, createdAt] of rows) await create(storage, id, { createdAt });
  const all = ["z", "b", "a1", "a2", "m", "c"];
  assert.deepEqual(ids(await storage.listRuns({})), all);
  assert.deepEqual(ids(await storage.listRuns({ limit: 3 })), all.slice(0, 3));
  assert.deepEqual(ids(await storage.listRuns({ limit: 100 })), all);
  assert.deepEqual(ids(await storage.listRuns({ limit: 0 })), []);
  assert.deepEqual(ids(await storage.listRuns({ limit: 1, statuses: ["running"] })), ["z"]);
  // Newest first, a page at a time after the last one seen.
  const newest = [...all].reverse();
  assert.deepEqual(ids(await storage.listRuns({ newestFirst: true })), newest);
  assert.deepEqual(ids(await storage.listRuns({ newestFirst: true, limit: 2 })), newest.slice(0, 2));
  const page = await storage.listRuns({
    newestFirst: true,
    before: { createdAt: 200, id: "a2" },
    limit: 3,
  });
  assert.deepEqual(ids(page), ["a1", "b", "z"]);
  assert.deepEqual(ids(await storage.listRuns({ before: { createdAt: 200, id: "m" } })), [
    "z",
    "b",
    "a1",
    "a2",
  ]);
  // Returned records are complete.
  const [first] = await storage.listRuns({ limit: 1 });
  assert.deepEqual(first, await storage.getRun("z"));
}

export async function nextWakeAt(storage: Storage): Promise<void> {
  assert.equal(await storage.nextWakeAt(["deploy"]), undefined);
  await create(storage, "w1", { status: "waiting", wakeAt: 500 }, null);
  await create(storage, "w2", { status: "waiting", wakeAt: 300 }, null);
  await create(storage, "w3", { status: "waiting", wakeAt: 100 }, OWNER); // owned: its owner handles it
  await create(storage, "w4", { status: "running", wakeAt: 50 }, null); // not waiting
  await create(storage, "w5", { saga: "build", status: "waiting", wakeAt: 200 }, null);
  await create(storage, "w6", { status: "waiting", wakeAt: null }, null);
  await create(storage, "w7", { status: "compensating", wakeAt: 10 }, null);

  assert.equal(await storage.nextWakeAt(["deploy"]), 300);
  assert.equal(await storage.nextWakeAt(["deploy", "build"]), 200);
  assert.equal(await storage.nextWakeAt(["build"]), 200);
  assert.equal(await storage.nextWakeAt(["other"]), undefined);
  assert.equal(await storage.nextWakeAt([]), undefined);

  // Claiming w2 takes it out; releasing it with a new wake puts it back.
  await storage.claim({ runId: "w2", owner: OWNER });
  assert.equal(await storage.nextWakeAt(["deploy"]), 500);
  await commitOne(storage, { runId: "w2", owner: OWNER, run: { wakeAt: 400, release: true } });
  assert.equal(await storage.nextWakeAt(["deploy"]), 400);
}

export async function deleteEnded(storage: Storage): Promise<void> {
  await listFixture(storage);
  // l04 completed, l08 cancelled: removed with what they own; live and held ones are kept.
  assert.equal(await storage.deleteRun("l04"), true);
  assert.equal(await storage.deleteRun("l04"), false, "a second delete finds nothing");
  assert.equal(await storage.getRun("l04"), undefined);
  assert.equal(await storage.load("l04"), undefined);
  for (const id of ["l01", "l02", "l05", "l06", "nope"])
    assert.equal(await storage.deleteRun(id), false, `${id} is not ended: kept`);
  assert.ok(await storage.load("l02"));
  assert.equal(await storage.deleteRun("l08"), true);
  assert.deepEqual(ids(await storage.listRuns({})), ["l01", "l02", "l03", "l05", "l06", "l07", "l09"]);
  // Signals of kept runs stay; the others' went with them.
  assert.deepEqual(ids(await storage.listRuns({ withPendingSignals: true })), ["l02", "l06"]);
}

/** `text`: a run's id, name or saga containing it, in any case; with the other filters, order and pages. */
export async function listText(storage: Storage): Promise<void> {
  const rows: [string, Partial<RunRecord>][] = [
    [
      "Run-Alpha-01",
      { saga: "Deploy", runName: "Release 1.2", status: "completed", endedAt: 1, createdAt: 10 },
    ],
    ["run-beta-02", { saga: "build", runName: 'say "hi" 100%', createdAt: 20 }],
    ["run-gamma-03", { saga: "deploy-docs", createdAt: 30 }],
    ["run-delta-04", { saga: "Test", runName: "ÉTÉ nightly", status: "cancelled", createdAt: 40 }],
    ["x5", { saga: "build", runName: "alpha_beta", createdAt: 50 }],
  ];
  for (const [id, overrides] of rows) await create(storage, id, overrides, null);
  const list = async (query: Parameters<Storage["listRuns"]>[0]) => ids(await storage.listRuns(query));

  // In the id, the name or the saga; any case on either side; substrings anywhere.
  assert.deepEqual(await list({ text: "ALPHA" }), ["Run-Alpha-01", "x5"]);
  assert.deepEqual(await list({ text: "release 1.2" }), ["Run-Alpha-01"]);
  assert.deepEqual(await list({ text: "DEPLOY" }), ["Run-Alpha-01", "run-gamma-03"]);
  assert.deepEqual(await list({ text: "eta-0" }), ["run-beta-02"]);
  assert.deepEqual(await list({ text: "été" }), ["run-delta-04"], "non-ASCII letters fold too");
  assert.deepEqual(await list({ text: "NIGHTLY" }), ["run-delta-04"]);
  // Quotes, percent signs and underscores are only characters.
  assert.deepEqual(await list({ text: '"HI"' }), ["run-beta-02"]);
  assert.deepEqual(await list({ text: "100%" }), ["run-beta-02"]);
  assert.deepEqual(await list({ text: "a_b" }), ["x5"]);
  assert.deepEqual(await list({ text: "_" }), ["x5"]);
  assert.deepEqual(await list({ text: "%" }), ["run-beta-02"]);
  // One or two characters, too.
  assert.deepEqual(await list({ text: "X" }), ["x5"]);
  assert.deepEqual(await list({ text: "5" }), ["x5"]);
  assert.deepEqual(await list({ text: "Té" }), ["run-delta-04"]);
  // No match across the fields (id, then name, then saga).
  assert.deepEqual(await list({ text: "01release" }), []);
  assert.deepEqual(await list({ text: "absent" }), []);
  assert.deepEqual(await list({ text: "" }), ids(rows.map(([id]) => ({ id }))), "empty: no filter");
  // With the other filters, newest first, a page at a time.
  assert.deepEqual(await list({ text: "run-", statuses: ["running"] }), ["run-beta-02", "run-gamma-03"]);
  assert.deepEqual(await list({ text: "a", sagas: ["build"] }), ["run-beta-02", "x5"]);
  assert.deepEqual(await list({ text: "RUN", newestFirst: true, limit: 2 }), [
    "run-delta-04",
    "run-gamma-03",
  ]);
  assert.deepEqual(
    await list({ text: "RUN", newestFirst: true, limit: 2, before: { createdAt: 30, id: "run-gamma-03" } }),
    ["run-beta-02", "Run-Alpha-01"],
  );
  // A deleted run is no longer found.
  assert.equal(await storage.deleteRun("Run-Alpha-01"), true);
  assert.deepEqual(await list({ text: "alpha" }), ["x5"]);
  assert.deepEqual(await list({ text: "deploy" }), ["run-gamma-03"]);
}
