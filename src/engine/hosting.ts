/**
 * The executions an executor holds in memory, and what they get from it (`ExecutionHost`): group
 * commits, events, action slots, and what happens when one leaves memory, ends or is lost. Also who
 * waits for an execution's result. The executor builds on it: intake.ts, wakeups.ts, executor.ts.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import type { Clock } from "../clock.js";
import { NotFoundError, SlipwayError } from "../errors.js";
import type { JsonObject } from "../json.js";
import { removeStaged } from "../staging/staging.js";
import {
  type CommitResult,
  FINAL_STATUSES,
  STOPPED_STATUSES,
  type Storage,
  type Transition,
} from "../storage/types.js";
import { type BatchCallback, Batcher } from "./batcher.js";
import { EventBus, type ExecutionEvent } from "./events.js";
import type { Execution } from "./execution.js";
import type { ExecutionHost } from "./execution-host.js";
import type { ExecutionState } from "./execution-state.js";
import type { ExecutorSettings } from "./executor-options.js";
import type { ExecutionHandle, ExecutionResult } from "./handles.js";
import { Ownership } from "./ownership.js";
import { SagaRegistry } from "./registry.js";
import { ActionSlots } from "./slots.js";

export abstract class ExecutionHosting implements ExecutionHost {
  readonly owner: string;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly perExecutionConcurrency: number;
  readonly abortGraceMs: number;
  readonly evictAfterMs: number;
  readonly storage: Storage;
  readonly clock: Clock;

  protected readonly settings: ExecutorSettings;
  protected readonly registry: SagaRegistry;
  protected readonly executions = new Map<string, Execution>();
  /** Group commit of transitions: one transaction for all that are ready together. */
  protected readonly commits: Batcher<Transition, CommitResult>;
  protected readonly bus = new EventBus();
  protected readonly slots: ActionSlots;
  protected readonly ownership: Ownership;
  protected readonly waiters = new Map<string, ((result: ExecutionResult) => void)[]>();
  /**
   * Executions whose commit storage threw (a full disk), to be continued from storage once writes
   * succeed again; with the transitions decided after the failed one, which must not be written.
   */
  protected readonly writeFailures = new Map<string, ExecutionState>();
  readonly #unwritable = new Set<Transition>();
  /** Whether anything was ever staged under the data directory (by any process); saves a stat per end. */
  protected mayHaveStaged = false;
  protected closed = false;

  protected constructor(settings: ExecutorSettings) {
    this.settings = settings;
    this.storage = settings.storage;
    this.clock = settings.clock;
    this.owner = settings.owner;
    this.logger = settings.logger;
    this.dataDir = settings.dataDir;
    this.perExecutionConcurrency = settings.perExecutionConcurrency;
    this.abortGraceMs = settings.abortGraceMs;
    this.evictAfterMs = settings.evictAfterMs;
    this.registry = new SagaRegistry(settings.accept);
    this.slots = new ActionSlots(
      settings.maxConcurrentActions,
      (execution) => this.executions.get(execution.id) === execution,
    );
    this.ownership = new Ownership({
      storage: settings.storage,
      owner: settings.owner,
      clock: settings.clock,
      logger: settings.logger,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      leaseMs: settings.leaseMs,
      deadOwnersTtlMs: settings.pollIntervalMs,
    });
    this.commits = new Batcher((transitions) => this.#write(transitions));
    for (const saga of settings.sagas) {
      if (!this.registry.register(saga))
        throw new SlipwayError("definition", `saga ${saga.name} v${saga.version} is registered twice`);
    }
  }

  /** Claims an execution and continues it here; false if someone else has it or it is not ours. */
  protected abstract claim(
    executionId: string,
    reason: string,
    takeOverFrom?: readonly string[],
  ): Promise<boolean>;

  /** Makes sure this executor looks for due wake-ups at `at`. */
  protected abstract scheduleWake(at: number): void;

  // ---- ExecutionHost ------------------------------------------------------------------------

  commit(transition: Transition, done: BatchCallback<CommitResult>): void {
    this.commits.enqueue(transition, done);
  }

  listening(executionId: string): boolean {
    return this.bus.wants(executionId);
  }

  publish(events: ExecutionEvent[]): void {
    if (events.length === 0 || !this.bus.wants(events[0]!.executionId)) return;
    for (const event of events) this.bus.emit(event);
  }

  progress(execution: ExecutionState, action: string, message: string, data: JsonObject | undefined): void {
    if (!this.bus.wants(execution.id)) return;
    this.bus.emit({
      type: "action:progress",
      executionId: execution.id,
      saga: execution.saga.name,
      runName: execution.record.runName,
      action,
      at: this.clock.now(),
      data: data === undefined ? { message } : { message, ...data },
    });
  }

  acquireSlot(execution: ExecutionState): boolean {
    return this.slots.acquire(execution);
  }

  releaseSlot(): void {
    this.slots.release();
  }

  evicted(execution: ExecutionState, wakeAt: number | null): void {
    this.forget(execution);
    if (execution.wakeAfterRelease) void this.claim(execution.id, "signal");
    if (wakeAt !== null) this.scheduleWake(wakeAt);
  }

  ended(execution: ExecutionState): void {
    this.forget(execution);
    if (execution.wakeAfterRelease) void this.claim(execution.id, "cancel");
    // Most executions stage nothing: skip the file system unless the staged folder exists at all.
    if (
      FINAL_STATUSES.includes(execution.status) &&
      this.mayHaveStaged &&
      existsSync(join(this.dataDir, "staged", execution.id))
    ) {
      removeStaged(this.dataDir, execution.id).catch((error: unknown) =>
        this.logger.warn({ err: error, executionId: execution.id }, "could not remove staged data"),
      );
    }
    this.resolveWaiters(execution.id);
  }

  claimLost(execution: ExecutionState): void {
    this.forget(execution);
  }

  writeFailed(execution: ExecutionState, error: unknown, unwritten: Transition[], stored: boolean): void {
    this.forget(execution);
    for (const transition of unwritten) this.#unwritable.add(transition);
    if (this.closed) return;
    if (stored) this.writeFailures.set(execution.id, execution);
    this.logger.error(
      { err: error, executionId: execution.id },
      stored
        ? "could not write the execution's progress; it continues from what is stored once writes succeed"
        : "could not create the execution",
    );
  }

  detached(execution: ExecutionState, reason: unknown): void {
    this.forget(execution);
    if (!this.closed)
      this.logger.error(
        { err: reason, executionId: execution.id },
        "execution detached; it will be recovered",
      );
  }

  // ---- results ------------------------------------------------------------------------------

  handle<V = Record<string, unknown>>(id: string): ExecutionHandle<V> {
    return { id, result: () => this.result(id) as Promise<ExecutionResult<V>> };
  }

  /** Resolves when the execution ends or needs attention. */
  async result(executionId: string): Promise<ExecutionResult> {
    const record = await this.storage.getExecution(executionId);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    if (STOPPED_STATUSES.includes(record.status) && !this.executions.has(executionId))
      return this.resultOf(executionId);
    return new Promise((resolve) => {
      const list = this.waiters.get(executionId) ?? [];
      list.push(resolve);
      this.waiters.set(executionId, list);
    });
  }

  protected resolveWaiters(executionId: string): void {
    const waiters = this.waiters.get(executionId);
    if (!waiters) return;
    this.waiters.delete(executionId);
    void this.resultOf(executionId).then((result) => {
      for (const resolve of waiters) resolve(result);
    });
  }

  protected async resultOf(executionId: string): Promise<ExecutionResult> {
    const snapshot = await this.storage.load(executionId);
    if (!snapshot) throw new NotFoundError(`no execution ${executionId}`);
    const output: Record<string, unknown> = { ...snapshot.execution.input };
    if (snapshot.execution.status === "completed")
      for (const step of snapshot.steps) Object.assign(output, step.output);
    return {
      id: executionId,
      status: snapshot.execution.status,
      output,
      cause: snapshot.execution.cause,
      error: snapshot.execution.error,
    };
  }

  // ---- internals ----------------------------------------------------------------------------

  /** A group commit, without the transitions of executions whose earlier commit failed. */
  async #write(transitions: Transition[]): Promise<CommitResult[]> {
    if (this.#unwritable.size === 0) return this.storage.commit(transitions);
    const kept = transitions.filter((t) => !this.#unwritable.delete(t));
    const results = kept.length > 0 ? await this.storage.commit(kept) : [];
    let next = 0;
    return transitions.map((t) => (kept[next] === t ? results[next++]! : "not_owner"));
  }

  protected forget(execution: ExecutionState): void {
    if (this.executions.get(execution.id) === execution) this.executions.delete(execution.id);
    this.slots.forget(execution);
  }

  protected assertOpen(): void {
    if (this.closed) throw new SlipwayError("conflict", "executor is closed");
  }
}
