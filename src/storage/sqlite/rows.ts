/**
 * Between records and SQLite rows: a transition encoded into bind-ready arguments (everything
 * serialized before the first write), and rows (named or raw, in column order) mapped back to records.
 */
import { type ErrorInfo, SlipwayError } from "../../errors.js";
import type { Json, JsonObject } from "../../json.js";
import { parseNullable, toJsonText, toNullableJsonText } from "../json-text.js";
import type {
  EventRecord,
  RunRecord,
  RunStatus,
  SignalRecord,
  StepRecord,
  StepStatus,
  Transition,
  UndoCause,
} from "../types.js";
import { CLAIM_BIT, PATCH_COLUMNS, RELEASE_BIT, type Statement } from "./statements.js";

export interface RunRow {
  id: string;
  saga: string;
  version: number;
  status: string;
  input: string;
  run_name: string | null;
  owner: string | null;
  revision: number;
  wake_at: number | null;
  cancel_requested: string | null;
  cause: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
  parent_run_id: string | null;
  parent_step: string | null;
}

export interface EventRow {
  run_id: string;
  seq: number;
  type: string;
  action: string | null;
  at: number;
  data: string | null;
}

export interface SignalRow {
  seq: number;
  run_id: string;
  name: string;
  payload: string;
  created_at: number;
  consumed_by: string | null;
}

export interface ExecutorRow {
  id: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
}

/** A transition with every value already bound-ready, so nothing can fail to serialize mid-write. */
export interface EncodedTransition {
  runId: string;
  /** Insert arguments when the transition creates the run. */
  insert: unknown[] | null;
  /** Conditional UPDATE (ownership check + patch) when it does not. */
  update: Statement | null;
  updateArgs: unknown[];
  steps: unknown[][];
  events: unknown[][];
  consume: unknown[][];
  /** Signals to other runs (`Transition.notify`): run id, name, payload text, created at, run id. */
  notify: unknown[][];
}

/** Encodes `t`; `updateStatement` gives the conditional UPDATE for a mask of patch fields. */
export function encodeTransition(
  t: Transition,
  now: number,
  updateStatement: (mask: number) => Statement,
): EncodedTransition {
  const encoded: EncodedTransition = {
    runId: t.runId,
    insert: null,
    update: null,
    updateArgs: [],
    steps: [],
    events: [],
    consume: [],
    notify: [],
  };
  const patch = t.run;
  if (t.create) {
    const c = t.create;
    if (c.id !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} creates a different run ${c.id}`);
    }
    // The patch of a creating transition is folded into the inserted row.
    const merged: RunRecord = { ...c, owner: t.owner };
    if (patch) {
      for (const [field] of PATCH_COLUMNS) {
        if (patch[field] !== undefined) (merged as unknown as Record<string, unknown>)[field] = patch[field];
      }
      if (patch.release) merged.owner = null;
    }
    encoded.insert = [
      merged.id,
      merged.saga,
      merged.version,
      merged.status,
      toJsonText(merged.input, `input of ${merged.id}`),
      merged.runName ?? null,
      merged.owner,
      merged.revision,
      merged.wakeAt ?? null,
      merged.cancelRequested ?? null,
      toNullableJsonText(merged.cause, `cause of ${merged.id}`),
      toNullableJsonText(merged.error, `error of ${merged.id}`),
      merged.createdAt,
      merged.updatedAt,
      merged.endedAt ?? null,
      merged.parent?.runId ?? null,
      merged.parent?.step ?? null,
    ];
  } else {
    let mask = 0;
    const args: unknown[] = [now];
    if (patch) {
      for (let bit = 0; bit < PATCH_COLUMNS.length; bit++) {
        const field = PATCH_COLUMNS[bit]![0];
        const value = patch[field];
        if (value === undefined) continue;
        mask |= 1 << bit;
        args.push(
          field === "cause" || field === "error"
            ? toNullableJsonText(value, `${field} of ${t.runId}`)
            : value,
        );
      }
      if (patch.release) mask |= RELEASE_BIT;
    }
    if (t.claim) {
      mask |= CLAIM_BIT;
      if (!(mask & RELEASE_BIT)) args.push(t.owner);
      args.push(t.runId, t.claim.revision);
    } else args.push(t.runId, t.owner);
    encoded.update = updateStatement(mask);
    encoded.updateArgs = args;
  }
  for (const step of t.steps ?? []) {
    if (step.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries a step of ${step.runId}`);
    }
    const where = `step ${step.action} of ${step.runId}`;
    encoded.steps.push([
      step.runId,
      step.action,
      step.status,
      step.attempt,
      step.failures,
      toNullableJsonText(step.output, `output of ${where}`),
      toNullableJsonText(step.error, `error of ${where}`),
      toNullableJsonText(step.state, `state of ${where}`),
      step.undoAttempt,
      toNullableJsonText(step.undoError, `undoError of ${where}`),
      step.startedAt ?? null,
      step.endedAt ?? null,
      step.updatedAt,
    ]);
  }
  for (const event of t.events ?? []) {
    if (event.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries an event of ${event.runId}`);
    }
    encoded.events.push([
      event.runId,
      event.seq,
      event.type,
      event.action ?? null,
      event.at,
      toNullableJsonText(event.data, `data of event ${event.seq} of ${event.runId}`),
    ]);
  }
  for (const consumed of t.consumeSignals ?? []) {
    encoded.consume.push([consumed.action, consumed.seq, t.runId]);
  }
  for (const signal of t.notify ?? []) {
    const payload = toJsonText(signal.payload, `payload of signal ${signal.name} to ${signal.runId}`);
    encoded.notify.push([signal.runId, signal.name, payload, signal.createdAt, signal.runId]);
  }
  return encoded;
}

/** A run from a raw row in RUN_COLUMNS order. */
export function runOf(r: unknown[]): RunRecord {
  return {
    id: r[0] as string,
    saga: r[1] as string,
    version: r[2] as number,
    status: r[3] as RunStatus,
    input: JSON.parse(r[4] as string) as JsonObject,
    runName: r[5] as string | null,
    owner: r[6] as string | null,
    revision: r[7] as number,
    wakeAt: r[8] as number | null,
    cancelRequested: r[9] as string | null,
    cause: parseNullable<UndoCause>(r[10] as string | null),
    error: parseNullable<ErrorInfo>(r[11] as string | null),
    createdAt: r[12] as number,
    updatedAt: r[13] as number,
    endedAt: r[14] as number | null,
    parent: r[15] === null ? null : { runId: r[15] as string, step: r[16] as string },
  };
}

/** A step from a raw row in STEP_COLUMNS order. */
export function stepOf(r: unknown[]): StepRecord {
  return {
    runId: r[0] as string,
    action: r[1] as string,
    status: r[2] as StepStatus,
    attempt: r[3] as number,
    failures: r[4] as number,
    output: parseNullable<JsonObject>(r[5] as string | null),
    error: parseNullable<ErrorInfo>(r[6] as string | null),
    state: parseNullable<JsonObject>(r[7] as string | null),
    undoAttempt: r[8] as number,
    undoError: parseNullable<ErrorInfo>(r[9] as string | null),
    startedAt: r[10] as number | null,
    endedAt: r[11] as number | null,
    updatedAt: r[12] as number,
  };
}

/** A signal from a raw row in SIGNAL_COLUMNS order. */
export function signalOf(r: unknown[]): SignalRecord {
  return {
    seq: r[0] as number,
    runId: r[1] as string,
    name: r[2] as string,
    payload: JSON.parse(r[3] as string) as Json,
    createdAt: r[4] as number,
    consumedBy: r[5] as string | null,
  };
}

export function toRun(row: RunRow): RunRecord {
  return {
    id: row.id,
    saga: row.saga,
    version: row.version,
    status: row.status as RunStatus,
    input: JSON.parse(row.input) as JsonObject,
    runName: row.run_name,
    owner: row.owner,
    revision: row.revision,
    wakeAt: row.wake_at,
    cancelRequested: row.cancel_requested,
    cause: parseNullable<UndoCause>(row.cause),
    error: parseNullable<ErrorInfo>(row.error),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
    parent: row.parent_run_id === null ? null : { runId: row.parent_run_id, step: row.parent_step ?? "" },
  };
}

export function toEvent(row: EventRow): EventRecord {
  return {
    runId: row.run_id,
    seq: row.seq,
    type: row.type,
    action: row.action,
    at: row.at,
    data: parseNullable<JsonObject>(row.data),
  };
}

export function toSignal(row: SignalRow): SignalRecord {
  return {
    seq: row.seq,
    runId: row.run_id,
    name: row.name,
    payload: JSON.parse(row.payload) as Json,
    createdAt: row.created_at,
    consumedBy: row.consumed_by,
  };
}
