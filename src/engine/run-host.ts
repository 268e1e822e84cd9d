/** What a run needs from the executor that hosts it. */
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import type { JsonObject } from "../json.js";
import type { CommitResult, ParentLink, Transition } from "../storage/types.js";
import type { BatchCallback } from "./batcher.js";
import type { RunEvent } from "./events.js";
import type { RunState } from "./run-state.js";

/** The executor, as the runs it hosts see it. */
export interface RunHost {
  readonly owner: string;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly perRunConcurrency: number;
  readonly abortGraceMs: number;
  readonly evictAfterMs: number;
  /** Where the time and timers come from. */
  readonly clock: Clock;
  /** Group-commits a transition; `done` is called once its batch is written (or failed). */
  commit(transition: Transition, done: BatchCallback<CommitResult>): void;
  /** Whether anyone listens to this run's events (saves building them when nobody does). */
  listening(runId: string): boolean;
  publish(events: RunEvent[]): void;
  progress(run: RunState, action: string, message: string, data: JsonObject | undefined): void;
  /** Takes one of the executor's action slots; on false, the host calls `advance()` when one frees. */
  acquireSlot(run: RunState): boolean;
  releaseSlot(): void;
  /** The run was released to wait unowned (committed). */
  evicted(run: RunState, wakeAt: number | null): void;
  /** The run reached an end (or needs attention) and was released (committed). */
  ended(run: RunState): void;
  /** The run can no longer be driven from here (lost ownership). */
  detached(run: RunState, reason: unknown): void;
  /**
   * Storage threw on one of its commits (a full disk): the instance is dropped; `unwritten`, its
   * transitions decided after that one and still queued, must not be written. `stored`: it exists in
   * storage and is continued from there once writes succeed (false: its creation failed).
   */
  writeFailed(run: RunState, error: unknown, unwritten: Transition[], stored: boolean): void;
  /**
   * Its optimistic claim lost (someone changed it since it was loaded), or its creation was refused
   * (the id exists): nothing was written or run.
   */
  claimLost(run: RunState): void;
  /**
   * Starts the child run `childId` of `parent`'s step `step` (or finds it started, with the same saga
   * and input); `done` hears the error when it could not be started.
   */
  startChild(
    parent: RunState,
    step: string,
    childId: string,
    saga: { readonly name: string; readonly version: number },
    input: JsonObject,
    done: (error?: unknown) => void,
  ): void;
  /**
   * Asks a child run to stop (`cancel`), or to undo what it completed (`undo`: a completed child run
   * is reopened to undo it, one that needs attention resumed); `done` hears whether the run exists.
   * Its end reaches the parent as a signal.
   */
  stopChild(
    childId: string,
    how: "cancel" | "undo",
    parent: ParentLink,
    reason: string,
    done: (found: boolean) => void,
  ): void;
}
