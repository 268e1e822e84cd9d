/**
 * The executor: hosts the runs of the sagas it registers, multiplexed in one process. It starts
 * them, wakes the waiting ones (timers, signals, cancel requests), recovers what a dead executor left,
 * and group-commits every transition. A waiting run costs it nothing: it lives only in storage.
 * Built in layers: what it hosts (hosting.ts), how runs come in (intake.ts), how it learns what
 * is due (wakeups.ts), and here its public API.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Saga } from "../definition/saga.js";
import { NotFoundError, SlipwayError, ValidationError } from "../errors.js";
import { assertJson, type Json, type JsonObject } from "../json.js";
import { schemaIssues } from "../problems.js";
import { type ByteSource, type StagedRef, stageStream, sweepStaged } from "../staging/staging.js";
import {
  type CommitResult,
  FINAL_STATUSES,
  type NewSignal,
  type ParentLink,
  type RunRecord,
  type SignalRecord,
  STOPPED_STATUSES,
} from "../storage/types.js";
import { Batcher } from "./batcher.js";
import { RunChildren } from "./child-runs.js";
import { ENDING_EVENTS, type EventListener, type RunEvent } from "./events.js";
import { type ExecutorOptions, resolveExecutorOptions } from "./executor-options.js";
import { catchActionFaults } from "./faults.js";
import type { RunHandle, RunInfo, StartOptions } from "./handles.js";
import { HostedRun } from "./hosted-run.js";
import { assertSameStart } from "./idempotency.js";
import { newId } from "./ids.js";
import { type AcceptedSignal, acceptSignals } from "./signals.js";

export type { ExecutorOptions } from "./executor-options.js";
export type { RunHandle, RunInfo, RunOutcome, StartOptions } from "./handles.js";

/** A start's input and options: the input may be left out when the saga takes none (or only optional values). */
export type StartArgs<I> =
  Record<never, never> extends I ? [input?: I, options?: StartOptions] : [input: I, options?: StartOptions];

export class Executor extends RunChildren {
  /** Runs started here whose creation is not committed yet, by id (a second start waits for it). */
  readonly #creating = new Map<string, { record: RunRecord; created: Promise<CommitResult> }>();
  /** Group commit of signals: checked and persisted in one batch for all sent together. */
  readonly #signals: Batcher<NewSignal, AcceptedSignal | Error>;
  /** Stops charging uncaught errors of action code to their actions (see faults.ts). */
  #stopCatchingFaults: (() => void) | undefined;

  private constructor(options: ExecutorOptions) {
    super(resolveExecutorOptions(options));
    this.#signals = new Batcher(async (signals) => {
      const outcomes = await acceptSignals(this.storage, this.registry, signals);
      // Marked before any caller resumes: a poll woken by this very write (NOTIFY) skips them
      // rather than reading back and delivering a batch that \`signal\` delivers itself.
      for (const outcome of outcomes) if (!(outcome instanceof Error)) this.sentHere.add(outcome.signal.seq);
      return outcomes;
    });
  }

  /**
   * Registers a saga after open (a server compiles a pipeline run's saga when the run is submitted).
   * False when that name and version is registered already. Register before starting, resuming or
   * recovering its runs.
   */
  register(saga: Saga<never, never> | Saga): boolean {
    const registered = this.registry.register(saga as Saga);
    if (registered) this.registry.registerChildren(saga as Saga);
    return registered;
  }

  /** Forgets a saga version registered here (its runs must not be running here any more). */
  unregister(saga: Saga<never, never> | Saga): void {
    this.registry.unregister(saga.name, saga.version);
  }

  /** Whether this saga version is registered here. */
  registered(name: string, version: number): boolean {
    return this.registry.get(name, version) !== undefined;
  }

  /** Opens an executor: registers it, sweeps orphaned staged data, recovers incomplete runs. */
  static async open(options: ExecutorOptions): Promise<Executor> {
    const executor = new Executor(options);
    await executor.#open();
    return executor;
  }

  async #open(): Promise<void> {
    const faults = catchActionFaults();
    this.#stopCatchingFaults = faults.stop;
    if (!faults.catching)
      this.logger.warn(
        "errors thrown outside an action's promise are not caught: this process set its own uncaught-exception capture callback",
      );
    try {
      await this.#openStorage();
    } catch (error) {
      this.#stopCatchingFaults();
      throw error;
    }
  }

  async #openStorage(): Promise<void> {
    await this.storage.init();
    await this.ownership.beat();
    this.signalCursor = await this.storage.lastSignalSeq();
    await sweepStaged(
      this.dataDir,
      async (id) => {
        const run = await this.storage.getRun(id);
        if (!run) return "unknown";
        return FINAL_STATUSES.includes(run.status) ? "ended" : "live";
      },
      this.settings.stagedGraceMs,
    );
    this.mayHaveStaged = existsSync(join(this.dataDir, "staged"));
    if (this.settings.recover) await this.recover();
    else this.lastRecovery = this.clock.now();
    this.ownership.start();
    this.startPolling();
  }

  get sagaNames(): string[] {
    return this.registry.names;
  }

  /** Runs currently held in memory (running or compensating here). */
  get activeRuns(): number {
    return this.runs.size;
  }

  /** Whether the run is held in memory here now. */
  holds(runId: string): boolean {
    return this.runs.has(runId);
  }

  /** How long a silent executor stays the owner of its runs (its lease), ms. */
  get leaseMs(): number {
    return this.settings.leaseMs;
  }

  /** How often this executor proves it is alive and looks for dead ones, ms. */
  get heartbeatIntervalMs(): number {
    return this.settings.heartbeatIntervalMs;
  }

  newRunId(): string {
    return newId(this.clock.now());
  }

  /** @deprecated The same as `newRunId` (its name in 0.1). */
  newExecutionId(): string {
    return this.newRunId();
  }

  /**
   * Starts a run. Resolves once it is durably created (its first actions may already run).
   * Starting again with an id that exists is idempotent: the same saga and input give a handle to the
   * existing run; anything else is refused with an `IdempotencyConflictError`.
   */
  async start<I, V>(saga: Saga<I, V>, ...[input, options = {}]: StartArgs<I>): Promise<RunHandle<V>> {
    this.#assertRegistered(saga as unknown as Saga);
    return (await this.createRun(saga as unknown as Saga, input, options, null)) as RunHandle<V>;
  }

  #assertRegistered(saga: Saga): void {
    this.assertOpen();
    if (this.registry.get(saga.name, saga.version) !== saga)
      throw new SlipwayError(
        "not_registered",
        `saga ${saga.name} v${saga.version} is not registered with this executor`,
      );
  }

  /**
   * Creates a run without taking it: it waits, owned by nobody and due at once, for whichever
   * executor with room claims it first (a cluster's worker that is full queues what it is given).
   * Resolves once it is durably created; the same idempotency as `start`.
   */
  async enqueue<I, V>(saga: Saga<I, V>, ...[input, options = {}]: StartArgs<I>): Promise<RunHandle<V>> {
    this.#assertRegistered(saga as unknown as Saga);
    const created = await this.#newRecord(saga as unknown as Saga, input, options, null);
    if (!isRecord(created)) return created as RunHandle<V>;
    const record: RunRecord = { ...created, status: "waiting", wakeAt: created.createdAt };
    const data = { version: saga.version, input: record.input };
    const events = [
      { runId: record.id, seq: 1, type: "run:started", action: null, at: record.createdAt, data },
      {
        runId: record.id,
        seq: 2,
        type: "run:waiting",
        action: null,
        at: record.createdAt,
        data: { wakeAt: record.createdAt, queued: true },
      },
    ] as const;
    const result = await this.commits.submit({
      runId: record.id,
      owner: this.owner,
      create: record,
      run: { release: true },
      events: events.map((e) => ({ ...e })),
    });
    if (result === "exists") {
      const existing = await this.#existing(record.id, saga as unknown as Saga, record.input);
      if (existing) return existing as RunHandle<V>;
    }
    if (result !== "ok")
      throw new SlipwayError("storage", `run ${record.id} could not be created (${result})`);
    this.publish(events.map((e) => ({ ...e, saga: record.saga, runName: record.runName })));
    // Any executor with room takes it, this one too: it is due now.
    this.scheduleWake(record.createdAt);
    return this.handle(record.id) as RunHandle<V>;
  }

  /**
   * A new run's record, owned by this executor, its input checked; or the handle of the run that
   * exists already under the caller's id (a retried submit).
   */
  async #newRecord(
    saga: Saga,
    input: unknown,
    options: StartOptions,
    parent: ParentLink | null,
  ): Promise<RunRecord | RunHandle> {
    this.assertOpen();
    const parsed = saga.inputSchema.safeParse(input ?? {});
    if (!parsed.success) {
      const detail = schemaIssues(parsed.error.issues, "(input)").join("; ");
      throw new ValidationError("invalid_input", `invalid input for saga ${saga.name}: ${detail}`);
    }
    assertJson(parsed.data, "input");
    const data = parsed.data as JsonObject;
    // A fresh id cannot exist; a caller's id may (a retried submit): look before creating.
    if (options.id !== undefined) {
      const existing = await this.#existing(options.id, saga, data);
      if (existing) return existing;
    }
    const now = this.clock.now();
    return {
      id: options.id ?? newId(now),
      saga: saga.name,
      version: saga.version,
      status: "running",
      input: data,
      runName: options.runName ?? null,
      owner: this.owner,
      revision: 0,
      wakeAt: null,
      cancelRequested: null,
      cause: null,
      error: null,
      createdAt: now,
      updatedAt: now,
      endedAt: null,
      parent,
    };
  }

  /** Starts a run of a registered saga, a child run when `parent` is given (see `start`). */
  protected async createRun(
    saga: Saga,
    input: unknown,
    options: StartOptions,
    parent: ParentLink | null,
  ): Promise<RunHandle> {
    const record = await this.#newRecord(saga, input, options, parent);
    if (!isRecord(record)) return record;
    const id = record.id;
    const run = new HostedRun(this, saga, {
      run: record,
      steps: [],
      signals: [],
      nextEventSeq: 1,
    });
    this.runs.set(id, run);
    const created = run.create();
    this.#creating.set(id, { record, created });
    let result: CommitResult;
    try {
      result = await created;
    } finally {
      this.#creating.delete(id);
    }
    if (result === "exists") {
      // Created meanwhile by another process: the refused creation ran and kept nothing.
      const existing = await this.#existing(id, saga, record.input);
      if (existing) return existing;
    }
    if (result !== "ok") throw new SlipwayError("storage", `run ${id} could not be created (${result})`);
    return this.handle(id);
  }

  /**
   * A handle to the run with this id when it exists (or is being created here) with this saga
   * and input; undefined when there is none; an `IdempotencyConflictError` when it differs.
   */
  async #existing(id: string, saga: Saga, input: JsonObject): Promise<RunHandle | undefined> {
    const stored = await this.storage.getRun(id);
    // Checked after the read: a start of the same id in this process may have begun meanwhile.
    const creating = this.#creating.get(id);
    const record = creating?.record ?? this.runs.get(id)?.record ?? stored;
    if (!record) return undefined;
    assertSameStart(record, saga, input);
    // Its creation is not committed yet: answer once it is (or start over if it was refused).
    if (creating && (await creating.created) !== "ok") return this.#existing(id, saga, input);
    return this.handle(id);
  }

  /** Sends a signal. It is persisted first, so it is kept if nobody waits for it yet. */
  async signal(runId: string, name: string, payload: Json = {}): Promise<SignalRecord> {
    this.assertOpen();
    // Checked and persisted in batches: one read of every run signalled in this turn, then one
    // transaction for the signals that pass.
    const outcome = await this.#signals.submit({ runId, name, payload, createdAt: this.clock.now() });
    if (outcome instanceof Error) throw outcome;
    const { signal, run } = outcome;
    this.deliver(signal, run);
    return signal;
  }

  /** Requests a cancel: nothing new starts, running actions are aborted, completed ones are undone. */
  async cancel(runId: string, reason = "cancelled by request"): Promise<RunRecord> {
    this.assertOpen();
    const current = await this.storage.getRun(runId);
    if (!current) throw new NotFoundError(`no run ${runId}`);
    if (FINAL_STATUSES.includes(current.status))
      throw new SlipwayError("conflict", `run ${runId} has already ended (${current.status})`);
    const record = await this.storage.requestCancel(runId, reason);
    if (!record) throw new NotFoundError(`no run ${runId}`);
    const local = this.runs.get(runId);
    if (local) local.cancel(reason);
    else if ((record.status === "waiting" || record.status === "failed") && record.owner === null)
      await this.claim(runId, "cancel");
    return record;
  }

  /**
   * Continues a run that needs attention: failed undos are retried, a run whose saga
   * version was missing continues if that version is now registered.
   */
  async resume(runId: string): Promise<RunHandle> {
    return this.reopen(runId, "needs_attention", "resume", (snapshot) => ({
      run: { status: snapshot.run.cause ? "compensating" : "running", error: null },
      steps: snapshot.steps
        .filter((s) => s.status === "undo_failed")
        .map((s) => ({ ...s, status: "completed" as const, undoAttempt: 0 })),
    }));
  }

  /**
   * Continues a held run (status `failed`, saga with onFailure "hold") from its failed actions:
   * they run again (same idempotency keys, attempts counting on), completed ones are reused.
   */
  async retry(runId: string): Promise<RunHandle> {
    return this.reopen(runId, "failed", "retry", (snapshot) => ({
      run: { status: "running", cause: null },
      steps: [
        ...snapshot.steps
          .filter((s) => s.status === "failed")
          .map((s) => ({
            ...s,
            status: "retrying" as const,
            failures: 0,
            state: { retryAt: 0 },
            endedAt: null,
          })),
        // Held before the cleanup of its failed attempt ran (its process died): the cleanup runs,
        // then the action runs again, as after any interrupted attempt.
        ...snapshot.steps
          .filter((s) => s.status === "running" && s.state?.failure !== undefined)
          .map((s) => ({ ...s, failures: 0, state: null })),
      ],
    }));
  }

  /** The run's record and steps. */
  async get(runId: string): Promise<RunInfo | undefined> {
    const snapshot = await this.storage.load(runId);
    return snapshot && { run: snapshot.run, steps: snapshot.steps };
  }

  /** The persisted history of a run, as events. */
  async history(runId: string): Promise<RunEvent[]> {
    const record = await this.storage.getRun(runId);
    if (!record) throw new NotFoundError(`no run ${runId}`);
    return (await this.storage.history(runId)).map((e) => ({
      type: e.type as RunEvent["type"],
      runId,
      saga: record.saga,
      runName: record.runName,
      seq: e.seq,
      action: e.action,
      at: e.at,
      data: e.data,
    }));
  }

  /** Listens to events of every run (or one). Returns the function that stops listening. */
  on(listener: EventListener, runId?: string): () => void {
    return this.bus.on(listener, runId);
  }

  /**
   * Live events of one run as an async iterator, ending after it ends or needs attention (or on
   * `signal`). Only what arrives while iterating is buffered; nothing is kept once it is closed.
   */
  async *subscribe(runId: string, options: { signal?: AbortSignal } = {}): AsyncGenerator<RunEvent> {
    const buffer: RunEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const stop = this.bus.on((event) => {
      buffer.push(event);
      if (ENDING_EVENTS.has(event.type)) done = true;
      wake?.();
    }, runId);
    const onAbort = () => {
      done = true;
      wake?.();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // An id that does not exist yet is fine: subscribe first, then start with that id, and miss nothing.
      const record = await this.storage.getRun(runId);
      if (record && STOPPED_STATUSES.includes(record.status) && !this.runs.has(runId)) done = true;
      while (true) {
        while (buffer.length > 0) yield buffer.shift()!;
        if (done || options.signal?.aborted) return;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      stop();
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Stages an inbound stream for a run (see `newRunId`); removed when the run ends. */
  stage(runId: string, name: string, source: ByteSource): Promise<StagedRef> {
    this.mayHaveStaged = true;
    return stageStream(this.dataDir, runId, name, source);
  }

  /**
   * Stops: running bodies are aborted (and given `abortGraceMs` to settle), runs in memory are
   * released so any executor may continue them at once, and this executor is unregistered.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.#stopCatchingFaults?.();
    this.slots.stop();
    const wakeupsStopped = this.stopWakeups();
    this.ownership.stop();
    const runs = [...this.runs.values()];
    for (const run of runs) run.detach(new SlipwayError("cancelled", "executor closing"));
    // Real time, not the clock: closing must end even when a test clock is never advanced.
    const deadline = Date.now() + this.abortGraceMs;
    while (runs.some((e) => e.busy) && Date.now() < deadline) await sleep(5);
    // A poll, loads and claims under way answer first (they see the executor closed and host nothing).
    await Promise.all([wakeupsStopped, this.loads?.drained(), this.claims.drained()]);
    await this.commits.drained();
    // Those dropped after a failed write are still ours in storage: released too.
    const ids = [...runs.map((e) => e.id), ...this.writeFailures.keys()];
    this.writeFailures.clear();
    const released = await Promise.allSettled(
      ids.map((id) => this.commits.submit({ runId: id, owner: this.owner, run: { release: true } })),
    );
    this.runs.clear();
    this.slots.clear();
    // One could not be released (a full disk): this executor stays registered, so once its heartbeat
    // is past its lease it is provably dead and another executor takes that run over.
    const failed = released.find((r) => r.status === "rejected");
    if (failed) {
      this.logger.error({ err: failed.reason }, "could not release every run while closing");
      return;
    }
    await this.storage.removeExecutor(this.owner);
  }
}

function isRecord(value: RunRecord | RunHandle): value is RunRecord {
  return "revision" in value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
