/** What callers of the executor get back: handles, results and snapshots of executions. */
import type { ExecutionRecord, ExecutionStatus, StepRecord } from "../storage/types.js";

export interface StartOptions {
  /** Execution id; default a new time-ordered id. Use `newExecutionId()` to stage streams before starting. */
  id?: string;
  /** Human-readable name carried by every log line, e.g. `{ticket}-{branch}-{attempt}`. */
  runName?: string;
}

export interface ExecutionResult<Values = Record<string, unknown>> {
  id: string;
  status: ExecutionStatus;
  /** Every value produced (and the input), for completed executions. */
  output: Partial<Values>;
  cause: ExecutionRecord["cause"];
  error: ExecutionRecord["error"];
}

export interface ExecutionInfo {
  execution: ExecutionRecord;
  steps: StepRecord[];
}

export interface ExecutionHandle<Values = Record<string, unknown>> {
  readonly id: string;
  /** Resolves when the execution ends or needs attention, wherever it runs. */
  result(): Promise<ExecutionResult<Values>>;
}
