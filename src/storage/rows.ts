/**
 * Rows of the SQL backends (SQLite, PostgreSQL) mapped back to records: their column lists, named
 * rows, and raw rows (arrays in column order, as the hot reads fetch them).
 */
import type { ErrorInfo } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import { parseNullable } from "./json-text.js";
import type {
  EventRecord,
  RunRecord,
  RunStatus,
  SignalRecord,
  SignalWithRun,
  StepRecord,
  StepStatus,
  UndoCause,
} from "./types.js";

export const RUN_COLUMNS =
  "id, saga, version, status, input, run_name, owner, revision, wake_at, cancel_requested, cause, error, created_at, updated_at, ended_at, parent_run_id, parent_step";
export const STEP_COLUMNS =
  "run_id, action, status, attempt, failures, output, error, state, undo_attempt, undo_error, started_at, ended_at, updated_at";

export const SIGNAL_COLUMNS = "seq, run_id, name, payload, created_at, consumed_by";

const qualified = (columns: string, table: string) =>
  columns
    .split(", ")
    .map((column) => `${table}.${column}`)
    .join(", ");

/** Signals joined with their runs (signals `s` LEFT JOIN runs `r`): SIGNAL_COLUMNS, then RUN_COLUMNS. */
export const SIGNAL_RUN_COLUMNS = `${qualified(SIGNAL_COLUMNS, "s")}, ${qualified(RUN_COLUMNS, "r")}`;

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
  max_runs: number | null;
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

/** A signal and its run from a raw row in SIGNAL_RUN_COLUMNS order. */
export function signalWithRunOf(r: unknown[]): SignalWithRun {
  const SIGNAL_WIDTH = 6;
  return {
    signal: signalOf(r),
    run: r[SIGNAL_WIDTH] === null ? undefined : runOf(r.slice(SIGNAL_WIDTH)),
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

/** A row of the audit table (both SQL backends). */
export interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  method: string;
  route: string;
  path: string;
  run_id: string | null;
  status: number;
  idempotency_key: string | null;
  replay: string | null;
}
