/**
 * The executor: hosts the executions of the sagas it registers, multiplexed in one process. It starts
 * them, wakes the waiting ones (timers, signals, cancel requests), recovers what a dead executor left,
 * and group-commits every transition. A waiting execution costs it nothing: it lives only in storage.
 * Built in layers: what it hosts (hosting.ts), how executions come in (intake.ts), how it learns what
 * is due (wakeups.ts), and here its public API.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Saga } from "../definition/saga.js";
import { NotFoundError, SlipwayError, ValidationError } from "../errors.js";
import { assertJson, type Json, type JsonObject } from "../json.js";
import { type ByteSource, type StagedRef, stageStream, sweepStaged } from "../staging/staging.js";
import {
  type CommitResult,
  type ExecutionRecord,
  FINAL_STATUSES,
  type NewSignal,
  type SignalRecord,
  STOPPED_STATUSES,
} from "../storage/types.js";
import { Batcher } from "./batcher.js";
import { ENDING_EVENTS, type EventListener, type ExecutionEvent } from "./events.js";
import { Execution } from "./execution.js";
import { type ExecutorOptions, resolveExecutorOptions } from "./executor-options.js";
import type { ExecutionHandle, ExecutionInfo, StartOptions } from "./handles.js";
import { assertSameStart } from "./idempotency.js";
import { newId } from "./ids.js";
import { type AcceptedSignal, acceptSignals } from "./signals.js";
import { ExecutionWakeups } from "./wakeups.js";

export type { ExecutorOptions } from "./executor-options.js";
export type { ExecutionHandle, ExecutionInfo, ExecutionResult, StartOptions } from "./handles.js";

export class Executor extends ExecutionWakeups {
  /** Executions started here whose creation is not committed yet, by id (a second start waits for it). */
  readonly #creating = new Map<string, { record: ExecutionRecord; created: Promise<CommitResult> }>();
  /** Group commit of signals: checked and persisted in one batch for all sent together. */
  readonly #signals: Batcher<NewSignal, AcceptedSignal | Error>;

  private constructor(options: ExecutorOptions) {
    super(resolveExecutorOptions(options));
    this.#signals = new Batcher((signals) => acceptSignals(this.storage, this.registry, signals));
  }

  /**
   * Registers a saga after open (a server compiles a pipeline run's saga when the run is submitted).
   * False when that name and version is registered already. Register before starting, resuming or
   * recovering its executions.
   */
  register(saga: Saga<never, never> | Saga): boolean {
    return this.registry.register(saga as Saga);
  }

  /** Forgets a saga version registered here (its executions must not be running here any more). */
  unregister(saga: Saga<never, never> | Saga): void {
    this.registry.unregister(saga.name, saga.version);
  }

  /** Whether this saga version is registered here. */
  registered(name: string, version: number): boolean {
    return this.registry.get(name, version) !== undefined;
  }

  /** Opens an executor: registers it, sweeps orphaned staged data, recovers incomplete executions. */
  static async open(options: ExecutorOptions): Promise<Executor> {
    const executor = new Executor(options);
    await executor.#open();
    return executor;
  }

  async #open(): Promise<void> {
    await this.storage.init();
    await this.ownership.beat();
    this.signalCursor = await this.storage.lastSignalSeq();
    await sweepStaged(
      this.dataDir,
      async (id) => {
        const execution = await this.storage.getExecution(id);
        if (!execution) return "unknown";
        return FINAL_STATUSES.includes(execution.status) ? "ended" : "live";
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

  /** Executions currently held in memory (running or compensating here). */
  get activeExecutions(): number {
    return this.executions.size;
  }

  newExecutionId(): string {
    return newId(this.clock.now());
  }

  /**
   * Starts an execution. Resolves once it is durably created (its first actions may already run).
   * Starting again with an id that exists is idempotent: the same saga and input give a handle to the
   * existing execution; anything else is refused with an `IdempotencyConflictError`.
   */
  async start<I, V>(saga: Saga<I, V>, input: I, options: StartOptions = {}): Promise<ExecutionHandle<V>> {
    this.assertOpen();
    if (this.registry.get(saga.name, saga.version) !== (saga as unknown as Saga)) {
      throw new SlipwayError(
        "not_registered",
        `saga ${saga.name} v${saga.version} is not registered with this executor`,
      );
    }
    const parsed = saga.inputSchema.safeParse(input);
    if (!parsed.success) {
      const detail = parsed.error.issues
        .map((i) => `${i.path.join(".") || "(input)"}: ${i.message}`)
        .join("; ");
      throw new ValidationError("invalid_input", `invalid input for saga ${saga.name}: ${detail}`);
    }
    assertJson(parsed.data, "input");
    const data = parsed.data as JsonObject;
    // A fresh id cannot exist; a caller's id may (a retried submit): look before creating.
    if (options.id !== undefined) {
      const existing = await this.#existing(options.id, saga as unknown as Saga, data);
      if (existing) return existing as ExecutionHandle<V>;
    }
    const now = this.clock.now();
    const id = options.id ?? newId(now);
    const record: ExecutionRecord = {
      id,
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
    };
    const execution = new Execution(this, saga as unknown as Saga, {
      execution: record,
      steps: [],
      signals: [],
      nextEventSeq: 1,
    });
    this.executions.set(id, execution);
    const created = execution.create();
    this.#creating.set(id, { record, created });
    let result: CommitResult;
    try {
      result = await created;
    } finally {
      this.#creating.delete(id);
    }
    if (result === "exists") {
      // Created meanwhile by another process: the refused creation ran and kept nothing.
      const existing = await this.#existing(id, saga as unknown as Saga, data);
      if (existing) return existing as ExecutionHandle<V>;
    }
    if (result !== "ok")
      throw new SlipwayError("storage", `execution ${id} could not be created (${result})`);
    return this.handle<V>(id);
  }

  /**
   * A handle to the execution with this id when it exists (or is being created here) with this saga
   * and input; undefined when there is none; an `IdempotencyConflictError` when it differs.
   */
  async #existing(id: string, saga: Saga, input: JsonObject): Promise<ExecutionHandle | undefined> {
    const stored = await this.storage.getExecution(id);
    // Checked after the read: a start of the same id in this process may have begun meanwhile.
    const creating = this.#creating.get(id);
    const record = creating?.record ?? this.executions.get(id)?.record ?? stored;
    if (!record) return undefined;
    assertSameStart(record, saga, input);
    // Its creation is not committed yet: answer once it is (or start over if it was refused).
    if (creating && (await creating.created) !== "ok") return this.#existing(id, saga, input);
    return this.handle(id);
  }

  /** Sends a signal. It is persisted first, so it is kept if nobody waits for it yet. */
  async signal(executionId: string, name: string, payload: Json = {}): Promise<SignalRecord> {
    this.assertOpen();
    // Checked and persisted in batches: one read of every execution signalled in this turn, then one
    // transaction for the signals that pass.
    const outcome = await this.#signals.submit({ executionId, name, payload, createdAt: this.clock.now() });
    if (outcome instanceof Error) throw outcome;
    const { signal, execution } = outcome;
    this.sentHere.add(signal.seq);
    this.deliver(signal, execution);
    return signal;
  }

  /** Requests a cancel: nothing new starts, running actions are aborted, completed ones are undone. */
  async cancel(executionId: string, reason = "cancelled by request"): Promise<ExecutionRecord> {
    this.assertOpen();
    const current = await this.storage.getExecution(executionId);
    if (!current) throw new NotFoundError(`no execution ${executionId}`);
    if (FINAL_STATUSES.includes(current.status))
      throw new SlipwayError("conflict", `execution ${executionId} has already ended (${current.status})`);
    const record = await this.storage.requestCancel(executionId, reason);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    const local = this.executions.get(executionId);
    if (local) local.cancel(reason);
    else if ((record.status === "waiting" || record.status === "failed") && record.owner === null)
      await this.claim(executionId, "cancel");
    return record;
  }

  /**
   * Continues an execution that needs attention: failed undos are retried, an execution whose saga
   * version was missing continues if that version is now registered.
   */
  async resume(executionId: string): Promise<ExecutionHandle> {
    return this.reopen(executionId, "needs_attention", "resume", (snapshot) => ({
      execution: { status: snapshot.execution.cause ? "compensating" : "running", error: null },
      steps: snapshot.steps
        .filter((s) => s.status === "undo_failed")
        .map((s) => ({ ...s, status: "completed" as const, undoAttempt: 0 })),
    }));
  }

  /**
   * Continues a held execution (status `failed`, saga with onFailure "hold") from its failed actions:
   * they run again (same idempotency keys, attempts counting on), completed ones are reused.
   */
  async retry(executionId: string): Promise<ExecutionHandle> {
    return this.reopen(executionId, "failed", "retry", (snapshot) => ({
      execution: { status: "running", cause: null },
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

  /** The execution's record and steps. */
  async get(executionId: string): Promise<ExecutionInfo | undefined> {
    const snapshot = await this.storage.load(executionId);
    return snapshot && { execution: snapshot.execution, steps: snapshot.steps };
  }

  /** The persisted history of an execution, as events. */
  async history(executionId: string): Promise<ExecutionEvent[]> {
    const record = await this.storage.getExecution(executionId);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    return (await this.storage.history(executionId)).map((e) => ({
      type: e.type as ExecutionEvent["type"],
      executionId,
      saga: record.saga,
      runName: record.runName,
      seq: e.seq,
      action: e.action,
      at: e.at,
      data: e.data,
    }));
  }

  /** Listens to events of every execution (or one). Returns the function that stops listening. */
  on(listener: EventListener, executionId?: string): () => void {
    return this.bus.on(listener, executionId);
  }

  /**
   * Live events of one execution as an async iterator, ending after it ends or needs attention (or on
   * `signal`). Only what arrives while iterating is buffered; nothing is kept once it is closed.
   */
  async *subscribe(
    executionId: string,
    options: { signal?: AbortSignal } = {},
  ): AsyncGenerator<ExecutionEvent> {
    const buffer: ExecutionEvent[] = [];
    let wake: (() => void) | undefined;
    let done = false;
    const stop = this.bus.on((event) => {
      buffer.push(event);
      if (ENDING_EVENTS.has(event.type)) done = true;
      wake?.();
    }, executionId);
    const onAbort = () => {
      done = true;
      wake?.();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      // An id that does not exist yet is fine: subscribe first, then start with that id, and miss nothing.
      const record = await this.storage.getExecution(executionId);
      if (record && STOPPED_STATUSES.includes(record.status) && !this.executions.has(executionId))
        done = true;
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

  /** Stages an inbound stream for an execution (see `newExecutionId`); removed when the execution ends. */
  stage(executionId: string, name: string, source: ByteSource): Promise<StagedRef> {
    this.mayHaveStaged = true;
    return stageStream(this.dataDir, executionId, name, source);
  }

  /**
   * Stops: running bodies are aborted (and given `abortGraceMs` to settle), executions in memory are
   * released so any executor may continue them at once, and this executor is unregistered.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.slots.stop();
    this.stopWakeups();
    this.ownership.stop();
    const executions = [...this.executions.values()];
    for (const execution of executions) execution.detach(new SlipwayError("cancelled", "executor closing"));
    // Real time, not the clock: closing must end even when a test clock is never advanced.
    const deadline = Date.now() + this.abortGraceMs;
    while (executions.some((e) => e.busy) && Date.now() < deadline) await sleep(5);
    // Loads and claims under way answer first (they see the executor closed and host nothing).
    await Promise.all([this.loads?.drained(), this.claims.drained()]);
    await this.commits.drained();
    // Those dropped after a failed write are still ours in storage: released too.
    const ids = [...executions.map((e) => e.id), ...this.writeFailures.keys()];
    this.writeFailures.clear();
    const released = await Promise.allSettled(
      ids.map((id) =>
        this.commits.submit({ executionId: id, owner: this.owner, execution: { release: true } }),
      ),
    );
    this.executions.clear();
    this.slots.clear();
    // One could not be released (a full disk): this executor stays registered, so once its heartbeat
    // is past its lease it is provably dead and another executor takes that execution over.
    const failed = released.find((r) => r.status === "rejected");
    if (failed) {
      this.logger.error({ err: failed.reason }, "could not release every execution while closing");
      return;
    }
    await this.storage.removeExecutor(this.owner);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
