/** What an action body sees: its run, attempt, idempotency key, abort signal, log and progress. */
import type { Logger } from "pino";
import type { ActionContext } from "../definition/types.js";
import type { JsonObject } from "../json.js";
import { type StagedRef, stagedPath } from "../staging/staging.js";
import type { Abort } from "./guard.js";
import type { HostedRun } from "./hosted-run.js";
import type { Phase } from "./run-state.js";

/** What an action body sees; a class so that each attempt allocates one object, not a bag of closures. */
export class Context implements ActionContext {
  readonly #run: HostedRun;
  readonly #abort: Abort;
  readonly action: string;
  readonly attempt: number;
  readonly phase: Phase;
  /** What `timing` recorded, for the event that ends the attempt; undefined (the usual case) when nothing. */
  timed: JsonObject | undefined;

  constructor(run: HostedRun, action: string, phase: Phase, attempt: number, abort: Abort) {
    this.#run = run;
    this.#abort = abort;
    this.action = action;
    this.phase = phase;
    this.attempt = attempt;
  }

  get runId(): string {
    return this.#run.id;
  }
  get executionId(): string {
    return this.#run.id;
  }
  get runName(): string | null {
    return this.#run.record.runName;
  }
  get saga(): string {
    return this.#run.saga.name;
  }
  get idempotencyKey(): string {
    const key = `${this.#run.id}/${this.action}`;
    return this.phase === "undo" || this.phase === "cleanup" ? `${key}/${this.phase}` : key;
  }
  get signal(): AbortSignal {
    return this.#abort.signal;
  }
  get log(): Logger {
    return this.#run.host.logger;
  }
  progress(message: string, data?: JsonObject): void {
    this.#run.host.progress(this.#run, this.action, message, data);
  }
  timing(facts: JsonObject): void {
    this.timed = this.timed === undefined ? { ...facts } : Object.assign(this.timed, facts);
  }
  stagedPath(ref: StagedRef): string {
    return stagedPath(this.#run.host.dataDir, ref);
  }
}
