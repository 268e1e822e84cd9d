/** Backend-agnostic record factories: complete, valid storage records with overridable fields. */
import type { EventRecord, ExecutorRecord, RunRecord, StepRecord, Transition } from "../storage/types.js";

/** A fixed, plausible epoch-ms base so tests do not depend on the clock. */
export const BASE_TIME = 1_700_000_000_000;

export function runRecord(id: string, overrides: Partial<RunRecord> = {}): RunRecord {
  return {
    id,
    saga: "deploy",
    version: 1,
    status: "running",
    input: { ticket: "OPS-1", branch: "main" },
    runName: null,
    owner: null,
    revision: 0,
    wakeAt: null,
    cancelRequested: null,
    cause: null,
    error: null,
    createdAt: BASE_TIME,
    updatedAt: BASE_TIME,
    endedAt: null,
    parent: null,
    ...overrides,
  };
}

export function stepRecord(runId: string, action: string, overrides: Partial<StepRecord> = {}): StepRecord {
  return {
    runId,
    action,
    status: "running",
    attempt: 1,
    failures: 0,
    output: null,
    error: null,
    state: null,
    undoAttempt: 0,
    undoError: null,
    startedAt: BASE_TIME,
    endedAt: null,
    updatedAt: BASE_TIME,
    ...overrides,
  };
}

export function eventRecord(runId: string, seq: number, overrides: Partial<EventRecord> = {}): EventRecord {
  return {
    runId,
    seq,
    type: "step_started",
    action: null,
    at: BASE_TIME + seq,
    data: null,
    ...overrides,
  };
}

export function executorRecord(id: string, overrides: Partial<ExecutorRecord> = {}): ExecutorRecord {
  return {
    id,
    host: "build-01",
    pid: 4242,
    startedAt: BASE_TIME,
    heartbeatAt: BASE_TIME,
    maxRuns: null,
    ...overrides,
  };
}

/** A transition creating `run`, owned by `owner`, plus whatever else `extra` carries. */
export function createTransition(
  run: RunRecord,
  owner: string,
  extra: Omit<Transition, "runId" | "owner" | "create"> = {},
): Transition {
  return { runId: run.id, owner, create: run, ...extra };
}
