/**
 * The runs an executor holds in memory, and what they get from it (`RunHost`): group
 * commits, events, action slots, and what happens when one leaves memory, ends or is lost. Also who
 * waits for a run's result. The executor builds on it: intake.ts, wakeups.ts, executor.ts.
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
import { EventBus, type RunEvent } from "./events.js";
import type { ExecutorSettings } from "./executor-options.js";
import { outcomeOf, type RunHandle, type RunOutcome } from "./handles.js";
import type { HostedRun } from "./hosted-run.js";
import { Ownership } from "./ownership.js";
import { SagaRegistry } from "./registry.js";
import type { RunHost } from "./run-host.js";
import type { RunState } from "./run-state.js";
import { ActionSlots } from "./slots.js";

export abstract class RunHosting implements RunHost {
  readonly owner: string;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly perRunConcurrency: number;
  readonly abortGraceMs: number;
  readonly evictAfterMs: number;
  readonly storage: Storage;
  readonly clock: Clock;

  protected readonly settings: ExecutorSettings;
  protected readonly registry: SagaRegistry;
  protected readonly runs = new Map<string, HostedRun>();
  /** Group commit of transitions: one transaction for all that are ready together. */
  protected readonly commits: Batcher<Transition, CommitResult>;
  protected readonly bus = new EventBus();
  protected readonly slots: ActionSlots;
  protected readonly ownership: Ownership;
  protected readonly waiters = new Map<string, ((result: RunOutcome) => void)[]>();
  /**
   * Runs whose commit storage threw (a full disk), to be continued from storage once writes
   * succeed again; with the transitions decided after the failed one, which must not be written.
   */
  protected readonly writeFailures = new Map<string, RunState>();
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
    this.perRunConcurrency = settings.perRunConcurrency;
    this.abortGraceMs = settings.abortGraceMs;
    this.evictAfterMs = settings.evictAfterMs;
    this.registry = new SagaRegistry(settings.accept);
    this.slots = new ActionSlots(settings.maxConcurrentActions, (run) => this.runs.get(run.id) === run);
    this.ownership = new Ownership({
      storage: settings.storage,
      owner: settings.owner,
      clock: settings.clock,
      logger: settings.logger,
      heartbeatIntervalMs: settings.heartbeatIntervalMs,
      leaseMs: settings.leaseMs,
      deadOwnersTtlMs: settings.pollIntervalMs,
      pidLiveness: settings.pidLiveness,
      maxRuns: settings.maxRuns,
    });
    this.commits = new Batcher((transitions) => this.#write(transitions));
    for (const saga of settings.sagas) {
      if (!this.registry.register(saga))
        throw new SlipwayError("definition", `saga ${saga.name} v${saga.version} is registered twice`);
    }
    for (const saga of settings.sagas) this.registry.registerChildren(saga);
  }

  /** Claims a run and continues it here; false if someone else has it or it is not ours. */
  protected abstract claim(runId: string, reason: string, takeOverFrom?: readonly string[]): Promise<boolean>;

  /** Makes sure this executor looks for due wake-ups at `at`. */
  protected abstract scheduleWake(at: number): void;

  abstract startChild(...args: Parameters<RunHost["startChild"]>): void;
  abstract stopChild(...args: Parameters<RunHost["stopChild"]>): void;

  // ---- RunHost ------------------------------------------------------------------------

  commit(transition: Transition, done: BatchCallback<CommitResult>): void {
    this.commits.enqueue(transition, done);
  }

  listening(runId: string): boolean {
    return this.bus.wants(runId);
  }

  publish(events: RunEvent[]): void {
    if (events.length === 0 || !this.bus.wants(events[0]!.runId)) return;
    for (const event of events) this.bus.emit(event);
  }

  progress(run: RunState, action: string, message: string, data: JsonObject | undefined): void {
    if (!this.bus.wants(run.id)) return;
    this.bus.emit({
      type: "action:progress",
      runId: run.id,
      saga: run.saga.name,
      runName: run.record.runName,
      action,
      at: this.clock.now(),
      data: data === undefined ? { message } : { message, ...data },
    });
  }

  acquireSlot(run: RunState): boolean {
    return this.slots.acquire(run);
  }

  releaseSlot(): void {
    this.slots.release();
  }

  evicted(run: RunState, wakeAt: number | null): void {
    this.forget(run);
    if (run.wakeAfterRelease) this.#claimAgain(run.id, "signal");
    if (wakeAt !== null) this.scheduleWake(wakeAt);
  }

  ended(run: RunState): void {
    this.forget(run);
    if (run.wakeAfterRelease) this.#claimAgain(run.id, "cancel");
    // Most runs stage nothing: skip the file system unless the staged folder exists at all.
    if (
      FINAL_STATUSES.includes(run.status) &&
      this.mayHaveStaged &&
      existsSync(join(this.dataDir, "staged", run.id))
    ) {
      removeStaged(this.dataDir, run.id).catch((error: unknown) =>
        this.logger.warn({ err: error, runId: run.id }, "could not remove staged data"),
      );
    }
    this.resolveWaiters(run.id);
  }

  claimLost(run: RunState): void {
    this.forget(run);
  }

  writeFailed(run: RunState, error: unknown, unwritten: Transition[], stored: boolean): void {
    this.forget(run);
    for (const transition of unwritten) this.#unwritable.add(transition);
    if (this.closed) return;
    if (stored) this.writeFailures.set(run.id, run);
    this.logger.error(
      { err: error, runId: run.id },
      stored
        ? "could not write the run's progress; it continues from what is stored once writes succeed"
        : "could not create the run",
    );
  }

  detached(run: RunState, reason: unknown): void {
    this.forget(run);
    if (!this.closed) this.logger.error({ err: reason, runId: run.id }, "run detached; it will be recovered");
  }

  // ---- results ------------------------------------------------------------------------------

  handle<V = Record<string, unknown>>(id: string): RunHandle<V> {
    return { id, result: () => this.result(id) as Promise<RunOutcome<V>> };
  }

  /**
   * Resolves when the run ends or needs attention. The waiter is in place before storage is read: a
   * run that ends while the read is on its way is told to it, not missed (it would then wait for a
   * poll to notice).
   */
  result(runId: string): Promise<RunOutcome> {
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(runId) ?? [];
      list.push(resolve);
      this.waiters.set(runId, list);
      const giveUp = (error: unknown) => {
        const left = (this.waiters.get(runId) ?? []).filter((waiter) => waiter !== resolve);
        if (left.length > 0) this.waiters.set(runId, left);
        else this.waiters.delete(runId);
        reject(error);
      };
      this.storage.getRun(runId).then((record) => {
        if (!record) giveUp(new NotFoundError(`no run ${runId}`));
        else if (STOPPED_STATUSES.includes(record.status) && !this.runs.has(runId))
          this.resolveWaiters(runId);
      }, giveUp);
    });
  }

  protected resolveWaiters(runId: string): void {
    const waiters = this.waiters.get(runId);
    if (!waiters) return;
    this.waiters.delete(runId);
    this.resultOf(runId).then(
      (result) => {
        for (const resolve of waiters) resolve(result);
      },
      (error: unknown) => {
        // Storage unreachable: waiting again, the poll looks again once it reads the run.
        this.logger.error({ err: error, runId }, "could not read the result of a run");
        this.waiters.set(runId, [...(this.waiters.get(runId) ?? []), ...waiters]);
      },
    );
  }

  /** Claims a run again that was told something while it left; a failed claim leaves it to the poll. */
  #claimAgain(runId: string, reason: string): void {
    this.claim(runId, reason).catch((error: unknown) =>
      this.logger.error({ err: error, runId }, "could not claim a run again"),
    );
  }

  protected async resultOf(runId: string): Promise<RunOutcome> {
    const snapshot = await this.storage.load(runId);
    if (!snapshot) throw new NotFoundError(`no run ${runId}`);
    return outcomeOf(snapshot);
  }

  // ---- internals ----------------------------------------------------------------------------

  /** A group commit, without the transitions of runs whose earlier commit failed. */
  async #write(transitions: Transition[]): Promise<CommitResult[]> {
    if (this.#unwritable.size === 0) return this.storage.commit(transitions);
    const kept = transitions.filter((t) => !this.#unwritable.delete(t));
    const results = kept.length > 0 ? await this.storage.commit(kept) : [];
    let next = 0;
    return transitions.map((t) => (kept[next] === t ? results[next++]! : "not_owner"));
  }

  protected forget(run: RunState): void {
    if (this.runs.get(run.id) === run) this.runs.delete(run.id);
    this.slots.forget(run);
  }

  protected assertOpen(): void {
    if (this.closed) throw new SlipwayError("conflict", "executor is closed");
  }
}
