/** What an execution needs from the executor that hosts it. */
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { JsonObject } from "../json.js";
import type { CommitResult, Transition } from "../storage/types.js";
import type { BatchCallback } from "./batcher.js";
import type { ExecutionEvent } from "./events.js";
import type { ExecutionState } from "./execution-state.js";

/** The executor, as the executions it hosts see it. */
export interface ExecutionHost {
  readonly owner: string;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly perExecutionConcurrency: number;
  readonly abortGraceMs: number;
  readonly evictAfterMs: number;
  /** Where the time and timers come from. */
  readonly clock: Clock;
  /** Group-commits a transition; `done` is called once its batch is written (or failed). */
  commit(transition: Transition, done: BatchCallback<CommitResult>): void;
  /** Whether anyone listens to this execution's events (saves building them when nobody does). */
  listening(executionId: string): boolean;
  publish(events: ExecutionEvent[]): void;
  progress(execution: ExecutionState, action: string, message: string, data: JsonObject | undefined): void;
  /** Takes one of the executor's action slots; on false, the host calls `advance()` when one frees. */
  acquireSlot(execution: ExecutionState): boolean;
  releaseSlot(): void;
  /** The execution was released to wait unowned (committed). */
  evicted(execution: ExecutionState, wakeAt: number | null): void;
  /** The execution reached an end (or needs attention) and was released (committed). */
  ended(execution: ExecutionState): void;
  /** The execution can no longer be driven from here (lost ownership). */
  detached(execution: ExecutionState, reason: unknown): void;
  /**
   * Storage threw on one of its commits (a full disk): the instance is dropped; `unwritten`, its
   * transitions decided after that one and still queued, must not be written. `stored`: it exists in
   * storage and is continued from there once writes succeed (false: its creation failed).
   */
  writeFailed(execution: ExecutionState, error: unknown, unwritten: Transition[], stored: boolean): void;
  /**
   * Its optimistic claim lost (someone changed it since it was loaded), or its creation was refused
   * (the id exists): nothing was written or run.
   */
  claimLost(execution: ExecutionState): void;
}
