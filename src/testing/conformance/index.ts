/** Storage conformance suite: the behaviour every `Storage` backend must share, for any test framework. */
import type { Storage } from "../../storage/types.js";
import {
  auditLog,
  claimingTransitionLoses,
  claimingTransitionReleases,
  claimingTransitionTakesOwnership,
  getRunsLikeGetRun,
  loadManyLikeLoad,
  peaksPerJob,
  signalsWithRunsLikeSignalsAfter,
} from "./capability-cases.js";
import { notifyIsAtomic, notifyOtherRuns, parentLink } from "./child-cases.js";
import { crashTest } from "./crash-test.js";
import { duplicateEventFailsBatch, historyOrder, unserializableFailsBatch } from "./history-cases.js";
import { deleteEnded, listFilters, listOrderAndLimit, listText, nextWakeAt } from "./listing-cases.js";
import {
  lockConcurrentTakes,
  lockDeadOwnersFreed,
  lockSlotsBelowCapacity,
  runSlotsConcurrentTakes,
  runSlotsWhileActive,
} from "./lock-cases.js";
import type { StorageConformanceOptions } from "./options.js";
import {
  claimMany,
  claimRules,
  concurrentClaims,
  executorCapacity,
  executors,
  mixedBatch,
  nonOwnerWritesNothing,
} from "./ownership-cases.js";
import {
  createStoresEverything,
  duplicateCreate,
  initIsIdempotent,
  largeValues,
  latestStateWins,
  noSharedObjects,
  patchChangesOnlyGivenFields,
  releaseEndsOwnership,
  requestCancel,
  unicodeValues,
  unknownRuns,
} from "./run-cases.js";
import { addSignalsBatch, signalConsumption, signalOrder, signalUnknownRun } from "./signal-cases.js";
import { triggerLeaseHasOneHolder, triggerStateIsDurableAndOnce } from "./trigger-cases.js";

export type {
  CrashChildOptions,
  DescribeLike,
  ItLike,
  StorageConformanceOptions,
  TestBody,
} from "./options.js";

export const CRASH_TEST_NAME = "a process killed between writes leaves each transition all there or absent";

/** Optional parts of a backend: `loadMany` (with `Transition.claim`), `getRuns`, `peaks()`, `addAudit`, `triggers()`, `locks()`. */
type Capability =
  | "loadMany"
  | "getRuns"
  | "signalsWithRunsAfter"
  | "peaks"
  | "addAudit"
  | "triggers"
  | "locks";
/** The skip reason of a case whose capability the backend does not have. */
export const CAPABILITY_NOT_IMPLEMENTED = "optional capability not implemented";

type Case = [name: string, body: (storage: Storage) => Promise<void>, needs?: Capability];

export function runStorageConformance(options: StorageConformanceOptions): void {
  const cases: Case[] = [
    ["init is idempotent and keeps data", initIsIdempotent],
    ["create stores the run, its steps and its events, owned by the committer", createStoresEverything],
    ["create of an id already taken returns exists and writes nothing", duplicateCreate],
    ["a patch changes only the fields it carries", patchChangesOnlyGivenFields],
    ["release sets the owner to null and ends ownership", releaseEndsOwnership],
    ["a record updated many times reads back its latest state", latestStateWins],
    ["a commit by a non-owner returns not_owner and writes nothing", nonOwnerWritesNothing],
    ["a batch mixing owned and not-owned transitions commits exactly the owned ones", mixedBatch],
    ["claim takes unowned, own and taken-over runs, never someone else's", claimRules],
    ["concurrent claimers: exactly one wins", concurrentClaims],
    ["claimMany answers each request as claim would, in order", claimMany],
    ["listRuns filters by saga, status, owner, wake time, cancel and signals", listFilters],
    ["deleteRun removes an ended run with what it owns, and keeps live ones", deleteEnded],
    ["listRuns orders by createdAt then id and honours limit", listOrderAndLimit],
    ["listRuns text: an id, name or saga containing it, in any case", listText],
    ["nextWakeAt is the earliest wake of unowned waiting runs of the sagas", nextWakeAt],
    ["large values round-trip exactly", largeValues],
    ["unicode and awkward JSON round-trip exactly", unicodeValues],
    ["signals get strictly increasing seqs and keep their order", signalOrder],
    ["a transition consumes signals: consumedBy set, gone from the snapshot", signalConsumption],
    ["addSignal for an unknown run is rejected", signalUnknownRun],
    ["addSignals writes a batch in order, or nothing when one run is unknown", addSignalsBatch],
    ["history is kept in seq order and can be read after a seq", historyOrder],
    ["appending an event seq that already exists fails the whole batch", duplicateEventFailsBatch],
    ["a value JSON cannot serialize fails the whole batch, nothing written", unserializableFailsBatch],
    ["requestCancel marks any run and later patches keep the mark", requestCancel],
    ["executors are upserted, listed by id and removed", executors],
    [
      "an executor's capacity (maxRuns, null for no limit) round-trips and follows its beats",
      executorCapacity,
    ],
    ["records handed in or out are not shared with the store", noSharedObjects],
    ["unknown runs read as absent", unknownRuns],
    ["a child run keeps its parent link, and listRuns finds the children of a run", parentLink],
    ["a transition's signals to other runs are written with it, or not at all", notifyOtherRuns],
    ["a batch that fails writes none of its transitions' signals to other runs", notifyIsAtomic],
    ["loadMany answers like load, in order, with a fresh object per answer", loadManyLikeLoad, "loadMany"],
    ["getRuns answers like getRun, in order", getRunsLikeGetRun, "getRuns"],
    [
      "signalsWithRunsAfter answers like signalsAfter, each signal with its run as getRun reads it",
      signalsWithRunsLikeSignalsAfter,
      "signalsWithRunsAfter",
    ],
    [
      "a claiming transition commits at the loaded revision and takes ownership",
      claimingTransitionTakesOwnership,
      "loadMany",
    ],
    ["a claiming transition that releases leaves the run unowned", claimingTransitionReleases, "loadMany"],
    [
      "a claiming transition whose revision moved writes nothing, whoever moved it",
      claimingTransitionLoses,
      "loadMany",
    ],
    ["peaks are kept per job, the newest 100, read newest first", peaksPerJob, "peaks"],
    [
      "audit records get increasing seqs and are listed newest first, by page and by key",
      auditLog,
      "addAudit",
    ],
    [
      "trigger state: an event key, a delivery and a schedule's minute are each acted on once",
      triggerStateIsDurableAndOnce,
      "triggers",
    ],
    [
      "a trigger lease has one holder: renewed by it, taken over once it expires, released by it",
      triggerLeaseHasOneHolder,
      "triggers",
    ],
    [
      "locks: slots below capacity, lowest first, all of a request's locks or none, reusable once released",
      lockSlotsBelowCapacity,
      "locks",
    ],
    ["locks: concurrent takes of a 1-slot lock, exactly one wins", lockConcurrentTakes, "locks"],
    ["locks: a dead owner's slots and waiting rows are freed", lockDeadOwnersFreed, "locks"],
    [
      "run slots: held while the run is active, taken over once it is not, by limit",
      runSlotsWhileActive,
      "locks",
    ],
    ["run slots: concurrent takes of a 2-slot key, exactly two win", runSlotsConcurrentTakes, "locks"],
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
  const all: Capability[] = [
    "loadMany",
    "getRuns",
    "signalsWithRunsAfter",
    "peaks",
    "addAudit",
    "triggers",
    "locks",
  ];
  const capabilities = new Set(all.filter((capability) => hasCapability(made, capability)));
  return { capabilities, closed: made.close() };
}

/** Marks the running test skipped when the framework's context can (vitest's throws to stop it). */
function skipRunning(context: unknown, reason: string): void {
  const skip = (context as { skip?: unknown } | undefined)?.skip;
  if (typeof skip === "function") skip.call(context, reason);
}
