/** Storage conformance suite: the behaviour every `Storage` backend must share, for any test framework. */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createRequire } from "node:module";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { Json } from "../json.js";
import type {
  EventRecord,
  ExecutionRecord,
  PeakStore,
  SignalRecord,
  StepRecord,
  Storage,
  Transition,
} from "../storage/types.js";
import { ACTIVE_STATUSES } from "../storage/types.js";
import { type CrashChildPayload, toImportSpecifier, verifyCrashState } from "./crash-workload.js";
import {
  BASE_TIME,
  createTransition,
  eventRecord,
  executionRecord,
  executorRecord,
  stepRecord,
} from "./records.js";

export type TestBody = () => Promise<void>;
/** vitest's, jest's and node:test's `it` all fit; `skip` is used when present. */
export type ItLike = ((name: string, fn: TestBody) => void) & {
  skip?: (name: string, fn: TestBody) => void;
};
export type DescribeLike = (name: string, fn: () => void) => void;

export interface CrashChildOptions {
  /** Absolute path or file URL of a module the child process can import (a .ts one needs tsx installed). */
  module: string;
  /** Export of `module` called with `arg`; returns (or resolves to) a Storage on the shared database. */
  exportName: string;
  /** JSON-serializable; must point every call at the same database. */
  arg: unknown;
}

export interface StorageConformanceOptions {
  name: string;
  /**
   * A fresh, empty storage per test (`init` is called by the suite too; it must be idempotent).
   * Called once more while the tests are collected, to see which optional capabilities the backend
   * has (`loadMany`, `getExecutions`, `peaks`): that storage is closed without `init`, before any
   * test runs. A case needing a capability the backend lacks is reported skipped; when the factory
   * is async, the case finds out as it runs and skips itself through the framework's context
   * (`skip()` of vitest's and node:test's), or passes without checking anything.
   */
  newStorage: () => Promise<Storage> | Storage;
  describe: DescribeLike;
  it: ItLike;
  /** Test name -> why this backend skips it. */
  skip?: Record<string, string>;
  /** Enables the process-kill test: how a child process opens the same database. */
  crashChild?: CrashChildOptions;
}

export const CRASH_TEST_NAME = "a process killed between writes leaves each transition all there or absent";

const OWNER = "executor-a";
const OTHER = "executor-b";

/** Optional parts of a backend: `loadMany` (with `Transition.claim`), `getExecutions`, `peaks()`. */
type Capability = "loadMany" | "getExecutions" | "peaks";
/** The skip reason of a case whose capability the backend does not have. */
export const CAPABILITY_NOT_IMPLEMENTED = "optional capability not implemented";

type Case = [name: string, body: (storage: Storage) => Promise<void>, needs?: Capability];

export function runStorageConformance(options: StorageConformanceOptions): void {
  const cases: Case[] = [
    ["init is idempotent and keeps data", initIsIdempotent],
    ["create stores the execution, its steps and its events, owned by the committer", createStoresEverything],
    ["create of an id already taken returns exists and writes nothing", duplicateCreate],
    ["a patch changes only the fields it carries", patchChangesOnlyGivenFields],
    ["release sets the owner to null and ends ownership", releaseEndsOwnership],
    ["a record updated many times reads back its latest state", latestStateWins],
    ["a commit by a non-owner returns not_owner and writes nothing", nonOwnerWritesNothing],
    ["a batch mixing owned and not-owned transitions commits exactly the owned ones", mixedBatch],
    ["claim takes unowned, own and taken-over executions, never someone else's", claimRules],
    ["concurrent claimers: exactly one wins", concurrentClaims],
    ["claimMany answers each request as claim would, in order", claimMany],
    ["listExecutions filters by saga, status, owner, wake time, cancel and signals", listFilters],
    ["listExecutions orders by createdAt then id and honours limit", listOrderAndLimit],
    ["nextWakeAt is the earliest wake of unowned waiting executions of the sagas", nextWakeAt],
    ["large values round-trip exactly", largeValues],
    ["unicode and awkward JSON round-trip exactly", unicodeValues],
    ["signals get strictly increasing seqs and keep their order", signalOrder],
    ["a transition consumes signals: consumedBy set, gone from the snapshot", signalConsumption],
    ["addSignal for an unknown execution is rejected", signalUnknownExecution],
    ["addSignals writes a batch in order, or nothing when one execution is unknown", addSignalsBatch],
    ["history is kept in seq order and can be read after a seq", historyOrder],
    ["appending an event seq that already exists fails the whole batch", duplicateEventFailsBatch],
    ["a value JSON cannot serialize fails the whole batch, nothing written", unserializableFailsBatch],
    ["requestCancel marks any execution and later patches keep the mark", requestCancel],
    ["executors are upserted, listed by id and removed", executors],
    ["records handed in or out are not shared with the store", noSharedObjects],
    ["unknown executions read as absent", unknownExecutions],
    ["loadMany answers like load, in order, with a fresh object per answer", loadManyLikeLoad, "loadMany"],
    ["getExecutions answers like getExecution, in order", getExecutionsLikeGetExecution, "getExecutions"],
    [
      "a claiming transition commits at the loaded revision and takes ownership",
      claimingTransitionTakesOwnership,
      "loadMany",
    ],
    [
      "a claiming transition that releases leaves the execution unowned",
      claimingTransitionReleases,
      "loadMany",
    ],
    [
      "a claiming transition whose revision moved writes nothing, whoever moved it",
      claimingTransitionLoses,
      "loadMany",
    ],
    ["peaks are kept per job, the newest 100, read newest first", peaksPerJob, "peaks"],
  ];
  const skip = options.skip ?? {};
  const known = new Set([...cases.map(([name]) => name), CRASH_TEST_NAME]);
  for (const name of Object.keys(skip)) {
    // A typo in a skip key would silently run (or drop) the wrong test.
    if (!known.has(name)) throw new Error(`runStorageConformance: unknown test "${name}" in skip`);
  }
  const { describe, it } = options;
  const skipTest = (name: string, reason: string) => {
    if (it.skip) it.skip(`${name} (${reason})`, async () => {});
    else it(`${name} [skipped: ${reason}]`, async () => {});
  };

  describe(`storage conformance: ${options.name}`, () => {
    const probe = probeCapabilities(options.newStorage);
    for (const [name, body, needs] of cases) {
      const lacks = needs !== undefined && probe.capabilities !== undefined && !probe.capabilities.has(needs);
      const reason = skip[name] ?? (lacks ? CAPABILITY_NOT_IMPLEMENTED : undefined);
      if (reason !== undefined) {
        skipTest(name, reason);
        continue;
      }
      // The framework's test context (vitest, node:test) as a rest parameter: jest reads a declared
      // first parameter as a `done` callback.
      it(name, async (...context: unknown[]) => {
        await probe.closed;
        const storage = await options.newStorage();
        try {
          if (needs !== undefined && !hasCapability(storage, needs)) {
            skipRunning(context[0], CAPABILITY_NOT_IMPLEMENTED);
            return;
          }
          await storage.init();
          await body(storage);
        } finally {
          await storage.close();
        }
      });
    }
    const crash = options.crashChild;
    const crashSkip = skip[CRASH_TEST_NAME];
    if (crashSkip !== undefined) skipTest(CRASH_TEST_NAME, crashSkip);
    else if (!crash) skipTest(CRASH_TEST_NAME, "backend cannot be opened from another process");
    else it(CRASH_TEST_NAME, () => crashTest(crash));
  });
}

// ---------------------------------------------------------------------------------------------------
// Capabilities

function hasCapability(storage: Storage, capability: Capability): boolean {
  return typeof (storage as unknown as Record<string, unknown>)[capability] === "function";
}

/**
 * Which capabilities the backend has, from one storage made while the tests are collected (the
 * decision to skip must be made then). `capabilities` is undefined when the factory is async;
 * `closed` settles once that storage is closed, and every test waits for it.
 */
function probeCapabilities(newStorage: StorageConformanceOptions["newStorage"]): {
  capabilities?: ReadonlySet<Capability>;
  closed: Promise<void>;
} {
  const made = newStorage();
  if (made instanceof Promise) return { closed: made.then((storage) => storage.close()) };
  const all: Capability[] = ["loadMany", "getExecutions", "peaks"];
  const capabilities = new Set(all.filter((capability) => hasCapability(made, capability)));
  return { capabilities, closed: made.close() };
}

/** Marks the running test skipped when the framework's context can (vitest's throws to stop it). */
function skipRunning(context: unknown, reason: string): void {
  const skip = (context as { skip?: unknown } | undefined)?.skip;
  if (typeof skip === "function") skip.call(context, reason);
}

/** The optional `peaks()` of a backend (SqliteStorage has it); the case runs only where it exists. */
function peaksOf(storage: Storage): PeakStore {
  return (storage as Storage & { peaks(): PeakStore }).peaks();
}

// ---------------------------------------------------------------------------------------------------
// Helpers

async function create(
  storage: Storage,
  id: string,
  overrides: Partial<ExecutionRecord> = {},
  owner: string | null = OWNER,
): Promise<ExecutionRecord> {
  const record = executionRecord(id, overrides);
  const [result] = await storage.commit([
    createTransition(record, owner ?? OWNER, owner === null ? { execution: { release: true } } : {}),
  ]);
  assert.equal(result, "ok", `create ${id}`);
  const stored = await storage.getExecution(id);
  assert.ok(stored, `${id} readable after create`);
  return stored;
}

async function commitOne(storage: Storage, transition: Transition): Promise<string | undefined> {
  const results = await storage.commit([transition]);
  assert.equal(results.length, 1);
  return results[0];
}

function ids(records: readonly { id: string }[]): string[] {
  return records.map((r) => r.id);
}

async function mustLoad(storage: Storage, id: string) {
  const snapshot = await storage.load(id);
  assert.ok(snapshot, `${id} exists`);
  return snapshot;
}

/** Everything observable about one execution, to prove a failed write changed nothing. */
async function observe(storage: Storage, id: string) {
  return { snapshot: await storage.load(id), history: await storage.history(id) };
}

// ---------------------------------------------------------------------------------------------------
// Cases

async function initIsIdempotent(storage: Storage): Promise<void> {
  await storage.init();
  await create(storage, "e1");
  await storage.init();
  assert.equal((await storage.getExecution("e1"))?.id, "e1");
}

async function createStoresEverything(storage: Storage): Promise<void> {
  const record = executionRecord("e1", {
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
    eventRecord("e1", 1, { type: "execution_started", data: { input: { ticket: "OPS-7" } } }),
    eventRecord("e1", 2, { type: "step_completed", action: "build" }),
  ];
  const results = await storage.commit([createTransition(record, OWNER, { steps, events })]);
  assert.deepEqual(results, ["ok"]);
  const expected = { ...record, owner: OWNER };
  assert.deepEqual(await storage.getExecution("e1"), expected);
  const snapshot = await mustLoad(storage, "e1");
  assert.deepEqual(snapshot, { execution: expected, steps, signals: [], nextEventSeq: 3 });
  assert.deepEqual(await storage.history("e1"), events);

  // A creating transition may carry a patch: it is folded into the new row, with no extra revision.
  const other = executionRecord("e2", { revision: 0 });
  await storage.commit([createTransition(other, OWNER, { execution: { status: "waiting", wakeAt: 77 } })]);
  assert.deepEqual(await storage.getExecution("e2"), {
    ...other,
    owner: OWNER,
    status: "waiting",
    wakeAt: 77,
  });
}

async function duplicateCreate(storage: Storage): Promise<void> {
  await storage.commit([createTransition(executionRecord("e1"), OWNER, { steps: [stepRecord("e1", "a")] })]);
  const before = await observe(storage, "e1");
  const again = executionRecord("e1", { saga: "other", input: { different: true } });
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
    createTransition(executionRecord("e2"), OWNER),
    createTransition(executionRecord("e2", { saga: "x" }), OTHER, { steps: [stepRecord("e2", "a")] }),
  ]);
  assert.deepEqual(twice, ["ok", "exists"]);
  const e2 = await mustLoad(storage, "e2");
  assert.equal(e2.execution.owner, OWNER);
  assert.equal(e2.execution.saga, "deploy");
  assert.deepEqual(e2.steps, []);
}

async function patchChangesOnlyGivenFields(storage: Storage): Promise<void> {
  const initial = await create(storage, "e1", {
    runName: "run",
    wakeAt: 100,
    cause: { kind: "cancel", reason: "r" },
    error: { name: "Error", message: "m" },
    endedAt: 5,
    cancelRequested: "c",
  });

  assert.equal(
    await commitOne(storage, { executionId: "e1", owner: OWNER, execution: { status: "waiting" } }),
    "ok",
  );
  const afterStatus = await storage.getExecution("e1");
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
    executionId: "e1",
    owner: OWNER,
    execution: { wakeAt: null, error: { name: "E2", message: "m2" }, status: undefined, cause: undefined },
  });
  const afterNulls = await storage.getExecution("e1");
  assert.ok(afterNulls);
  assert.deepEqual(afterNulls, {
    ...afterStatus,
    wakeAt: null,
    error: { name: "E2", message: "m2" },
    revision: initial.revision + 2,
    updatedAt: afterNulls.updatedAt,
  });

  await commitOne(storage, {
    executionId: "e1",
    owner: OWNER,
    execution: { cause: null, endedAt: 9, cancelRequested: null, status: "compensated" },
  });
  const afterAll = await storage.getExecution("e1");
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
  await commitOne(storage, { executionId: "e1", owner: OWNER, steps: [stepRecord("e1", "a")] });
  const afterEmpty = await storage.getExecution("e1");
  assert.ok(afterEmpty);
  assert.deepEqual(afterEmpty, {
    ...afterAll,
    revision: initial.revision + 4,
    updatedAt: afterEmpty.updatedAt,
  });
}

async function releaseEndsOwnership(storage: Storage): Promise<void> {
  await create(storage, "e1");
  assert.equal(
    await commitOne(storage, {
      executionId: "e1",
      owner: OWNER,
      execution: { status: "waiting", wakeAt: 50, release: true },
    }),
    "ok",
  );
  const released = await storage.getExecution("e1");
  assert.equal(released?.owner, null);
  assert.equal(released?.status, "waiting");
  assert.equal(released?.wakeAt, 50);
  // The former owner no longer owns it.
  assert.equal(
    await commitOne(storage, { executionId: "e1", owner: OWNER, execution: { status: "running" } }),
    "not_owner",
  );
  assert.equal((await storage.getExecution("e1"))?.status, "waiting");
  // Created unowned (release folded into the create).
  await create(storage, "e2", {}, null);
  assert.equal((await storage.getExecution("e2"))?.owner, null);
}

async function latestStateWins(storage: Storage): Promise<void> {
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
    executionId: "e1",
    owner: OWNER,
    execution: {
      status: i % 2 === 0 ? "running" : "waiting",
      wakeAt: BASE_TIME + i,
      error: { name: "Error", message: `patch ${i}` },
    },
    steps: [stepAt(i)],
  });
  // 25 separate commits, then 25 transitions of the same execution in one batch.
  for (let i = 0; i < 25; i++) assert.equal(await commitOne(storage, patchAt(i)), "ok");
  const batch = await storage.commit(Array.from({ length: 25 }, (_, k) => patchAt(25 + k)));
  assert.deepEqual(batch, Array(25).fill("ok"));

  const snapshot = await mustLoad(storage, "e1");
  assert.deepEqual(snapshot.steps, [stepAt(49)]);
  assert.equal(snapshot.execution.revision, initial.revision + 50);
  assert.equal(snapshot.execution.status, "waiting");
  assert.equal(snapshot.execution.wakeAt, BASE_TIME + 49);
  assert.deepEqual(snapshot.execution.error, { name: "Error", message: "patch 49" });
  const listed = await storage.listExecutions({ sagas: ["deploy"] });
  assert.deepEqual(listed, [snapshot.execution]);
}

async function nonOwnerWritesNothing(storage: Storage): Promise<void> {
  await create(storage, "e1");
  const signal = await storage.addSignal({ executionId: "e1", name: "go", payload: 1, createdAt: BASE_TIME });
  const before = await observe(storage, "e1");
  const results = await storage.commit([
    {
      executionId: "e1",
      owner: OTHER,
      execution: { status: "completed", release: true },
      steps: [stepRecord("e1", "a")],
      events: [eventRecord("e1", 1)],
      consumeSignals: [{ seq: signal.seq, action: "a" }],
    },
  ]);
  assert.deepEqual(results, ["not_owner"]);
  assert.deepEqual(await observe(storage, "e1"), before);
  assert.equal((await storage.signalsAfter(0))[0]?.consumedBy, null);

  // An execution that does not exist is nobody's: nothing of the transition lands.
  assert.deepEqual(
    await storage.commit([
      {
        executionId: "ghost",
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

async function mixedBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2", {}, OTHER);
  await create(storage, "e3");
  const work = (id: string, extra: Partial<Transition> = {}): Transition => ({
    executionId: id,
    owner: OWNER,
    execution: { status: "waiting" },
    steps: [stepRecord(id, "a", { output: { id } })],
    events: [eventRecord(id, 1)],
    ...extra,
  });
  const e2Before = await observe(storage, "e2");
  const results = await storage.commit([
    work("e1"),
    work("e2"),
    work("e3"),
    createTransition(executionRecord("e4"), OWNER),
    work("e4"), // sees the create earlier in the same batch
    createTransition(executionRecord("e1"), OWNER), // taken
    work("missing"),
  ]);
  assert.deepEqual(results, ["ok", "not_owner", "ok", "ok", "ok", "exists", "not_owner"]);
  for (const id of ["e1", "e3", "e4"]) {
    const snapshot = await mustLoad(storage, id);
    assert.equal(snapshot.execution.status, "waiting", id);
    assert.deepEqual(snapshot.steps, [stepRecord(id, "a", { output: { id } })], id);
    assert.equal(snapshot.nextEventSeq, 2, id);
  }
  assert.deepEqual(await observe(storage, "e2"), e2Before);
  assert.equal(await storage.load("missing"), undefined);

  // Transitions apply in order: after a release in the batch, the same owner no longer owns it.
  const sequenced = await storage.commit([
    { executionId: "e3", owner: OWNER, execution: { release: true } },
    { executionId: "e3", owner: OWNER, execution: { status: "completed" } },
  ]);
  assert.deepEqual(sequenced, ["ok", "not_owner"]);
  const e3 = await storage.getExecution("e3");
  assert.equal(e3?.owner, null);
  assert.equal(e3?.status, "waiting");
}

async function claimRules(storage: Storage): Promise<void> {
  await create(storage, "e1", {}, null);
  await storage.commit([
    createTransition(executionRecord("e2"), OWNER, {
      steps: [stepRecord("e2", "a"), stepRecord("e2", "b", { status: "completed" })],
      events: [eventRecord("e2", 1), eventRecord("e2", 2)],
      execution: { release: true },
    }),
  ]);
  const signal = await storage.addSignal({
    executionId: "e2",
    name: "go",
    payload: { ok: true },
    createdAt: 1,
  });

  // Unowned: taken, revision and updatedAt bumped, full snapshot returned.
  const before = await storage.getExecution("e2");
  assert.ok(before);
  const claimed = await storage.claim({ executionId: "e2", owner: OWNER });
  assert.ok(claimed, "unowned execution is claimable");
  assert.equal(claimed.execution.owner, OWNER);
  assert.equal(claimed.execution.revision, before.revision + 1);
  assert.ok(claimed.execution.updatedAt >= before.updatedAt);
  assert.deepEqual(claimed.steps, [stepRecord("e2", "a"), stepRecord("e2", "b", { status: "completed" })]);
  assert.deepEqual(claimed.signals, [signal]);
  assert.equal(claimed.nextEventSeq, 3);
  assert.deepEqual(await storage.getExecution("e2"), claimed.execution);

  // Already ours: fine, and bumps again.
  const again = await storage.claim({ executionId: "e2", owner: OWNER });
  assert.equal(again?.execution.revision, before.revision + 2);

  // Someone else's: refused, unchanged.
  const owned = await storage.getExecution("e2");
  assert.equal(await storage.claim({ executionId: "e2", owner: OTHER }), undefined);
  assert.equal(
    await storage.claim({ executionId: "e2", owner: OTHER, takeOverFrom: ["executor-x"] }),
    undefined,
  );
  assert.deepEqual(await storage.getExecution("e2"), owned);

  // Taken over from a dead executor.
  const taken = await storage.claim({ executionId: "e2", owner: OTHER, takeOverFrom: ["executor-x", OWNER] });
  assert.equal(taken?.execution.owner, OTHER);
  assert.equal(await commitOne(storage, { executionId: "e2", owner: OWNER }), "not_owner");
  assert.equal(await commitOne(storage, { executionId: "e2", owner: OTHER }), "ok");

  assert.equal(await storage.claim({ executionId: "missing", owner: OWNER }), undefined);
  assert.equal((await storage.claim({ executionId: "e1", owner: OTHER }))?.execution.owner, OTHER);
}

async function concurrentClaims(storage: Storage): Promise<void> {
  await create(storage, "free", {}, null);
  const before = await storage.getExecution("free");
  const claimers = Array.from({ length: 8 }, (_, i) => `claimer-${i}`);
  const snapshots = await Promise.all(claimers.map((owner) => storage.claim({ executionId: "free", owner })));
  const winners = snapshots.filter((s) => s !== undefined);
  assert.equal(winners.length, 1, "exactly one claimer wins an unowned execution");
  const after = await storage.getExecution("free");
  assert.equal(after?.owner, winners[0]?.execution.owner);
  assert.equal(after?.revision, (before?.revision ?? 0) + 1);

  // Everyone believes "dead" died: still exactly one takes over.
  await create(storage, "orphan", {}, "dead");
  const takeovers = await Promise.all(
    claimers.map((owner) => storage.claim({ executionId: "orphan", owner, takeOverFrom: ["dead"] })),
  );
  assert.equal(takeovers.filter((s) => s !== undefined).length, 1, "exactly one claimer takes over");
}

async function claimMany(storage: Storage): Promise<void> {
  await create(storage, "m-free", {}, null);
  await create(storage, "m-mine", {}, OWNER);
  await create(storage, "m-theirs", {}, OTHER);
  await create(storage, "m-dead", {}, "dead");
  const results = await storage.claimMany([
    { executionId: "m-free", owner: OWNER },
    { executionId: "m-theirs", owner: OWNER },
    { executionId: "m-mine", owner: OWNER },
    { executionId: "m-missing", owner: OWNER },
    { executionId: "m-dead", owner: OWNER, takeOverFrom: ["dead"] },
  ]);
  assert.deepEqual(
    results.map((r) => r?.execution.id),
    ["m-free", undefined, "m-mine", undefined, "m-dead"],
  );
  for (const id of ["m-free", "m-mine", "m-dead"])
    assert.equal((await storage.getExecution(id))?.owner, OWNER);
  assert.equal((await storage.getExecution("m-theirs"))?.owner, OTHER);
  assert.deepEqual(await storage.claimMany([]), []);
}

async function addSignalsBatch(storage: Storage): Promise<void> {
  await create(storage, "s-batch", {}, OWNER);
  const added = await storage.addSignals([
    { executionId: "s-batch", name: "a", payload: { n: 1 }, createdAt: 1 },
    { executionId: "s-batch", name: "b", payload: "two", createdAt: 2 },
    { executionId: "s-batch", name: "a", payload: [3], createdAt: 3 },
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
      { executionId: "s-batch", name: "c", payload: null, createdAt: 4 },
      { executionId: "s-nobody", name: "c", payload: null, createdAt: 4 },
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

/** Fixture for the listing tests: ids sort in creation order. */
async function listFixture(storage: Storage): Promise<void> {
  const rows: [string, Partial<ExecutionRecord>, string | null][] = [
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
  await storage.addSignal({ executionId: "l02", name: "go", payload: null, createdAt: 1 });
  const consumed = await storage.addSignal({ executionId: "l01", name: "go", payload: null, createdAt: 1 });
  await commitOne(storage, {
    executionId: "l01",
    owner: OWNER,
    consumeSignals: [{ seq: consumed.seq, action: "a" }],
  });
  await storage.addSignal({ executionId: "l06", name: "go", payload: null, createdAt: 1 });
}

async function listFilters(storage: Storage): Promise<void> {
  await listFixture(storage);
  const list = async (query: Parameters<Storage["listExecutions"]>[0]) =>
    ids(await storage.listExecutions(query));

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

async function listOrderAndLimit(storage: Storage): Promise<void> {
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
  assert.deepEqual(ids(await storage.listExecutions({})), all);
  assert.deepEqual(ids(await storage.listExecutions({ limit: 3 })), all.slice(0, 3));
  assert.deepEqual(ids(await storage.listExecutions({ limit: 100 })), all);
  assert.deepEqual(ids(await storage.listExecutions({ limit: 0 })), []);
  assert.deepEqual(ids(await storage.listExecutions({ limit: 1, statuses: ["running"] })), ["z"]);
  // Returned records are complete.
  const [first] = await storage.listExecutions({ limit: 1 });
  assert.deepEqual(first, await storage.getExecution("z"));
}

async function nextWakeAt(storage: Storage): Promise<void> {
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
  await storage.claim({ executionId: "w2", owner: OWNER });
  assert.equal(await storage.nextWakeAt(["deploy"]), 500);
  await commitOne(storage, { executionId: "w2", owner: OWNER, execution: { wakeAt: 400, release: true } });
  assert.equal(await storage.nextWakeAt(["deploy"]), 400);
}

async function largeValues(storage: Storage): Promise<void> {
  // ~5 MB of varied text (multi-byte characters included, so it is well over 5 MB in UTF-8).
  const chunk = "log line: build step ok — ✓ 構築 🚀\n";
  const big = chunk.repeat(Math.ceil((5 * 1024 * 1024) / chunk.length));
  const record = executionRecord("big", { input: { big } });
  const steps = [stepRecord("big", "build", { output: { log: big, size: big.length }, state: { big } })];
  const events = [eventRecord("big", 1, { data: { log: big } })];
  // Many rows in one transition, too.
  for (let i = 0; i < 200; i++) steps.push(stepRecord("big", `step-${i}`, { output: { i } }));
  assert.deepEqual(await storage.commit([createTransition(record, OWNER, { steps, events })]), ["ok"]);
  const signal = await storage.addSignal({ executionId: "big", name: "log", payload: [big], createdAt: 1 });
  assert.deepEqual(signal.payload, [big]);

  const snapshot = await mustLoad(storage, "big");
  assert.equal(snapshot.execution.input.big, big);
  assert.equal(snapshot.steps.length, 201);
  assert.equal(snapshot.steps[0]?.output?.log, big);
  assert.equal(snapshot.steps[0]?.state?.big, big);
  assert.deepEqual(snapshot.steps, steps);
  assert.equal((await storage.history("big"))[0]?.data?.log, big);
  assert.deepEqual(snapshot.signals[0]?.payload, [big]);
}

async function unicodeValues(storage: Storage): Promise<void> {
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
  const record = executionRecord(id, {
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
  const signal = await storage.addSignal({ executionId: id, name: "signal-✓", payload, createdAt: 1 });

  const snapshot = await mustLoad(storage, id);
  assert.deepEqual(snapshot.execution, { ...record, owner: "exécuteur-1" });
  assert.deepEqual(snapshot.steps, [step]);
  assert.deepEqual(snapshot.signals, [signal]);
  assert.deepEqual(signal.payload, payload);
  assert.deepEqual(await storage.history(id), [event]);
  assert.deepEqual(ids(await storage.listExecutions({ sagas: ["saga-ש"], owner: "exécuteur-1" })), [id]);
  const cancelled = await storage.requestCancel(id, texts[0]!);
  assert.equal(cancelled?.cancelRequested, texts[0]);
}

async function signalOrder(storage: Storage): Promise<void> {
  assert.equal(await storage.lastSignalSeq(), 0);
  assert.deepEqual(await storage.signalsAfter(0), []);
  await create(storage, "e1");
  await create(storage, "e2");
  const payloads: Json[] = [null, 1, "text", [1, "two"], { a: { b: true } }, false, 0, "", [], {}];
  const added: SignalRecord[] = [];
  for (const [i, payload] of payloads.entries()) {
    const signal = await storage.addSignal({
      executionId: i % 2 === 0 ? "e1" : "e2",
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
    added.filter((s) => s.executionId === "e1"),
  );
  assert.deepEqual(
    (await mustLoad(storage, "e2")).signals,
    added.filter((s) => s.executionId === "e2"),
  );
}

async function signalConsumption(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  const signal = (executionId: string, name: string) =>
    storage.addSignal({ executionId, name, payload: { name }, createdAt: BASE_TIME });
  const s1 = await signal("e1", "approve");
  const s2 = await signal("e1", "poke");
  const s3 = await signal("e1", "approve");
  const other = await signal("e2", "approve");

  assert.equal(
    await commitOne(storage, {
      executionId: "e1",
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
      executionId: "e1",
      owner: OTHER,
      consumeSignals: [{ seq: s2.seq, action: "x" }],
    }),
    "not_owner",
  );
  assert.deepEqual((await mustLoad(storage, "e1")).signals, [s2, s3]);

  // Several at once; an already consumed one keeps its first consumer; another execution's is untouched.
  await commitOne(storage, {
    executionId: "e1",
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

async function signalUnknownExecution(storage: Storage): Promise<void> {
  await assert.rejects(
    storage.addSignal({ executionId: "ghost", name: "go", payload: null, createdAt: 1 }),
    (error: { code?: unknown }) => error.code === "not_found",
  );
  assert.equal(await storage.lastSignalSeq(), 0);
  assert.deepEqual(await storage.signalsAfter(0), []);
  // Ended executions still take signals (they are kept, whoever reads them).
  await create(storage, "done", { status: "completed", endedAt: 1 }, null);
  const signal = await storage.addSignal({ executionId: "done", name: "late", payload: 1, createdAt: 2 });
  assert.deepEqual(await storage.signalsAfter(0), [signal]);
}

async function historyOrder(storage: Storage): Promise<void> {
  await create(storage, "e1");
  assert.equal((await mustLoad(storage, "e1")).nextEventSeq, 1, "empty history: first seq is 1");
  assert.deepEqual(await storage.history("e1"), []);
  const event = (seq: number): EventRecord =>
    eventRecord("e1", seq, { type: `t${seq}`, action: seq % 2 ? "a" : null, data: { seq } });
  await commitOne(storage, { executionId: "e1", owner: OWNER, events: [event(1), event(2), event(3)] });
  // Out of order within a transition: history is still in seq order.
  await commitOne(storage, { executionId: "e1", owner: OWNER, events: [event(6), event(4), event(5)] });
  await create(storage, "e2");
  await commitOne(storage, { executionId: "e2", owner: OWNER, events: [eventRecord("e2", 1)] });

  const all = [1, 2, 3, 4, 5, 6].map(event);
  assert.deepEqual(await storage.history("e1"), all);
  assert.deepEqual(await storage.history("e1", 0), all);
  assert.deepEqual(await storage.history("e1", 4), all.slice(4));
  assert.deepEqual(await storage.history("e1", 6), []);
  assert.equal((await mustLoad(storage, "e1")).nextEventSeq, 7);
  assert.deepEqual(await storage.history("e2"), [eventRecord("e2", 1)]);
}

async function duplicateEventFailsBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  await commitOne(storage, { executionId: "e1", owner: OWNER, events: [eventRecord("e1", 1)] });
  const before1 = await observe(storage, "e1");
  const before2 = await observe(storage, "e2");
  await assert.rejects(
    storage.commit([
      {
        executionId: "e2",
        owner: OWNER,
        execution: { status: "waiting" },
        steps: [stepRecord("e2", "a")],
        events: [eventRecord("e2", 1)],
      },
      createTransition(executionRecord("e3"), OWNER, { steps: [stepRecord("e3", "a")] }),
      {
        executionId: "e1",
        owner: OWNER,
        execution: { status: "waiting" },
        steps: [stepRecord("e1", "a")],
        events: [eventRecord("e1", 2), eventRecord("e1", 1, { type: "duplicate" })],
      },
    ]),
    (error: { code?: unknown }) => error.code === "conflict",
  );
  assert.deepEqual(await observe(storage, "e1"), before1);
  assert.deepEqual(await observe(storage, "e2"), before2);
  assert.equal(await storage.getExecution("e3"), undefined);
  // The storage is still usable afterwards.
  assert.equal(
    await commitOne(storage, { executionId: "e1", owner: OWNER, events: [eventRecord("e1", 2)] }),
    "ok",
  );
}

async function unserializableFailsBatch(storage: Storage): Promise<void> {
  await create(storage, "e1");
  await create(storage, "e2");
  const signal = await storage.addSignal({ executionId: "e1", name: "go", payload: 1, createdAt: 1 });
  const before1 = await observe(storage, "e1");
  const before2 = await observe(storage, "e2");
  const good = (id: string): Transition => ({
    executionId: id,
    owner: OWNER,
    execution: { status: "waiting", wakeAt: 5 },
    steps: [stepRecord(id, "a", { output: { fine: true } })],
    events: [eventRecord(id, 1)],
  });
  const circular: Record<string, unknown> = {};
  circular.self = circular;
  const poisons: [string, (t: Transition) => Transition][] = [
    [
      "a BigInt in a step output",
      (t) => ({ ...t, steps: [stepRecord(t.executionId, "b", { output: { n: 10n } as never })] }),
    ],
    [
      "a cycle in event data",
      (t) => ({ ...t, events: [eventRecord(t.executionId, 2, { data: circular as never })] }),
    ],
    [
      "a BigInt in a patch error",
      (t) => ({ ...t, execution: { error: { name: "E", message: 1n as never } } }),
    ],
  ];
  for (const [what, poison] of poisons) {
    await assert.rejects(
      storage.commit([
        { ...good("e1"), consumeSignals: [{ seq: signal.seq, action: "a" }] },
        good("e2"),
        createTransition(executionRecord("e3"), OWNER),
        poison({ executionId: "e2", owner: OWNER }),
      ]),
      `${what} must make the batch throw`,
    );
    assert.deepEqual(await observe(storage, "e1"), before1, what);
    assert.deepEqual(await observe(storage, "e2"), before2, what);
    assert.equal(await storage.getExecution("e3"), undefined, what);
  }
  await assert.rejects(
    storage.addSignal({ executionId: "e1", name: "bad", payload: { n: 1n } as never, createdAt: 1 }),
  );
  assert.deepEqual(await storage.signalsAfter(0), [signal]);
  // Nothing half-done got in the way: the good transitions still commit.
  assert.deepEqual(await storage.commit([good("e1"), good("e2")]), ["ok", "ok"]);
}

async function requestCancel(storage: Storage): Promise<void> {
  const initial = await create(storage, "e1");
  const marked = await storage.requestCancel("e1", "operator asked");
  assert.ok(marked);
  assert.equal(marked.cancelRequested, "operator asked");
  assert.equal(marked.owner, OWNER, "ownership is untouched");
  assert.equal(marked.status, initial.status);
  assert.deepEqual(await storage.getExecution("e1"), marked);

  // The owner's later patches that do not mention it keep the mark.
  await commitOne(storage, {
    executionId: "e1",
    owner: OWNER,
    execution: { status: "compensating", wakeAt: 1 },
  });
  assert.equal((await storage.getExecution("e1"))?.cancelRequested, "operator asked");
  assert.deepEqual(ids(await storage.listExecutions({ cancelRequested: true })), ["e1"]);
  // Until it clears it.
  await commitOne(storage, { executionId: "e1", owner: OWNER, execution: { cancelRequested: null } });
  assert.equal((await storage.getExecution("e1"))?.cancelRequested, null);

  // Unowned executions too.
  await create(storage, "e2", {}, null);
  assert.equal((await storage.requestCancel("e2", "r"))?.cancelRequested, "r");
  assert.equal(await storage.requestCancel("missing", "r"), undefined);
}

async function executors(storage: Storage): Promise<void> {
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

async function noSharedObjects(storage: Storage): Promise<void> {
  const record = executionRecord("e1", { input: { list: [1, 2] } });
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
  loaded.execution.status = "completed";
  (loaded.steps[0]!.output!.list as number[]).push(4);
  (await storage.history("e1"))[0]!.type = "mutated";
  // ...changes nothing stored.
  const fresh = await mustLoad(storage, "e1");
  assert.equal(fresh.execution.saga, "deploy");
  assert.equal(fresh.execution.status, "running");
  assert.deepEqual(fresh.execution.input, { list: [1, 2] });
  assert.deepEqual(fresh.steps[0]?.output, { list: [1, 2] });
  assert.deepEqual(await storage.history("e1"), [eventRecord("e1", 1, { data: { list: [1, 2] } })]);
}

async function unknownExecutions(storage: Storage): Promise<void> {
  assert.equal(await storage.load("nope"), undefined);
  assert.equal(await storage.getExecution("nope"), undefined);
  assert.equal(await storage.claim({ executionId: "nope", owner: OWNER }), undefined);
  assert.equal(await storage.requestCancel("nope", "r"), undefined);
  assert.deepEqual(await storage.history("nope"), []);
  assert.deepEqual(await storage.listExecutions({}), []);
  assert.deepEqual(await storage.commit([]), []);
}

// ---------------------------------------------------------------------------------------------------
// Optional capabilities: batched reads (`loadMany`, `getExecutions`), the claim folded into a
// transition (`Transition.claim`, which a backend with `loadMany` must honour) and job peaks.

/** A parked execution (waiting, unowned) with two steps, one event and a pending signal. */
async function parked(storage: Storage, id: string): Promise<void> {
  const execution = executionRecord(id, { status: "waiting", wakeAt: null });
  assert.deepEqual(
    await storage.commit([
      createTransition(execution, OWNER, {
        execution: { release: true },
        steps: [stepRecord(id, "first", { status: "completed", output: { n: 1 } }), stepRecord(id, "wait")],
        events: [eventRecord(id, 1)],
      }),
    ]),
    ["ok"],
  );
  await storage.addSignal({ executionId: id, name: "go", payload: { ok: true }, createdAt: 1 });
}

async function loadManyLikeLoad(storage: Storage): Promise<void> {
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

async function getExecutionsLikeGetExecution(storage: Storage): Promise<void> {
  for (const id of ["y1", "y2"]) await parked(storage, id);
  const wanted = ["y2", "nope", "y1", "y2"];
  assert.deepEqual(
    await storage.getExecutions!(wanted),
    await Promise.all(wanted.map((id) => storage.getExecution(id))),
  );
  assert.deepEqual(await storage.getExecutions!([]), []);
}

async function claimingTransitionTakesOwnership(storage: Storage): Promise<void> {
  await parked(storage, "e1");
  const [snapshot] = await storage.loadMany!(["e1"]);
  const revision = snapshot!.execution.revision;
  const results = await storage.commit([
    {
      executionId: "e1",
      owner: OWNER,
      claim: { revision },
      execution: { status: "running", wakeAt: null },
      steps: [stepRecord("e1", "wait", { status: "completed", output: { ok: true } })],
      events: [eventRecord("e1", 2, { type: "action:completed", action: "wait" })],
      consumeSignals: [{ seq: snapshot!.signals[0]!.seq, action: "wait" }],
    },
    // A later transition of the same batch passes the ordinary ownership check.
    { executionId: "e1", owner: OWNER, execution: { status: "completed", release: true } },
  ]);
  assert.deepEqual(results, ["ok", "ok"]);
  const after = await mustLoad(storage, "e1");
  assert.equal(after.execution.status, "completed");
  assert.equal(after.execution.owner, null);
  assert.equal(after.execution.revision, revision + 2);
  assert.deepEqual(after.signals, []);
  assert.equal(after.steps.find((s) => s.action === "wait")!.status, "completed");
}

async function claimingTransitionReleases(storage: Storage): Promise<void> {
  await parked(storage, "e2");
  const revision = (await storage.getExecution("e2"))!.revision;
  assert.deepEqual(
    await storage.commit([
      { executionId: "e2", owner: OTHER, claim: { revision }, execution: { wakeAt: 5, release: true } },
    ]),
    ["ok"],
  );
  const record = (await storage.getExecution("e2"))!;
  assert.equal(record.owner, null);
  assert.equal(record.wakeAt, 5);
  assert.equal(record.revision, revision + 1);
}

async function claimingTransitionLoses(storage: Storage): Promise<void> {
  await parked(storage, "e3");
  const [loaded] = await storage.loadMany!(["e3"]);
  // Someone else claims it between our read and our commit.
  assert.notEqual(await storage.claim({ executionId: "e3", owner: OTHER }), undefined);
  const before = await storage.load("e3");
  assert.deepEqual(
    await storage.commit([
      {
        executionId: "e3",
        owner: OWNER,
        claim: { revision: loaded!.execution.revision },
        execution: { status: "running" },
        steps: [stepRecord("e3", "wait", { status: "completed" })],
        events: [eventRecord("e3", 2)],
        consumeSignals: [{ seq: loaded!.signals[0]!.seq, action: "wait" }],
      },
      // ... and what we queued after it fails the ownership check.
      { executionId: "e3", owner: OWNER, execution: { status: "completed", release: true } },
    ]),
    ["not_owner", "not_owner"],
  );
  assert.deepEqual(await storage.load("e3"), before);
  assert.equal((await storage.getExecution("e3"))!.owner, OTHER);
  // Two claimers of the same revision: exactly one wins.
  const revision = before!.execution.revision;
  const both = await storage.commit([
    { executionId: "e3", owner: OWNER, claim: { revision } },
    { executionId: "e3", owner: OTHER, claim: { revision } },
  ]);
  assert.deepEqual(both, ["ok", "not_owner"]);
  assert.equal((await storage.getExecution("e3"))!.owner, OWNER);
  assert.deepEqual(await storage.commit([{ executionId: "missing", owner: OWNER, claim: { revision: 0 } }]), [
    "not_owner",
  ]);
}

async function peaksPerJob(storage: Storage): Promise<void> {
  const peaks = peaksOf(storage);
  const MiB = 1_048_576;
  assert.deepEqual(peaks.recentPeaks("release", "build", 10), [], "no peaks before any is recorded");
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
}

// ---------------------------------------------------------------------------------------------------
// Crash test

const CRASH_RUNS = 5;

async function openShared(crash: CrashChildOptions): Promise<Storage> {
  const loaded = (await import(toImportSpecifier(crash.module))) as Record<string, unknown>;
  const factory = loaded[crash.exportName];
  if (typeof factory !== "function") throw new Error(`${crash.module} does not export ${crash.exportName}`);
  const storage = (await factory(crash.arg)) as Storage;
  await storage.init();
  return storage;
}

async function crashTest(crash: CrashChildOptions): Promise<void> {
  const saga = `crash-${randomUUID().slice(0, 8)}`;
  const payload: CrashChildPayload = { ...crash, saga };
  let committed = 0;
  for (let run = 0; run < CRASH_RUNS; run++) {
    await runAndKill(payload, 20 + Math.floor(Math.random() * 300));
    const storage = await openShared(crash);
    try {
      const total = await verifyCrashState(storage, saga);
      assert.ok(total > committed, `run ${run}: the child committed something before it was killed`);
      committed = total;
    } finally {
      await storage.close();
    }
  }
}

/** Starts the child, waits until it has committed once, lets it run `delayMs` more, then SIGKILLs it. */
async function runAndKill(payload: CrashChildPayload, delayMs: number): Promise<void> {
  const child = spawn(
    process.execPath,
    [...childLoaderArgs(payload.module), childScript(), JSON.stringify(payload)],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  try {
    const ready = await new Promise<boolean>((resolve) => {
      let out = "";
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
        if (out.includes("ready")) resolve(true);
      });
      void exited.then(() => resolve(false));
      setTimeout(() => resolve(false), 20_000).unref();
    });
    if (!ready) throw new Error(`crash child never became ready:\n${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
    if (child.exitCode !== null)
      throw new Error(`crash child exited by itself (${child.exitCode}):\n${stderr}`);
    child.kill("SIGKILL");
    const { signal } = await exited;
    assert.equal(signal, "SIGKILL", `crash child should die by SIGKILL:\n${stderr}`);
  } finally {
    killIfAlive(child);
  }
}

function killIfAlive(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
}

function childScript(): string {
  // Next to this module: crash-child.ts under tsx/vitest, crash-child.js once compiled.
  const self = fileURLToPath(import.meta.url);
  return fileURLToPath(
    new URL(self.endsWith(".ts") ? "./crash-child.ts" : "./crash-child.js", import.meta.url),
  );
}

/** `--import <tsx>` when TypeScript must be loaded, resolved from here so the cwd does not matter. */
function childLoaderArgs(module: string): string[] {
  const needsTsx = /\.[cm]?tsx?$/.test(childScript()) || /\.[cm]?tsx?$/.test(module);
  if (!needsTsx) return [];
  const tsx = createRequire(import.meta.url).resolve("tsx");
  return ["--import", pathToFileURL(tsx).href];
}
