/** In-memory storage backend for tests and demos; every record is serialized like a real backend would. */

import { type ErrorInfo, NotFoundError, SlipwayError } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import { parseNullable, toJsonText, toNullableJsonText } from "./json-text.js";
import type { LockStore } from "./locks.js";
import { MemoryLockStore } from "./memory-locks.js";
import { MemoryTriggerStore } from "./memory-triggers.js";
import type { TriggerStore } from "./triggers.js";
import type {
  AuditQuery,
  AuditRecord,
  ClaimRequest,
  CommitResult,
  EventRecord,
  ExecutorRecord,
  NewAuditRecord,
  NewSignal,
  RunPatch,
  RunQuery,
  RunRecord,
  RunSnapshot,
  SignalRecord,
  SignalWithRun,
  StepRecord,
  Storage,
  Transition,
  UndoCause,
} from "./types.js";
import { FINAL_STATUSES, UNFINISHED_STATUSES } from "./types.js";

/*
 * Records are kept as JSON text of "rows" laid out like the SQLite columns: JSON-valued fields are
 * themselves JSON text inside the row, optional fields are normalized to null. Writing stringifies,
 * reading parses, so callers never share objects with the store and anything a serializing backend
 * would lose or reject (undefined, BigInt, class instances, extra fields) behaves the same here.
 */

type RunRow = Omit<RunRecord, "input" | "cause" | "error"> & {
  input: string;
  cause: string | null;
  error: string | null;
};
type StepRow = Omit<StepRecord, "output" | "error" | "state" | "undoError"> & {
  output: string | null;
  error: string | null;
  state: string | null;
  undoError: string | null;
};
type EventRow = Omit<EventRecord, "data"> & { data: string | null };
type SignalRow = Omit<SignalRecord, "payload"> & { payload: string };

/** Patch fields other than `release`, with whether their value is JSON (a TEXT column in SQLite). */
const PATCH_FIELDS = [
  ["status", false],
  ["wakeAt", false],
  ["cause", true],
  ["error", true],
  ["endedAt", false],
  ["cancelRequested", false],
] as const satisfies readonly (readonly [keyof RunPatch, boolean])[];

/** A transition with every value already serialized, so applying it cannot fail half-way on bad data. */
interface EncodedTransition {
  runId: string;
  owner: string;
  /** `Transition.claim`: the revision the run must still be at. */
  claimRevision: number | null;
  create: string | null;
  patch: Partial<Record<(typeof PATCH_FIELDS)[number][0], unknown>>;
  release: boolean;
  steps: { action: string; row: string }[];
  events: { seq: number; row: string }[];
  consume: { seq: number; action: string }[];
  /** `Transition.notify`, payloads serialized. */
  notify: { runId: string; name: string; payload: string; createdAt: number }[];
}

type UndoLog = (() => void)[];

export class MemoryStorage implements Storage {
  private readonly runs = new Map<string, string>();
  /** Per run, by action; Map order = order of first write, as in SQLite (rowid). */
  private readonly steps = new Map<string, Map<string, string>>();
  private readonly events = new Map<string, Map<number, string>>();
  /** By seq; insertion order is seq order. */
  private readonly signals = new Map<number, string>();
  private signalSeq = 0;
  /** Seqs of each run's signals, so a snapshot does not scan every signal ever sent. */
  private readonly signalsOf = new Map<string, number[]>();
  private readonly executors = new Map<string, string>();
  /** Audit records as JSON text, in seq order (seq = index + 1). */
  private readonly audit: string[] = [];
  private closed = false;
  private triggerStore: MemoryTriggerStore | undefined;
  private lockStore: MemoryLockStore | undefined;

  /** Named locks (see {@link LockStore}), in this store's memory. */
  locks(): LockStore {
    this.lockStore ??= new MemoryLockStore((id) => {
      const run = this.runs.get(id);
      return run !== undefined && UNFINISHED_STATUSES.includes((JSON.parse(run) as RunRow).status);
    });
    return this.lockStore;
  }

  /** What triggers remember (see {@link TriggerStore}), in this store's memory. */
  triggers(): TriggerStore {
    this.triggerStore ??= new MemoryTriggerStore();
    return this.triggerStore;
  }

  async init(): Promise<void> {
    this.check();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  async commit(transitions: readonly Transition[]): Promise<CommitResult[]> {
    this.check();
    // Serialize everything before the first write: a value JSON cannot hold fails the batch up front.
    const now = Date.now();
    const batch = transitions.map(encodeTransition);
    // One batch is one transaction: if applying throws, the undo log restores every earlier write.
    const undo: UndoLog = [];
    try {
      return batch.map((t) => this.apply(t, now, undo));
    } catch (error) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      throw error;
    }
  }

  async claim(request: ClaimRequest): Promise<RunSnapshot | undefined> {
    return (await this.claimMany([request]))[0];
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<(RunSnapshot | undefined)[]> {
    this.check();
    return requests.map((request) => this.claimOne(request));
  }

  private claimOne(request: ClaimRequest): RunSnapshot | undefined {
    const row = this.row(request.runId);
    if (!row) return undefined;
    const free =
      row.owner === null || row.owner === request.owner || (request.takeOverFrom ?? []).includes(row.owner);
    if (!free) return undefined;
    row.owner = request.owner;
    row.revision += 1;
    row.updatedAt = Date.now();
    this.runs.set(row.id, JSON.stringify(row));
    return this.snapshot(request.runId);
  }

  async load(runId: string): Promise<RunSnapshot | undefined> {
    this.check();
    return this.snapshot(runId);
  }

  async loadMany(runIds: readonly string[]): Promise<(RunSnapshot | undefined)[]> {
    this.check();
    return runIds.map((id) => this.snapshot(id));
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    this.check();
    const row = this.row(runId);
    return row && toRun(row);
  }

  async deleteRun(runId: string): Promise<boolean> {
    this.check();
    const row = this.row(runId);
    if (!row || !FINAL_STATUSES.includes(row.status)) return false;
    this.runs.delete(runId);
    this.steps.delete(runId);
    this.events.delete(runId);
    for (const seq of this.signalsOf.get(runId) ?? []) this.signals.delete(seq);
    this.signalsOf.delete(runId);
    return true;
  }

  async getRuns(runIds: readonly string[]): Promise<(RunRecord | undefined)[]> {
    this.check();
    return runIds.map((id) => {
      const row = this.row(id);
      return row && toRun(row);
    });
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    this.check();
    const pending = new Set<string>();
    if (query.withPendingSignals !== undefined) {
      for (const text of this.signals.values()) {
        const signal = JSON.parse(text) as SignalRow;
        if (signal.consumedBy === null) pending.add(signal.runId);
      }
    }
    const needle = query.text?.toLowerCase();
    const rows: RunRow[] = [];
    for (const text of this.runs.values()) {
      const row = JSON.parse(text) as RunRow;
      if (query.sagas !== undefined && !query.sagas.includes(row.saga)) continue;
      if (query.statuses !== undefined && !query.statuses.includes(row.status)) continue;
      if (query.owner !== undefined && row.owner !== query.owner) continue;
      if (query.wakeAtOrBefore !== undefined && (row.wakeAt === null || row.wakeAt > query.wakeAtOrBefore)) {
        continue;
      }
      if (query.cancelRequested !== undefined && (row.cancelRequested !== null) !== query.cancelRequested) {
        continue;
      }
      if (query.withPendingSignals !== undefined && pending.has(row.id) !== query.withPendingSignals)
        continue;
      if (query.parent !== undefined && row.parent?.runId !== query.parent) continue;
      if (needle && ![row.id, row.runName ?? "", row.saga].some((f) => f.toLowerCase().includes(needle)))
        continue;
      const before = query.before;
      if (
        before !== undefined &&
        !(
          row.createdAt < before.createdAt ||
          (row.createdAt === before.createdAt && compareBinary(row.id, before.id) < 0)
        )
      )
        continue;
      rows.push(row);
    }
    rows.sort((a, b) => a.createdAt - b.createdAt || compareBinary(a.id, b.id));
    if (query.newestFirst) rows.reverse();
    const limited = query.limit === undefined ? rows : rows.slice(0, Math.max(0, query.limit));
    return limited.map(toRun);
  }

  async nextWakeAt(sagas: readonly string[]): Promise<number | undefined> {
    this.check();
    let earliest: number | undefined;
    for (const text of this.runs.values()) {
      const row = JSON.parse(text) as RunRow;
      if (row.status !== "waiting" || row.owner !== null || row.wakeAt === null) continue;
      if (!sagas.includes(row.saga)) continue;
      if (earliest === undefined || row.wakeAt < earliest) earliest = row.wakeAt;
    }
    return earliest;
  }

  async history(runId: string, afterSeq?: number): Promise<EventRecord[]> {
    this.check();
    const events: EventRecord[] = [];
    for (const [seq, text] of this.events.get(runId) ?? []) {
      if (afterSeq === undefined || seq > afterSeq) events.push(toEvent(JSON.parse(text) as EventRow));
    }
    return events.sort((a, b) => a.seq - b.seq);
  }

  async addSignal(signal: NewSignal): Promise<SignalRecord> {
    return (await this.addSignals([signal]))[0]!;
  }

  async addSignals(signals: readonly NewSignal[]): Promise<SignalRecord[]> {
    this.check();
    const payloads = signals.map((signal) => toJsonText(signal.payload, "signal payload"));
    const missing = signals.find((signal) => !this.runs.has(signal.runId));
    if (missing) throw new NotFoundError(`cannot signal run ${missing.runId}: it does not exist`);
    return signals.map((signal, i) => {
      const row: SignalRow = {
        seq: ++this.signalSeq,
        runId: signal.runId,
        name: signal.name,
        payload: payloads[i]!,
        createdAt: signal.createdAt,
        consumedBy: null,
      };
      this.signals.set(row.seq, JSON.stringify(row));
      const seqs = this.signalsOf.get(row.runId);
      if (seqs) seqs.push(row.seq);
      else this.signalsOf.set(row.runId, [row.seq]);
      return toSignal(row);
    });
  }

  async signalsWithRunsAfter(afterSeq: number, limit?: number): Promise<SignalWithRun[]> {
    const signals = await this.signalsAfter(afterSeq, limit);
    const runs = await this.getRuns(signals.map((signal) => signal.runId));
    return signals.map((signal, i) => ({ signal, run: runs[i] }));
  }

  async signalsAfter(afterSeq: number, limit?: number): Promise<SignalRecord[]> {
    this.check();
    const max = limit === undefined ? Number.POSITIVE_INFINITY : Math.max(0, limit);
    const signals: SignalRecord[] = [];
    for (const [seq, text] of this.signals) {
      if (signals.length >= max) break;
      if (seq > afterSeq) signals.push(toSignal(JSON.parse(text) as SignalRow));
    }
    return signals;
  }

  async lastSignalSeq(): Promise<number> {
    this.check();
    return this.signalSeq;
  }

  async requestCancel(runId: string, reason: string): Promise<RunRecord | undefined> {
    this.check();
    const row = this.row(runId);
    if (!row) return undefined;
    row.cancelRequested = reason;
    row.updatedAt = Date.now();
    this.runs.set(row.id, JSON.stringify(row));
    return toRun(row);
  }

  async upsertExecutor(executor: ExecutorRecord): Promise<void> {
    this.check();
    const row: ExecutorRecord = {
      id: executor.id,
      host: executor.host,
      pid: executor.pid,
      startedAt: executor.startedAt,
      heartbeatAt: executor.heartbeatAt,
      maxRuns: executor.maxRuns,
    };
    this.executors.set(row.id, JSON.stringify(row));
  }

  async listExecutors(): Promise<ExecutorRecord[]> {
    this.check();
    return [...this.executors.values()]
      .map((text) => JSON.parse(text) as ExecutorRecord)
      .sort((a, b) => compareBinary(a.id, b.id));
  }

  async removeExecutor(id: string): Promise<void> {
    this.check();
    this.executors.delete(id);
  }

  async addAudit(records: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
    this.check();
    // Serialized first: a record JSON cannot hold fails the batch before anything is kept.
    const texts = records.map((record, i) =>
      toJsonText(
        {
          seq: this.audit.length + 1 + i,
          at: record.at,
          actor: record.actor,
          method: record.method,
          route: record.route,
          path: record.path,
          runId: record.runId,
          status: record.status,
          key: record.key,
          replay: record.replay,
        } satisfies AuditRecord,
        "audit record",
      ),
    );
    this.audit.push(...texts);
    return texts.map((text) => JSON.parse(text) as AuditRecord);
  }

  async listAudit(query: AuditQuery): Promise<AuditRecord[]> {
    this.check();
    const records: AuditRecord[] = [];
    const from = Math.min(this.audit.length, (query.beforeSeq ?? Number.POSITIVE_INFINITY) - 1);
    for (let i = from - 1; i >= 0 && records.length < query.limit; i--) {
      const record = JSON.parse(this.audit[i]!) as AuditRecord;
      if (query.key === undefined || record.key === query.key) records.push(record);
    }
    return records;
  }

  private check(): void {
    if (this.closed) throw new SlipwayError("storage", "MemoryStorage is closed");
  }

  private row(runId: string): RunRow | undefined {
    const text = this.runs.get(runId);
    return text === undefined ? undefined : (JSON.parse(text) as RunRow);
  }

  private snapshot(runId: string): RunSnapshot | undefined {
    const row = this.row(runId);
    if (!row) return undefined;
    const steps = [...(this.steps.get(runId)?.values() ?? [])].map((text) =>
      toStep(JSON.parse(text) as StepRow),
    );
    const signals: SignalRecord[] = [];
    for (const seq of this.signalsOf.get(runId) ?? []) {
      const signal = JSON.parse(this.signals.get(seq)!) as SignalRow;
      if (signal.consumedBy === null) signals.push(toSignal(signal));
    }
    let maxSeq = 0;
    for (const seq of this.events.get(runId)?.keys() ?? []) maxSeq = Math.max(maxSeq, seq);
    return { run: toRun(row), steps, signals, nextEventSeq: maxSeq + 1 };
  }

  /** Applies one encoded transition in the same order as the SQLite backend: ownership first. */
  private apply(t: EncodedTransition, now: number, undo: UndoLog): CommitResult {
    if (t.create !== null) {
      if (this.runs.has(t.runId)) return "exists";
      write(this.runs, t.runId, t.create, undo);
    } else {
      const row = this.row(t.runId);
      if (!row) return "not_owner";
      if (t.claimRevision !== null) {
        if (row.revision !== t.claimRevision) return "not_owner";
        row.owner = t.owner;
      } else if (row.owner !== t.owner) return "not_owner";
      row.revision += 1;
      row.updatedAt = now;
      Object.assign(row, t.patch);
      if (t.release) row.owner = null;
      write(this.runs, t.runId, JSON.stringify(row), undo);
    }
    if (t.steps.length > 0) {
      const steps = this.perRun(this.steps, t.runId, undo);
      for (const step of t.steps) write(steps, step.action, step.row, undo);
    }
    if (t.events.length > 0) {
      const events = this.perRun(this.events, t.runId, undo);
      for (const event of t.events) {
        // Same outcome as the primary key (run_id, seq) in SQLite: the batch fails.
        if (events.has(event.seq)) {
          throw new SlipwayError("conflict", `event ${event.seq} of run ${t.runId} already exists`);
        }
        write(events, event.seq, event.row, undo);
      }
    }
    for (const consumed of t.consume) {
      const text = this.signals.get(consumed.seq);
      if (text === undefined) continue;
      const signal = JSON.parse(text) as SignalRow;
      // Like the conditional UPDATE in SQLite: only a pending signal of this run is marked.
      if (signal.runId !== t.runId || signal.consumedBy !== null) continue;
      signal.consumedBy = consumed.action;
      write(this.signals, consumed.seq, JSON.stringify(signal), undo);
    }
    // Like the conditional INSERT in SQLite: a signal to a run that is gone is dropped.
    for (const signal of t.notify) if (this.runs.has(signal.runId)) this.insertSignal(signal, undo);
    return "ok";
  }

  /** Inserts a signal as part of a transition, recording how to take it back. */
  private insertSignal(signal: EncodedTransition["notify"][number], undo: UndoLog): void {
    const row: SignalRow = { seq: ++this.signalSeq, ...signal, consumedBy: null };
    write(this.signals, row.seq, JSON.stringify(row), undo);
    const seqs = this.signalsOf.get(row.runId) ?? [];
    if (!this.signalsOf.has(row.runId)) write(this.signalsOf, row.runId, seqs, undo);
    seqs.push(row.seq);
    undo.push(() => {
      seqs.pop();
      this.signalSeq--;
    });
  }

  private perRun<K>(map: Map<string, Map<K, string>>, runId: string, undo: UndoLog): Map<K, string> {
    let inner = map.get(runId);
    if (!inner) {
      inner = new Map();
      write(map, runId, inner, undo);
    }
    return inner;
  }
}

/** `map.set` that records how to take it back. */
function write<K, V>(map: Map<K, V>, key: K, value: V, undo: UndoLog): void {
  const had = map.has(key);
  const previous = map.get(key);
  map.set(key, value);
  undo.push(had ? () => map.set(key, previous as V) : () => map.delete(key));
}

function encodeTransition(t: Transition): EncodedTransition {
  const encoded: EncodedTransition = {
    runId: t.runId,
    owner: t.owner,
    claimRevision: t.claim?.revision ?? null,
    create: null,
    patch: {},
    release: t.run?.release === true,
    steps: [],
    events: [],
    consume: (t.consumeSignals ?? []).map((c) => ({ seq: c.seq, action: c.action })),
    notify: (t.notify ?? []).map((n) => ({
      runId: n.runId,
      name: n.name,
      payload: toJsonText(n.payload, `payload of signal ${n.name} to ${n.runId}`),
      createdAt: n.createdAt,
    })),
  };
  for (const [field, isJson] of PATCH_FIELDS) {
    const value = t.run?.[field];
    if (value === undefined) continue;
    encoded.patch[field] = isJson ? toNullableJsonText(value, `${field} of ${t.runId}`) : value;
  }
  if (t.create) {
    const c = t.create;
    if (c.id !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} creates a different run ${c.id}`);
    }
    // The patch of a creating transition is folded into the inserted row.
    const row: RunRow = {
      id: c.id,
      saga: c.saga,
      version: c.version,
      status: c.status,
      input: toJsonText(c.input, `input of ${c.id}`),
      runName: c.runName ?? null,
      owner: t.owner,
      revision: c.revision,
      wakeAt: c.wakeAt ?? null,
      cancelRequested: c.cancelRequested ?? null,
      cause: toNullableJsonText(c.cause, `cause of ${c.id}`),
      error: toNullableJsonText(c.error, `error of ${c.id}`),
      createdAt: c.createdAt,
      updatedAt: c.updatedAt,
      endedAt: c.endedAt ?? null,
      parent: c.parent ? { runId: c.parent.runId, step: c.parent.step } : null,
    };
    Object.assign(row, encoded.patch);
    if (encoded.release) row.owner = null;
    encoded.create = JSON.stringify(row);
  }
  for (const step of t.steps ?? []) {
    if (step.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries a step of ${step.runId}`);
    }
    const where = `step ${step.action} of ${step.runId}`;
    const row: StepRow = {
      runId: step.runId,
      action: step.action,
      status: step.status,
      attempt: step.attempt,
      failures: step.failures,
      output: toNullableJsonText(step.output, `output of ${where}`),
      error: toNullableJsonText(step.error, `error of ${where}`),
      state: toNullableJsonText(step.state, `state of ${where}`),
      undoAttempt: step.undoAttempt,
      undoError: toNullableJsonText(step.undoError, `undoError of ${where}`),
      startedAt: step.startedAt ?? null,
      endedAt: step.endedAt ?? null,
      updatedAt: step.updatedAt,
    };
    encoded.steps.push({ action: step.action, row: JSON.stringify(row) });
  }
  for (const event of t.events ?? []) {
    if (event.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries an event of ${event.runId}`);
    }
    const row: EventRow = {
      runId: event.runId,
      seq: event.seq,
      type: event.type,
      action: event.action ?? null,
      at: event.at,
      data: toNullableJsonText(event.data, `data of event ${event.seq} of ${event.runId}`),
    };
    encoded.events.push({ seq: event.seq, row: JSON.stringify(row) });
  }
  return encoded;
}

/** Orders strings by their UTF-8 bytes, as SQLite's BINARY collation does (UTF-16 order differs). */
function compareBinary(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function toRun(row: RunRow): RunRecord {
  return {
    ...row,
    input: JSON.parse(row.input) as JsonObject,
    cause: parseNullable<UndoCause>(row.cause),
    error: parseNullable<ErrorInfo>(row.error),
  };
}

function toStep(row: StepRow): StepRecord {
  return {
    ...row,
    output: parseNullable<JsonObject>(row.output),
    error: parseNullable<ErrorInfo>(row.error),
    state: parseNullable<JsonObject>(row.state),
    undoError: parseNullable<ErrorInfo>(row.undoError),
  };
}

function toEvent(row: EventRow): EventRecord {
  return { ...row, data: parseNullable<JsonObject>(row.data) };
}

function toSignal(row: SignalRow): SignalRecord {
  return { ...row, payload: JSON.parse(row.payload) as Json };
}
