/** What an action body sees: its execution, attempt, idempotency key, abort signal, log and progress. */
import type { Logger } from "pino";
import type { ActionContext } from "../definition/types.js";
import type { JsonObject } from "../json.js";
import { type StagedRef, stagedPath } from "../staging/staging.js";
import type { Execution } from "./execution.js";
import type { Phase } from "./execution-state.js";
import type { Abort } from "./guard.js";

/** What an action body sees; a class so that each attempt allocates one object, not a bag of closures. */
export class Context implements ActionContext {
  readonly #execution: Execution;
  readonly #abort: Abort;
  readonly action: string;
  readonly attempt: number;
  readonly phase: Phase;

  constructor(execution: Execution, action: string, phase: Phase, attempt: number, abort: Abort) {
    this.#execution = execution;
    this.#abort = abort;
    this.action = action;
    this.phase = phase;
    this.attempt = attempt;
  }

  get executionId(): string {
    return this.#execution.id;
  }
  get runName(): string | null {
    return this.#execution.record.runName;
  }
  get saga(): string {
    return this.#execution.saga.name;
  }
  get idempotencyKey(): string {
    const key = `${this.#execution.id}/${this.action}`;
    return this.phase === "undo" || this.phase === "cleanup" ? `${key}/${this.phase}` : key;
  }
  get signal(): AbortSignal {
    return this.#abort.signal;
  }
  get log(): Logger {
    return this.#execution.host.logger;
  }
  progress(message: string, data?: JsonObject): void {
    this.#execution.host.progress(this.#execution, this.action, message, data);
  }
  stagedPath(ref: StagedRef): string {
    return stagedPath(this.#execution.host.dataDir, ref);
  }
}
