/**
 * Errors that action code throws outside its promise (from a timer, an event handler, a callback)
 * are charged to that action's attempt, never to the process: one task's bug stays its own.
 *
 * Node reports such an error as an uncaught exception, in the async context where it was thrown, so
 * the action it came from is the one whose `ActionScope` is current then. While an executor is open,
 * Node's uncaught-exception capture callback is set. An error from action code fails that attempt
 * (retried or undone as usual). Any other error is the application's own, and fails as if Slipway
 * were not there: the application's `uncaughtException` listeners get it if it has any; otherwise it
 * is thrown again with nothing capturing it, so Node prints it and exits with code 1.
 */
import type { Logger } from "pino";
import { currentLogContext, type LogContext } from "../logging.js";
import type { Abort } from "./guard.js";
import type { Phase } from "./run-state.js";

/**
 * What is current while an action body runs: the fields every log line carries (own, enumerable
 * properties, spread by the logger) and, private, the attempt an uncaught error is charged to.
 */
export class ActionScope implements LogContext {
  readonly runId: string;
  readonly runName?: string;
  readonly saga: string;
  readonly action: string;
  readonly attempt: number;
  readonly phase: Phase;
  readonly #abort: Abort;
  readonly #log: Logger;

  constructor(
    fields: {
      runId: string;
      runName: string | null;
      saga: string;
      action: string;
      attempt: number;
      phase: Phase;
    },
    abort: Abort,
    log: Logger,
  ) {
    this.runId = fields.runId;
    if (fields.runName !== null) this.runName = fields.runName;
    this.saga = fields.saga;
    this.action = fields.action;
    this.attempt = fields.attempt;
    this.phase = fields.phase;
    this.#abort = abort;
    this.#log = log;
  }

  /** Fails the attempt with `error` (unless it has settled already: then the error is only logged). */
  fault(error: unknown): void {
    const where = { err: error, runId: this.runId, action: this.action, attempt: this.attempt };
    if (this.#abort.fault(error))
      this.#log.error(where, `action ${this.action} threw outside its promise: its attempt fails`);
    else this.#log.warn(where, `action ${this.action} threw after its attempt had settled: ignored`);
  }
}

/** Executors open in this process that catch faults: the capture callback is set while there is one. */
let users = 0;

function onUncaught(error: unknown): void {
  const scope = currentLogContext();
  if (scope instanceof ActionScope) {
    scope.fault(error);
    return;
  }
  // The application's own error. Its listeners decide, as they would have...
  if (process.listenerCount("uncaughtException") > 0) {
    (process.emit as (event: string, ...args: unknown[]) => boolean)(
      "uncaughtException",
      error,
      "uncaughtException",
    );
    return;
  }
  // ...and without any, Node's default: thrown again with nothing capturing it, it is printed and
  // the process exits with code 1.
  process.setUncaughtExceptionCaptureCallback(null);
  users = 0;
  process.nextTick(() => {
    throw error;
  });
}

/**
 * Catches action code's uncaught errors until the returned function is called (once per executor).
 * Node's capture callback, unlike an `uncaughtException` listener, keeps the error from the other
 * listeners (a test runner's among them) when it is charged to an action. The callback is Node's one
 * slot: when something else holds it (the `domain` module), faults are not caught, and `false` says so.
 */
export function catchActionFaults(): { stop: () => void; catching: boolean } {
  if (users === 0) {
    if (process.hasUncaughtExceptionCaptureCallback()) return { stop: () => {}, catching: false };
    process.setUncaughtExceptionCaptureCallback(onUncaught);
  }
  users++;
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    if (users > 0 && --users === 0) process.setUncaughtExceptionCaptureCallback(null);
  };
  return { stop, catching: true };
}
