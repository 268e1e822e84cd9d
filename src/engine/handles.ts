/** What callers of the executor get back: handles, results and snapshots of runs. */
import type { RunRecord, RunSnapshot, RunStatus, StepRecord } from "../storage/types.js";
import { parseStepName } from "./run-plan.js";

export interface StartOptions {
  /** Run id; default a new time-ordered id. Use `newRunId()` to stage streams before starting. */
  id?: string;
  /** Human-readable name carried by every log line, e.g. `{ticket}-{branch}-{attempt}`. */
  runName?: string;
}

export interface RunOutcome<Values = Record<string, unknown>> {
  id: string;
  status: RunStatus;
  /** Every value produced (and the input), for completed runs. */
  output: Partial<Values>;
  cause: RunRecord["cause"];
  error: RunRecord["error"];
}

export interface RunInfo {
  run: RunRecord;
  steps: StepRecord[];
}

export interface RunHandle<Values = Record<string, unknown>> {
  readonly id: string;
  /** Resolves when the run ends or needs attention, wherever it runs. */
  result(): Promise<RunOutcome<Values>>;
}

/**
 * A run's outcome as stored: for a completed run, its input and every value its steps produced (a
 * group's iterations and items are in the group's value, not among the run's).
 */
export function outcomeOf(snapshot: RunSnapshot): RunOutcome {
  const output: Record<string, unknown> = { ...snapshot.run.input };
  if (snapshot.run.status === "completed")
    for (const step of snapshot.steps) if (!parseStepName(step.action)) Object.assign(output, step.output);
  return {
    id: snapshot.run.id,
    status: snapshot.run.status,
    output,
    cause: snapshot.run.cause,
    error: snapshot.run.error,
  };
}
