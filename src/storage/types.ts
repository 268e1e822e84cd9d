/**
 * The storage contract. A backend persists runs, their steps, their event history and their
 * signals; the engine owns every decision, so a backend only reads and writes what it is told.
 * Each `Transition` is atomic; `commit` takes several so one transaction (one fsync) can carry
 * every transition that became ready at the same moment (group commit).
 */

import type { ErrorInfo } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import type { LockStore } from "./locks.js";
import type { TriggerStore } from "./triggers.js";

/** Lifecycle of a run; see docs/state-machine.md. */
export type RunStatus =
  | "running"
  | "waiting"
  | "completed"
  | "compensating"
  | "compensated"
  | "needs_attention"
  | "failed"
  | "cancelled";

/**
 * Statuses the engine continues by itself on recovery. `needs_attention` waits for an explicit resume,
 * `failed` (held: a saga with onFailure "hold") for an explicit retry or cancel.
 */
export const ACTIVE_STATUSES: readonly RunStatus[] = ["running", "waiting", "compensating"];
/** Statuses a run never leaves. */
export const FINAL_STATUSES: readonly RunStatus[] = ["completed", "compensated", "cancelled"];
/** Statuses of a run that has not ended: active, or held after a failure, or needing attention. */
export const UNFINISHED_STATUSES: readonly RunStatus[] = [...ACTIVE_STATUSES, "failed", "needs_attention"];
/** Statuses a run stays in until someone acts, or forever: ended, held after a failure, or needing attention. */
export const STOPPED_STATUSES: readonly RunStatus[] = [...FINAL_STATUSES, "needs_attention", "failed"];

/** Lifecycle of one action inside a run; see docs/state-machine.md. */
export type StepStatus =
  | "running" // an attempt is in flight (or was, when the process died)
  | "retrying" // an attempt failed; the next one starts at `retryAt`
  | "waiting" // a durable wait (signal, sleep, poll) is armed
  | "completed"
  | "failed" // failed for good: its retries are spent or the run is being cancelled
  | "undoing"
  | "undone"
  | "undo_failed";

/** Why a run is undoing what completed (status `compensating`), and so how it will end. */
export type UndoCause =
  | { kind: "failure"; action: string; error: ErrorInfo }
  | { kind: "cancel"; reason: string }
  /** A completed child run undone because its parent run undoes the step that started it. */
  | { kind: "parent"; runId: string; step: string };

/** The run and step that started a child run. */
export interface ParentLink {
  runId: string;
  step: string;
}

export interface RunRecord {
  id: string;
  saga: string;
  version: number;
  status: RunStatus;
  input: JsonObject;
  /** Human-readable name given at start, e.g. `{ticket}-{branch}-{attempt}`. */
  runName: string | null;
  /** Executor currently running it; null while it waits unowned or after it ended. */
  owner: string | null;
  /** Bumped by every committed transition. */
  revision: number;
  /** When a waiting run must be woken (timeouts, sleeps, polls, retries), epoch ms. */
  wakeAt: number | null;
  /** Set by `requestCancel`; the owner acts on it. */
  cancelRequested: string | null;
  cause: UndoCause | null;
  /** Why it needs attention. */
  error: ErrorInfo | null;
  createdAt: number;
  updatedAt: number;
  endedAt: number | null;
  /** Set for a child run: the run and step that started it (see docs/sagas.md, child runs). */
  parent: ParentLink | null;
}

export interface StepRecord {
  runId: string;
  action: string;
  status: StepStatus;
  /** Attempts started so far (1-based once started). */
  attempt: number;
  /** Attempts that failed; retries are counted against this. */
  failures: number;
  output: JsonObject | null;
  error: ErrorInfo | null;
  /** Durable wait/poll/retry state owned by the engine (deadlines, next check). */
  state: JsonObject | null;
  undoAttempt: number;
  undoError: ErrorInfo | null;
  startedAt: number | null;
  endedAt: number | null;
  updatedAt: number;
}

/** One line of a run's persisted history. `seq` is assigned by the engine, per run. */
export interface EventRecord {
  runId: string;
  seq: number;
  type: string;
  action: string | null;
  at: number;
  data: JsonObject | null;
}

export interface SignalRecord {
  /** Global, strictly increasing, assigned by the storage. */
  seq: number;
  runId: string;
  name: string;
  payload: Json;
  createdAt: number;
  /** Action that consumed it, once consumed. */
  consumedBy: string | null;
}

export type NewSignal = Omit<SignalRecord, "seq" | "consumedBy">;

/** One mutating request to a server's API, as its audit log keeps it. */
export interface AuditRecord {
  /** Global, strictly increasing, assigned by the storage. */
  seq: number;
  /** When it was answered, epoch ms. */
  at: number;
  /** Who: the name of the token it carried. */
  actor: string;
  method: string;
  /** The route it matched, e.g. `/runs/:id/cancel`; the path itself when it matched none. */
  route: string;
  /** The path asked for, under the API prefix. */
  path: string;
  /** The run it named, if any. */
  runId: string | null;
  /** The HTTP status it was answered with. */
  status: number;
  /** Its `Idempotency-Key` header, if any. */
  key: string | null;
  /** What a repeat with the same key is answered with (the request's fingerprint and answer), if kept. */
  replay: JsonObject | null;
}

export type NewAuditRecord = Omit<AuditRecord, "seq">;

export interface AuditQuery {
  /** Only records with seq below this (the previous page's last seq). */
  beforeSeq?: number;
  /** Only records carrying this idempotency key. */
  key?: string;
  /** At most this many. */
  limit: number;
}

export interface ExecutorRecord {
  id: string;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  /** How many runs it holds at most (its `max_runs:`); null when it has no limit. */
  maxRuns: number | null;
}

/** Changes to the run row carried by a transition. Omitted fields are left as they are. */
export type RunPatch = Partial<
  Pick<RunRecord, "status" | "wakeAt" | "cause" | "error" | "endedAt" | "cancelRequested">
> & {
  /** Give up ownership (the run waits unowned, or ended). */
  release?: boolean;
};

/**
 * An atomic unit of change to one run: all of it commits or none of it does.
 * It commits only while `owner` owns the run (or, with `create`, when the id is new).
 */
export interface Transition {
  runId: string;
  owner: string;
  /** Insert a new run (owned by `owner`). */
  create?: RunRecord;
  run?: RunPatch;
  /** Step rows, each upserted whole (keyed by runId + action). */
  steps?: StepRecord[];
  /** Appended to the history. */
  events?: EventRecord[];
  /** Signals consumed by this transition, marked with the consuming action. */
  consumeSignals?: { seq: number; action: string }[];
  /**
   * Signals to other runs, persisted with this transition and only if it commits (a child run's end
   * tells its parent). Their runs must exist; they are not checked otherwise.
   */
  notify?: NewSignal[];
  /**
   * Takes ownership as part of this transition (an optimistic claim, for backends with `loadMany`):
   * instead of the ownership check, the transition commits only while the run is still at
   * `revision` (the one its snapshot was loaded at), and `owner` becomes its owner (unless the patch
   * releases it). The caller checks that the loaded owner was claimable; as every ownership change
   * bumps the revision, an unchanged revision means nobody took it since.
   */
  claim?: { revision: number };
}

/**
 * `ok`: committed. `not_owner`: the run is owned by someone else (or does not exist), nothing
 * was written. `exists`: `create` for an id already taken, nothing was written.
 */
export type CommitResult = "ok" | "not_owner" | "exists";

/** A signal with its run as read with it (undefined when the run is gone). */
export interface SignalWithRun {
  signal: SignalRecord;
  run: RunRecord | undefined;
}

export interface RunSnapshot {
  run: RunRecord;
  steps: StepRecord[];
  /** Signals not yet consumed, oldest first. */
  signals: SignalRecord[];
  /** Next free history seq (max seq + 1). */
  nextEventSeq: number;
}

export interface RunQuery {
  sagas?: readonly string[];
  statuses?: readonly RunStatus[];
  /** Only runs with `owner` equal to this; `null` for unowned ones. */
  owner?: string | null;
  /** Only runs whose `wakeAt` is at or before this. */
  wakeAtOrBefore?: number;
  /** Only runs with a cancel request pending. */
  cancelRequested?: boolean;
  /** Only runs that have at least one unconsumed signal. */
  withPendingSignals?: boolean;
  /** Oldest first by createdAt then id (newest first with `newestFirst`); at most this many. */
  limit?: number;
  /** Newest first: createdAt, then id, descending (a page of the latest runs without reading all). */
  newestFirst?: boolean;
  /** Only runs created before this one: earlier, or at the same time with a smaller id. */
  before?: { createdAt: number; id: string };
  /** Only the child runs of this run. */
  parent?: string;
  /**
   * Only runs whose id, name or saga contains this text, in any case (both lowered as
   * `String.prototype.toLowerCase` does). Empty: no filter.
   */
  text?: string;
}

export interface ClaimRequest {
  runId: string;
  owner: string;
  /** Executors the caller has established are dead; their runs may be taken over. */
  takeOverFrom?: readonly string[];
}

export interface Storage {
  /** Create tables / apply migrations. Idempotent. */
  init(): Promise<void>;
  close(): Promise<void>;

  /** Commit each transition atomically, all of them in as few transactions as the backend can. */
  commit(transitions: readonly Transition[]): Promise<CommitResult[]>;

  /**
   * Take ownership if the run is unowned, already ours, or owned by one of `takeOverFrom`;
   * returns its snapshot, or undefined when someone else owns it or it does not exist.
   * Bumps `revision` and `updatedAt`.
   */
  claim(request: ClaimRequest): Promise<RunSnapshot | undefined>;
  /** `claim` for many runs in one transaction; one result per request, in order. */
  claimMany(requests: readonly ClaimRequest[]): Promise<(RunSnapshot | undefined)[]>;
  load(runId: string): Promise<RunSnapshot | undefined>;
  /**
   * Optional: `load` for many runs in one read, one result per id, in order. A backend that
   * implements it must honour `Transition.claim` in `commit`; the engine then claims runs it
   * wakes by loading them and folding the claim into their first transition (one write, not two).
   */
  loadMany?(runIds: readonly string[]): Promise<(RunSnapshot | undefined)[]>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  /** Optional: `getRun` for many ids in one read, one result per id, in order. */
  getRuns?(runIds: readonly string[]): Promise<(RunRecord | undefined)[]>;
  listRuns(query: RunQuery): Promise<RunRecord[]>;
  /**
   * Removes an ended run (completed, compensated, cancelled) with its steps, events and
   * signals, in one transaction. False when there is none, or it has not ended: a live one is kept.
   */
  deleteRun(runId: string): Promise<boolean>;
  /** Earliest `wakeAt` among unowned runs of these sagas in these statuses. */
  nextWakeAt(sagas: readonly string[]): Promise<number | undefined>;
  /** History in seq order, optionally only after a seq. */
  history(runId: string, afterSeq?: number): Promise<EventRecord[]>;

  /** Persist a signal (kept even when nobody waits for it yet). */
  addSignal(signal: NewSignal): Promise<SignalRecord>;
  /**
   * `addSignal` for many signals in one transaction, seqs in the given order. All or nothing: throws
   * NotFoundError, writing none, when one names a run that does not exist.
   */
  addSignals(signals: readonly NewSignal[]): Promise<SignalRecord[]>;
  /** Signals with seq greater than `afterSeq`, oldest first (consumed ones included). */
  signalsAfter(afterSeq: number, limit?: number): Promise<SignalRecord[]>;
  /**
   * Optional: `signalsAfter` with each signal's run as it is now (undefined when it is gone), in one
   * read: what a poll needs to tell which signalled runs are its own to wake.
   */
  signalsWithRunsAfter?(afterSeq: number, limit?: number): Promise<SignalWithRun[]>;
  /** Highest signal seq ever assigned (0 when none). */
  lastSignalSeq(): Promise<number>;
  /** Mark a cancel request on the run, whoever owns it. Returns the updated record. */
  requestCancel(runId: string, reason: string): Promise<RunRecord | undefined>;

  /** Optional: what triggers remember (events, verdicts, deliveries, poll state, schedules fired). */
  triggers?(): TriggerStore;

  /** Optional: named locks held in the database, for every process sharing it (slots and waiters). */
  locks?(): LockStore;

  upsertExecutor(executor: ExecutorRecord): Promise<void>;
  listExecutors(): Promise<ExecutorRecord[]>;
  removeExecutor(id: string): Promise<void>;

  /**
   * Optional (a server needs it): appends records to the audit log of mutating API requests, in
   * order, in one transaction (a server group-commits them). Kept apart from runs: pruning a
   * run keeps the record of who acted on it.
   */
  addAudit?(records: readonly NewAuditRecord[]): Promise<AuditRecord[]>;
  /** Optional, with `addAudit`: audit records, newest first (highest seq first). */
  listAudit?(query: AuditQuery): Promise<AuditRecord[]>;

  /**
   * Optional: calls `listener` soon after another process wrote something an executor polls for
   * (a signal, a cancel request), so it looks at once instead of at its next poll. Returns what
   * stops the calls. Polling stays the fallback: a missed call only delays.
   */
  onChange?(listener: () => void): () => void;

  /**
   * Optional (a database server has it): whether the last statement reached the database, as
   * statements find out, without a round trip of its own.
   */
  health?(): StorageHealth;
}

/** Runs by id, one result per id in order: in one read where the storage has `getRuns`. */
export function getRunsOf(storage: Storage, runIds: readonly string[]): Promise<(RunRecord | undefined)[]> {
  return storage.getRuns ? storage.getRuns(runIds) : Promise.all(runIds.map((id) => storage.getRun(id)));
}

/** Whether storage could be reached lately (see `Storage.health`). */
export interface StorageHealth {
  /** False from a statement that failed for want of the database until one succeeds again. */
  reachable: boolean;
  /** Why not, while unreachable: the failure as the API reports it. */
  reason?: string;
  /** While unreachable, since when; once reachable again after that, since when it is back (epoch ms). */
  since?: number;
}

/**
 * Measured peak memory of pipeline jobs, per pipeline and job: an optional capability of a backend
 * (SQLite has it), for `memory: auto`. Synchronous: admission asks while it decides.
 */
export interface PeakStore {
  recordPeak(pipeline: string, job: string, peakBytes: number, at: number): void;
  /** The most recent peaks, newest first. */
  recentPeaks(pipeline: string, job: string, limit: number): number[];
  /** Every pipeline and job with a peak kept, by pipeline then job: what the dashboard compares. */
  measuredJobs(): { pipeline: string; job: string }[];
}
