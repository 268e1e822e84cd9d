/**
 * The executor: hosts the executions of the sagas it registers, multiplexed in one process. It starts
 * them, wakes the waiting ones (timers, signals, cancel requests), recovers what a dead executor left,
 * and group-commits every transition. A waiting execution costs it nothing: it lives only in storage.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { type Clock, type ClockTimer, systemClock } from "../clock.js";
import type { Saga } from "../definition/saga.js";
import { IdempotencyConflictError, NotFoundError, SlipwayError, ValidationError } from "../errors.js";
import { assertJson, type Json, type JsonObject } from "../json.js";
import { log as defaultLogger } from "../logging.js";
import {
  type ByteSource,
  removeStaged,
  type StagedRef,
  stageStream,
  sweepStaged,
} from "../staging/staging.js";
import {
  type ClaimRequest,
  type CommitResult,
  type ExecutionRecord,
  type ExecutionSnapshot,
  type ExecutionStatus,
  FINAL_STATUSES,
  type NewSignal,
  type SignalRecord,
  type StepRecord,
  type Storage,
  type Transition,
} from "../storage/types.js";
import { type BatchCallback, Batcher } from "./batcher.js";
import { ENDING_EVENTS, EventBus, type EventListener, type ExecutionEvent } from "./events.js";
import { Execution, type ExecutionHost } from "./execution.js";
import { DEFAULT_LEASE_MS, findDeadExecutors } from "./liveness.js";

export interface ExecutorOptions {
  storage: Storage;
  /** The sagas (and versions) this executor owns. Executions of other sagas in the same storage are left alone. */
  sagas: readonly Saga<never, never>[] | readonly Saga[];
  /** Where staged streams live. Default `.slipway`. */
  dataDir?: string;
  /** Stable identity of this executor; default random per process. */
  id?: string;
  logger?: Logger;
  /** Action bodies, undos and poll checks running at once in this executor. Default 1000. */
  maxConcurrentActions?: number;
  /** ... and within one execution. Default 16. */
  perExecutionConcurrency?: number;
  /** How often storage is checked for signals, cancel requests and due wake-ups from other processes. Default 200 ms. */
  pollIntervalMs?: number;
  /** How often this executor proves it is alive. Default 5 s. */
  heartbeatIntervalMs?: number;
  /** An executor silent this long is dead and its executions are taken over. Default 30 s. */
  leaseMs?: number;
  /** After an abort, how long a body may take to settle before it is given up on. Default 10 s. */
  abortGraceMs?: number;
  /** An execution with nothing running leaves memory when its next timer is at least this far. Default 1 s. */
  evictAfterMs?: number;
  /** Staged data of executions that never started is swept once this old. Default 1 h. */
  stagedGraceMs?: number;
  /**
   * Narrows which executions of the registered sagas this executor takes (recovers, wakes, resumes);
   * default all. A CLI process that runs one pipeline run takes only that run.
   */
  accept?: (execution: ExecutionRecord) => boolean;
  /** Continue incomplete executions at open. Default true. */
  recover?: boolean;
  /**
   * Where the time and timers come from: timeouts, sleeps and wake-ups, retry backoff, heartbeats and
   * leases, polling. Default the real time (`systemClock`); tests pass a `ManualClock` from
   * `slipway/testing` to move time without waiting.
   */
  clock?: Clock;
}

export interface StartOptions {
  /** Execution id; default a new time-ordered id. Use `newExecutionId()` to stage streams before starting. */
  id?: string;
  /** Human-readable name carried by every log line, e.g. `{ticket}-{branch}-{attempt}`. */
  runName?: string;
}

export interface ExecutionResult<Values = Record<string, unknown>> {
  id: string;
  status: ExecutionStatus;
  /** Every value produced (and the input), for completed executions. */
  output: Partial<Values>;
  cause: ExecutionRecord["cause"];
  error: ExecutionRecord["error"];
}

export interface ExecutionInfo {
  execution: ExecutionRecord;
  steps: StepRecord[];
}

export interface ExecutionHandle<Values = Record<string, unknown>> {
  readonly id: string;
  /** Resolves when the execution ends or needs attention, wherever it runs. */
  result(): Promise<ExecutionResult<Values>>;
}

/** Largest batch of claims or snapshot loads handed to storage at once (see the constructor). */
const INTAKE_BATCH = 128;

/** A signal persisted by `signal()`, with the execution it was checked against. */
interface AcceptedSignal {
  signal: SignalRecord;
  execution: ExecutionRecord;
}

/** Statuses in which an execution stays until someone acts (or forever): what `result()` waits for. */
const ENDED_OR_ATTENTION: readonly ExecutionStatus[] = [...FINAL_STATUSES, "needs_attention", "failed"];

export class Executor implements ExecutionHost {
  readonly owner: string;
  readonly logger: Logger;
  readonly dataDir: string;
  readonly perExecutionConcurrency: number;
  readonly abortGraceMs: number;
  readonly evictAfterMs: number;
  readonly storage: Storage;
  readonly clock: Clock;

  readonly #sagas = new Map<string, Map<number, Saga>>();
  readonly #executions = new Map<string, Execution>();
  /** Executions started here whose creation is not committed yet, by id (a second start waits for it). */
  readonly #creating = new Map<string, { record: ExecutionRecord; created: Promise<CommitResult> }>();
  /** Executions being claimed, with the signals delivered to them meanwhile (handed over once hosted). */
  readonly #claiming = new Map<string, SignalRecord[]>();
  /** Group commit of transitions, claims and signals: one transaction for all that are ready together. */
  readonly #commits: Batcher<Transition, CommitResult>;
  readonly #claims: Batcher<ClaimRequest, ExecutionSnapshot | undefined>;
  /** Batched snapshot reads, when the storage can claim in a transition (`loadMany`). */
  readonly #loads: Batcher<string, ExecutionSnapshot | undefined> | undefined;
  readonly #signals: Batcher<NewSignal, AcceptedSignal | Error>;
  #deadOwnersCache: { at: number; value: Promise<string[]> } | undefined;
  readonly #bus = new EventBus();
  readonly #maxConcurrent: number;
  /**
   * Executions waiting for an action slot, first come first served: a queue (array and head) for
   * order, a set for membership. A Set alone would do, but taking its first entry over and over
   * walks the deleted entries before it each time: quadratic when a thousand wait.
   */
  #slotQueue: Execution[] = [];
  #slotHead = 0;
  readonly #slotQueued = new Set<Execution>();
  readonly #waiters = new Map<string, ((result: ExecutionResult) => void)[]>();
  readonly #options: Required<
    Pick<ExecutorOptions, "pollIntervalMs" | "heartbeatIntervalMs" | "leaseMs" | "stagedGraceMs">
  >;
  readonly #accept: ((execution: ExecutionRecord) => boolean) | undefined;
  #activeSlots = 0;
  #signalCursor = 0;
  #wakeTimer: ClockTimer | undefined;
  #wakeAt = Number.POSITIVE_INFINITY;
  #pollTimer: ClockTimer | undefined;
  #heartbeatTimer: ClockTimer | undefined;
  #polling = false;
  /** Seqs of signals sent through this executor that the storage poll has not passed yet. */
  readonly #sentHere = new Set<number>();
  /** Whether anything was ever staged under the data directory (by any process); saves a stat per end. */
  #mayHaveStaged = false;
  #lastRecovery = 0;
  #startedAt: number | undefined;
  #closed = false;

  private constructor(options: ExecutorOptions) {
    this.storage = options.storage;
    this.clock = options.clock ?? systemClock;
    this.owner = options.id ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`;
    this.logger = options.logger ?? defaultLogger;
    this.dataDir = options.dataDir ?? ".slipway";
    this.#maxConcurrent = positive(options.maxConcurrentActions ?? 1000, "maxConcurrentActions");
    this.perExecutionConcurrency = positive(options.perExecutionConcurrency ?? 16, "perExecutionConcurrency");
    this.abortGraceMs = nonNegative(options.abortGraceMs ?? 10_000, "abortGraceMs");
    this.evictAfterMs = nonNegative(options.evictAfterMs ?? 1_000, "evictAfterMs");
    this.#options = {
      pollIntervalMs: positive(options.pollIntervalMs ?? 200, "pollIntervalMs"),
      heartbeatIntervalMs: positive(options.heartbeatIntervalMs ?? 5_000, "heartbeatIntervalMs"),
      leaseMs: positive(options.leaseMs ?? DEFAULT_LEASE_MS, "leaseMs"),
      stagedGraceMs: nonNegative(options.stagedGraceMs ?? 3_600_000, "stagedGraceMs"),
    };
    this.#accept = options.accept;
    this.#commits = new Batcher((transitions) => this.storage.commit(transitions));
    // Executions come into memory (claims, loads) in smaller batches than commits: a burst of
    // wake-ups then flows through as a pipeline, the first woken finishing while later ones are still
    // being loaded, instead of thousands held in memory at once and moving through every step
    // together. Less live at once is less garbage-collector work, the action slots are not all taken
    // at once, and the whole burst ends sooner.
    this.#claims = new Batcher((requests) => this.storage.claimMany(requests), INTAKE_BATCH);
    const storage = this.storage;
    if (typeof storage.loadMany === "function")
      this.#loads = new Batcher((ids) => storage.loadMany!(ids), INTAKE_BATCH);
    this.#signals = new Batcher((signals) => this.#acceptSignals(signals));
    for (const saga of options.sagas as readonly Saga[]) {
      if (!this.register(saga))
        throw new SlipwayError("definition", `saga ${saga.name} v${saga.version} is registered twice`);
    }
  }

  /**
   * Registers a saga after open (a server compiles a pipeline run's saga when the run is submitted).
   * False when that name and version is registered already. Register before starting, resuming or
   * recovering its executions.
   */
  register(saga: Saga<never, never> | Saga): boolean {
    const definition = saga as Saga;
    let versions = this.#sagas.get(definition.name);
    if (!versions) {
      versions = new Map();
      this.#sagas.set(definition.name, versions);
    }
    if (versions.has(definition.version)) return false;
    versions.set(definition.version, definition);
    return true;
  }

  /** Forgets a saga version registered here (its executions must not be running here any more). */
  unregister(saga: Saga<never, never> | Saga): void {
    const versions = this.#sagas.get(saga.name);
    versions?.delete(saga.version);
    if (versions?.size === 0) this.#sagas.delete(saga.name);
  }

  /** Whether this saga version is registered here. */
  registered(name: string, version: number): boolean {
    return this.#sagas.get(name)?.has(version) ?? false;
  }

  /** Opens an executor: registers it, sweeps orphaned staged data, recovers incomplete executions. */
  static async open(options: ExecutorOptions): Promise<Executor> {
    const executor = new Executor(options);
    await executor.#open(options.recover ?? true);
    return executor;
  }

  async #open(recover: boolean): Promise<void> {
    await this.storage.init();
    await this.#heartbeat();
    this.#signalCursor = await this.storage.lastSignalSeq();
    await sweepStaged(
      this.dataDir,
      async (id) => {
        const execution = await this.storage.getExecution(id);
        if (!execution) return "unknown";
        return FINAL_STATUSES.includes(execution.status) ? "ended" : "live";
      },
      this.#options.stagedGraceMs,
    );
    this.#mayHaveStaged = existsSync(join(this.dataDir, "staged"));
    if (recover) await this.recover();
    else this.#lastRecovery = this.clock.now();
    this.#scheduleHeartbeat();
    this.#schedulePoll();
  }

  get sagaNames(): string[] {
    return [...this.#sagas.keys()];
  }

  /** Executions currently held in memory (running or compensating here). */
  get activeExecutions(): number {
    return this.#executions.size;
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
    this.#assertOpen();
    if (this.#sagas.get(saga.name)?.get(saga.version) !== (saga as unknown as Saga)) {
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
    this.#executions.set(id, execution);
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
    const record = creating?.record ?? this.#executions.get(id)?.record ?? stored;
    if (!record) return undefined;
    assertSameStart(record, saga, input);
    // Its creation is not committed yet: answer once it is (or start over if it was refused).
    if (creating && (await creating.created) !== "ok") return this.#existing(id, saga, input);
    return this.handle(id);
  }

  handle<V = Record<string, unknown>>(id: string): ExecutionHandle<V> {
    return { id, result: () => this.result(id) as Promise<ExecutionResult<V>> };
  }

  /** Sends a signal. It is persisted first, so it is kept if nobody waits for it yet. */
  async signal(executionId: string, name: string, payload: Json = {}): Promise<SignalRecord> {
    this.#assertOpen();
    // Checked and persisted in batches: one read of every execution signalled in this turn, then one
    // transaction for the signals that pass.
    const outcome = await this.#signals.submit({ executionId, name, payload, createdAt: this.clock.now() });
    if (outcome instanceof Error) throw outcome;
    const { signal, execution } = outcome;
    this.#sentHere.add(signal.seq);
    this.#deliver(signal, execution);
    return signal;
  }

  /** The signals batch: each is checked against its execution, the ones that pass are persisted. */
  async #acceptSignals(requests: NewSignal[]): Promise<(AcceptedSignal | Error)[]> {
    const ids = requests.map((r) => r.executionId);
    const storage = this.storage;
    const records = storage.getExecutions
      ? await storage.getExecutions(ids)
      : await Promise.all(ids.map((id) => storage.getExecution(id)));
    const checked = requests.map((request, i): ExecutionRecord | Error => {
      try {
        return this.#checkSignal(request, records[i]);
      } catch (error) {
        return error instanceof Error ? error : new Error(String(error));
      }
    });
    const accepted = requests.filter((_, i) => !(checked[i] instanceof Error));
    const signals = accepted.length > 0 ? await storage.addSignals(accepted) : [];
    let next = 0;
    return checked.map((execution) =>
      execution instanceof Error ? execution : { signal: signals[next++]!, execution },
    );
  }

  /** Why a signal cannot be sent, thrown; else the execution it goes to. */
  #checkSignal(request: NewSignal, execution: ExecutionRecord | undefined): ExecutionRecord {
    const { executionId, name, payload } = request;
    if (!execution) throw new NotFoundError(`no execution ${executionId}`);
    if (FINAL_STATUSES.includes(execution.status))
      throw new SlipwayError(
        "conflict",
        `execution ${executionId} has already ended (${execution.status}); signal "${name}" not delivered`,
      );
    assertJson(payload, `payload of signal "${name}"`);
    const saga = this.#sagas.get(execution.saga)?.get(execution.version);
    for (const action of saga?.actions.values() ?? []) {
      if (action.kind !== "signal" || action.signalName !== name || !action.outputSchema) continue;
      const parsed = action.outputSchema.safeParse(
        action.fromPayload ? action.fromPayload(payload) : payload,
      );
      if (!parsed.success) {
        const detail = parsed.error.issues
          .map((i) => `${i.path.join(".") || "(payload)"}: ${i.message}`)
          .join("; ");
        throw new ValidationError(
          "invalid_input",
          `payload of signal "${name}" does not fit action "${action.name}": ${detail}`,
        );
      }
    }
    return execution;
  }

  /** Requests a cancel: nothing new starts, running actions are aborted, completed ones are undone. */
  async cancel(executionId: string, reason = "cancelled by request"): Promise<ExecutionRecord> {
    this.#assertOpen();
    const current = await this.storage.getExecution(executionId);
    if (!current) throw new NotFoundError(`no execution ${executionId}`);
    if (FINAL_STATUSES.includes(current.status))
      throw new SlipwayError("conflict", `execution ${executionId} has already ended (${current.status})`);
    const record = await this.storage.requestCancel(executionId, reason);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    const local = this.#executions.get(executionId);
    if (local) local.cancel(reason);
    else if ((record.status === "waiting" || record.status === "failed") && record.owner === null)
      await this.#claim(executionId, "cancel");
    return record;
  }

  /**
   * Continues an execution that needs attention: failed undos are retried, an execution whose saga
   * version was missing continues if that version is now registered.
   */
  async resume(executionId: string): Promise<ExecutionHandle> {
    return this.#reopen(executionId, "needs_attention", "resume", (snapshot) => ({
      execution: { status: snapshot.execution.cause ? "compensating" : "running", error: null },
      steps: snapshot.steps
        .filter((s) => s.status === "undo_failed")
        .map((s) => ({ ...s, status: "completed" as const, undoAttempt: 0 })),
    }));
  }

  /**
   * Claims an execution that stopped for someone to act (`from`), rewrites it as `change` says, and
   * continues it here.
   */
  async #reopen(
    executionId: string,
    from: ExecutionStatus,
    reason: string,
    change: (snapshot: ExecutionSnapshot) => Pick<Transition, "execution" | "steps">,
  ): Promise<ExecutionHandle> {
    this.#assertOpen();
    const record = await this.storage.getExecution(executionId);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    if (record.status !== from)
      throw new SlipwayError(
        "conflict",
        `execution ${executionId} is ${record.status}, not ${from}: nothing to ${reason}`,
      );
    const snapshot = await this.#claims.submit({
      executionId,
      owner: this.owner,
      takeOverFrom: await this.#deadOwners(),
    });
    if (!snapshot)
      throw new SlipwayError("conflict", `execution ${executionId} is owned by another executor`);
    const { execution, steps } = change(snapshot);
    const now = this.clock.now();
    const transition: Transition = { executionId, owner: this.owner };
    if (execution) transition.execution = execution;
    if (steps) transition.steps = steps.map((step) => ({ ...step, updatedAt: now }));
    if ((await this.#commits.submit(transition)) !== "ok")
      throw new SlipwayError("conflict", `execution ${executionId} changed during ${reason}`);
    const fresh = await this.storage.load(executionId);
    if (fresh) this.#host(fresh, reason, undefined);
    return this.handle(executionId);
  }

  /**
   * Continues a held execution (status `failed`, saga with onFailure "hold") from its failed actions:
   * they run again (same idempotency keys, attempts counting on), completed ones are reused.
   */
  async retry(executionId: string): Promise<ExecutionHandle> {
    return this.#reopen(executionId, "failed", "retry", (snapshot) => ({
      execution: { status: "running", cause: null },
      steps: snapshot.steps
        .filter((s) => s.status === "failed")
        .map((s) => ({
          ...s,
          status: "retrying" as const,
          failures: 0,
          state: { retryAt: 0 },
          endedAt: null,
        })),
    }));
  }

  /** Claims and continues every incomplete execution of this executor's sagas that nobody alive runs. */
  async recover(): Promise<number> {
    if (this.#closed) return 0;
    this.#lastRecovery = this.clock.now();
    const sagas = this.sagaNames;
    const deadList = await this.#deadOwners();
    const dead = new Set(deadList);
    const now = this.clock.now();
    const unownedWaiting = { sagas, statuses: ["waiting"], owner: null } as const;
    // Parked executions are only read when something is due for them: thousands may be parked.
    const lists = await Promise.all([
      this.storage.listExecutions({ sagas, statuses: ["running", "compensating"] }),
      this.storage.listExecutions({ ...unownedWaiting, wakeAtOrBefore: now }),
      this.storage.listExecutions({ ...unownedWaiting, cancelRequested: true }),
      this.storage.listExecutions({ ...unownedWaiting, withPendingSignals: true }),
      ...deadList.map((owner) => this.storage.listExecutions({ sagas, statuses: ["waiting"], owner })),
    ]);
    const ids = new Set<string>();
    for (const record of lists.flat()) {
      if (this.#executions.has(record.id) || !this.#runsHere(record)) continue;
      if (record.owner === null || record.owner === this.owner || dead.has(record.owner)) ids.add(record.id);
    }
    // All at once, so the claims go to storage as one batch.
    const claimed = await Promise.all([...ids].map((id) => this.#claim(id, "recovery", deadList)));
    // Forget dead executors that own nothing any more.
    for (const id of deadList) {
      if ((await this.storage.listExecutions({ owner: id, limit: 1 })).length === 0)
        await this.storage.removeExecutor(id);
    }
    return claimed.filter(Boolean).length;
  }

  /** The execution's record and steps. */
  async get(executionId: string): Promise<ExecutionInfo | undefined> {
    const snapshot = await this.storage.load(executionId);
    return snapshot && { execution: snapshot.execution, steps: snapshot.steps };
  }

  /** Resolves when the execution ends or needs attention. */
  async result(executionId: string): Promise<ExecutionResult> {
    const record = await this.storage.getExecution(executionId);
    if (!record) throw new NotFoundError(`no execution ${executionId}`);
    if (ENDED_OR_ATTENTION.includes(record.status) && !this.#executions.has(executionId))
      return this.#resultOf(executionId);
    return new Promise((resolve) => {
      const list = this.#waiters.get(executionId) ?? [];
      list.push(resolve);
      this.#waiters.set(executionId, list);
    });
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
    return this.#bus.on(listener, executionId);
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
    const stop = this.#bus.on((event) => {
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
      if (record && ENDED_OR_ATTENTION.includes(record.status) && !this.#executions.has(executionId))
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
    this.#mayHaveStaged = true;
    return stageStream(this.dataDir, executionId, name, source);
  }

  /**
   * Stops: running bodies are aborted (and given `abortGraceMs` to settle), executions in memory are
   * released so any executor may continue them at once, and this executor is unregistered.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.clock.clearTimeout(this.#pollTimer);
    this.clock.clearTimeout(this.#wakeTimer);
    this.clock.clearTimeout(this.#heartbeatTimer);
    const executions = [...this.#executions.values()];
    for (const execution of executions) execution.detach(new SlipwayError("cancelled", "executor closing"));
    // Real time, not the clock: closing must end even when a test clock is never advanced.
    const deadline = Date.now() + this.abortGraceMs;
    while (executions.some((e) => e.busy) && Date.now() < deadline) await sleep(5);
    // Loads and claims under way answer first (they see the executor closed and host nothing).
    await Promise.all([this.#loads?.drained(), this.#claims.drained()]);
    await this.#commits.drained();
    await Promise.all(
      executions.map((e) =>
        this.#commits.submit({ executionId: e.id, owner: this.owner, execution: { release: true } }),
      ),
    );
    this.#executions.clear();
    this.#slotQueue = [];
    this.#slotHead = 0;
    this.#slotQueued.clear();
    await this.storage.removeExecutor(this.owner);
  }

  // ---- ExecutionHost ------------------------------------------------------------------------

  commit(transition: Transition, done: BatchCallback<CommitResult>): void {
    this.#commits.enqueue(transition, done);
  }

  listening(executionId: string): boolean {
    return this.#bus.wants(executionId);
  }

  publish(events: ExecutionEvent[]): void {
    if (events.length === 0 || !this.#bus.wants(events[0]!.executionId)) return;
    for (const event of events) this.#bus.emit(event);
  }

  progress(execution: Execution, action: string, message: string, data: JsonObject | undefined): void {
    if (!this.#bus.wants(execution.id)) return;
    this.#bus.emit({
      type: "action:progress",
      executionId: execution.id,
      saga: execution.saga.name,
      runName: execution.record.runName,
      action,
      at: this.clock.now(),
      data: data === undefined ? { message } : { message, ...data },
    });
  }

  acquireSlot(execution: Execution): boolean {
    if (this.#activeSlots < this.#maxConcurrent && !this.#closed) {
      this.#activeSlots++;
      return true;
    }
    if (!this.#slotQueued.has(execution)) {
      this.#slotQueued.add(execution);
      this.#slotQueue.push(execution);
    }
    return false;
  }

  releaseSlot(): void {
    this.#activeSlots--;
    const queue = this.#slotQueue;
    while (this.#slotHead < queue.length) {
      const next = queue[this.#slotHead]!;
      queue[this.#slotHead++] = undefined as unknown as Execution;
      // Left the queue meanwhile (forgotten), or replaced by another instance: skip it.
      if (!this.#slotQueued.delete(next) || this.#executions.get(next.id) !== next) continue;
      queueMicrotask(() => next.advance());
      break;
    }
    if (this.#slotHead === queue.length) {
      this.#slotQueue = [];
      this.#slotHead = 0;
    } else if (this.#slotHead >= 1024 && this.#slotHead * 2 >= queue.length) {
      this.#slotQueue = queue.slice(this.#slotHead);
      this.#slotHead = 0;
    }
  }

  evicted(execution: Execution, wakeAt: number | null): void {
    this.#forget(execution);
    if (execution.wakeAfterRelease) void this.#claim(execution.id, "signal");
    if (wakeAt !== null) this.#scheduleWake(wakeAt);
  }

  ended(execution: Execution): void {
    this.#forget(execution);
    if (execution.wakeAfterRelease) void this.#claim(execution.id, "cancel");
    // Most executions stage nothing: skip the file system unless the staged folder exists at all.
    if (
      FINAL_STATUSES.includes(execution.status) &&
      this.#mayHaveStaged &&
      existsSync(join(this.dataDir, "staged", execution.id))
    ) {
      removeStaged(this.dataDir, execution.id).catch((error: unknown) =>
        this.logger.warn({ err: error, executionId: execution.id }, "could not remove staged data"),
      );
    }
    this.#resolveWaiters(execution.id);
  }

  #resolveWaiters(executionId: string): void {
    const waiters = this.#waiters.get(executionId);
    if (!waiters) return;
    this.#waiters.delete(executionId);
    void this.#resultOf(executionId).then((result) => {
      for (const resolve of waiters) resolve(result);
    });
  }

  claimLost(execution: Execution): void {
    this.#forget(execution);
  }

  detached(execution: Execution, reason: unknown): void {
    this.#forget(execution);
    if (!this.#closed)
      this.logger.error(
        { err: reason, executionId: execution.id },
        "execution detached; it will be recovered",
      );
  }

  // ---- internals ----------------------------------------------------------------------------

  #forget(execution: Execution): void {
    if (this.#executions.get(execution.id) === execution) this.#executions.delete(execution.id);
    this.#slotQueued.delete(execution);
  }

  /**
   * Claims an execution and continues it here. False if someone else has it or it is not ours. With
   * a claim on the first transition, true once it is hosted here (as before, its first transition is
   * then on its way): should another executor get there first, that transition fails and the
   * execution leaves quietly, having run nothing.
   */
  #claim(executionId: string, reason: string, takeOverFrom?: readonly string[]): Promise<boolean> {
    if (this.#loads)
      return new Promise((resolve) =>
        this.#claimOnFirstTransition(executionId, reason, takeOverFrom, resolve),
      );
    return this.#claimThenHost(executionId, reason, takeOverFrom);
  }

  /** The claim as its own write (storages without `loadMany`): claim and snapshot, then host. */
  async #claimThenHost(
    executionId: string,
    reason: string,
    takeOverFrom: readonly string[] | undefined,
  ): Promise<boolean> {
    if (this.#closed || this.#executions.has(executionId) || this.#claiming.has(executionId)) return false;
    const delivered: SignalRecord[] = [];
    this.#claiming.set(executionId, delivered);
    try {
      const snapshot = await this.#claims.submit({
        executionId,
        owner: this.owner,
        takeOverFrom: takeOverFrom ?? (await this.#deadOwners()),
      });
      if (!snapshot) return false;
      if (!this.#sagas.has(snapshot.execution.saga)) {
        await this.#commits.submit({ executionId, owner: this.owner, execution: { release: true } });
        return false;
      }
      const execution = this.#host(snapshot, reason, undefined);
      for (const signal of delivered) execution?.deliver(signal);
      return execution !== undefined;
    } finally {
      this.#claiming.delete(executionId);
    }
  }

  /**
   * The claim without a write of its own: load the snapshot (a read, batched), decide, and let the
   * execution's first transition take ownership on the condition that its revision has not moved
   * (`Transition.claim`). Nothing runs before that transition commits; if it loses, nothing was
   * written. Callbacks rather than promises: a burst of signals wakes thousands at once.
   */
  #claimOnFirstTransition(
    executionId: string,
    reason: string,
    takeOverFrom: readonly string[] | undefined,
    done?: (claimed: boolean) => void,
  ): void {
    if (this.#closed || this.#executions.has(executionId) || this.#claiming.has(executionId)) {
      done?.(false);
      return;
    }
    const delivered: SignalRecord[] = [];
    this.#claiming.set(executionId, delivered);
    // Claiming lasts until the claim is settled (committed or lost); `done` hears once it is hosted.
    const settled = () => {
      if (this.#claiming.get(executionId) === delivered) this.#claiming.delete(executionId);
    };
    const finish = (claimed: boolean) => {
      settled();
      done?.(claimed);
    };
    const host = (snapshot: ExecutionSnapshot) => {
      if (this.#closed || this.#executions.has(executionId)) return finish(false);
      const revision = snapshot.execution.revision;
      snapshot.execution = { ...snapshot.execution, owner: this.owner };
      const execution = this.#host(snapshot, reason, revision, settled);
      if (!execution) return finish(false);
      // Signals persisted since the snapshot was read (the execution dedups those it already has).
      for (const signal of delivered) execution.deliver(signal);
      done?.(true);
    };
    this.#loads!.enqueue(executionId, (error, snapshot) => {
      if (error !== undefined) {
        this.logger.error({ err: error, executionId }, "could not load an execution to claim it");
        return finish(false);
      }
      if (!snapshot) return finish(false);
      const record = snapshot.execution;
      if (FINAL_STATUSES.includes(record.status) || record.status === "needs_attention") return finish(false);
      if (!this.#sagas.has(record.saga)) return finish(false);
      const owner = record.owner;
      if (owner === null || owner === this.owner) return host(snapshot);
      const takeOver = (dead: readonly string[]) => (dead.includes(owner) ? host(snapshot) : finish(false));
      if (takeOverFrom) return takeOver(takeOverFrom);
      this.#deadOwners().then(takeOver, (lookupError: unknown) => {
        this.logger.error({ err: lookupError, executionId }, "could not look up dead executors");
        finish(false);
      });
    });
  }

  /**
   * Continues a claimed execution here. An execution of a version newer than any registered here is
   * released for an up-to-date executor (rolling deploys); one of a retired version needs attention.
   */
  #host(
    snapshot: ExecutionSnapshot,
    reason: string,
    claimRevision: number | undefined,
    onClaim?: (won: boolean) => void,
  ): Execution | undefined {
    const record = snapshot.execution;
    const saga = this.#sagas.get(record.saga)?.get(record.version);
    if (saga) {
      const execution = new Execution(this, saga, snapshot, claimRevision, onClaim);
      this.#executions.set(record.id, execution);
      execution.resume(reason);
      return execution;
    }
    const versions = [...(this.#sagas.get(record.saga)?.keys() ?? [])];
    if (!this.#runsHere(record)) {
      // Claimed on the first transition: nothing was taken, nothing to give back.
      if (claimRevision === undefined)
        void this.#commits.submit({
          executionId: record.id,
          owner: this.owner,
          execution: { release: true },
        });
      return undefined;
    }
    const message = `saga ${record.saga} v${record.version} is not registered with this executor (it has ${versions.map((v) => `v${v}`).join(", ")}); register that version and resume the execution`;
    this.logger.error({ executionId: record.id }, message);
    const event = {
      executionId: record.id,
      seq: snapshot.nextEventSeq,
      type: "execution:needs_attention" as const,
      action: null,
      at: this.clock.now(),
      data: { error: message },
    };
    void this.#commits
      .submit({
        executionId: record.id,
        owner: this.owner,
        execution: {
          status: "needs_attention",
          error: { name: "NotRegisteredError", message, code: "not_registered" },
          release: true,
        },
        events: [event],
        ...(claimRevision !== undefined && { claim: { revision: claimRevision } }),
      })
      .then((result) => {
        if (result !== "ok") return;
        this.publish([{ ...event, saga: record.saga, runName: record.runName }]);
        this.#resolveWaiters(record.id);
      });
    return undefined;
  }

  /**
   * Whether this executor should take an execution: its saga is registered here, and its version too
   * or it is older than the newest registered one (retired: it will need attention). Executions of a
   * newer version are left to the executors that have it.
   */
  #runsHere(record: ExecutionRecord): boolean {
    if (this.#accept && !this.#accept(record)) return false;
    const versions = this.#sagas.get(record.saga);
    if (!versions) return false;
    return versions.has(record.version) || record.version < Math.max(...versions.keys());
  }

  /** Hands a persisted signal to its execution, here if it runs here, else by waking it if it waits unowned. */
  #deliver(signal: SignalRecord, known?: ExecutionRecord): void {
    const local = this.#executions.get(signal.executionId);
    if (local) return local.deliver(signal);
    // Being claimed: the snapshot may predate this signal; hand it over once the execution is hosted.
    const claiming = this.#claiming.get(signal.executionId);
    if (claiming) claiming.push(signal);
    else this.#wakeIfOurs(signal.executionId, "signal", known);
  }

  /** `known`: the record as the caller just read it; read again unless it says parked. */
  #wakeIfOurs(executionId: string, reason: string, known?: ExecutionRecord): void {
    const wake = (record: ExecutionRecord | undefined) => {
      if (!record || !this.#runsHere(record) || record.status !== "waiting" || record.owner !== null) return;
      if (this.#loads) this.#claimOnFirstTransition(executionId, reason, undefined);
      else
        this.#claimThenHost(executionId, reason, undefined).catch((error: unknown) =>
          this.logger.error({ err: error, executionId }, "could not claim an execution"),
        );
    };
    if (known?.status === "waiting" && known.owner === null) return wake(known);
    this.storage
      .getExecution(executionId)
      .then(wake, (error: unknown) =>
        this.logger.error({ err: error, executionId }, "could not read an execution to wake it"),
      );
  }

  /** Dead executors, looked up at most once per poll interval (a burst of wake-ups shares one lookup). */
  #deadOwners(): Promise<string[]> {
    const now = this.clock.now();
    if (!this.#deadOwnersCache || now - this.#deadOwnersCache.at > this.#options.pollIntervalMs) {
      this.#deadOwnersCache = { at: now, value: this.#findDeadOwners() };
    }
    return this.#deadOwnersCache.value;
  }

  #findDeadOwners(): Promise<string[]> {
    return findDeadExecutors(this.storage, this.#options.leaseMs, this.owner, this.clock.now());
  }

  async #heartbeat(): Promise<void> {
    try {
      const now = this.clock.now();
      this.#startedAt ??= now;
      await this.storage.upsertExecutor({
        id: this.owner,
        host: hostname(),
        pid: process.pid,
        startedAt: this.#startedAt,
        heartbeatAt: now,
      });
    } catch (error) {
      this.logger.error({ err: error }, "heartbeat failed");
    }
  }

  #scheduleWake(at: number): void {
    if (this.#closed || at >= this.#wakeAt) return;
    this.clock.clearTimeout(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = this.clock.setTimeout(() => void this.#wakeDue(), Math.max(0, at - this.clock.now()));
  }

  async #wakeDue(): Promise<void> {
    this.#wakeTimer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
    if (this.#closed) return;
    const sagas = this.sagaNames;
    const due = await this.storage.listExecutions({
      sagas,
      statuses: ["waiting"],
      owner: null,
      wakeAtOrBefore: this.clock.now(),
      limit: 1000,
    });
    await Promise.all(
      due.filter((record) => this.#runsHere(record)).map((record) => this.#claim(record.id, "timer")),
    );
    const next = await this.storage.nextWakeAt(sagas);
    if (next !== undefined) this.#scheduleWake(due.length === 1000 ? this.clock.now() : next);
  }

  #schedulePoll(): void {
    if (this.#closed) return;
    this.#pollTimer = this.clock.setTimeout(() => void this.#poll(), this.#options.pollIntervalMs);
  }

  #scheduleHeartbeat(): void {
    if (this.#closed) return;
    this.#heartbeatTimer = this.clock.setTimeout(() => {
      void this.#heartbeat();
      this.#scheduleHeartbeat();
    }, this.#options.heartbeatIntervalMs);
  }

  /** Picks up what other processes wrote: signals, cancel requests, wake-ups, ends of awaited executions. */
  async #poll(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      // Signals sent through this executor were delivered when sent: step over a run of them without
      // reading them back (after a burst of sends, that is every signal since the last poll).
      while (this.#sentHere.delete(this.#signalCursor + 1)) this.#signalCursor++;
      for (const signal of await this.storage.signalsAfter(this.#signalCursor, 1000)) {
        this.#signalCursor = Math.max(this.#signalCursor, signal.seq);
        // Signals sent through this executor were delivered when sent.
        if (!this.#sentHere.delete(signal.seq) && signal.consumedBy === null) this.#deliver(signal);
      }
      this.#mayHaveStaged ||= existsSync(join(this.dataDir, "staged"));
      const sagas = this.sagaNames;
      for (const record of await this.storage.listExecutions({ owner: this.owner, cancelRequested: true })) {
        const local = this.#executions.get(record.id);
        if (local && local.status !== "compensating") local.cancel(record.cancelRequested ?? "cancelled");
      }
      for (const record of await this.storage.listExecutions({
        sagas,
        statuses: ["waiting"],
        owner: null,
        cancelRequested: true,
      })) {
        if (this.#runsHere(record)) await this.#claim(record.id, "cancel");
      }
      const next = await this.storage.nextWakeAt(sagas);
      if (next !== undefined) this.#scheduleWake(next);
      for (const id of this.#waiters.keys()) {
        if (this.#executions.has(id)) continue;
        const record = await this.storage.getExecution(id);
        if (record && ENDED_OR_ATTENTION.includes(record.status)) this.#resolveWaiters(id);
      }
      // Take over from executors that died, within half a lease of their death being provable.
      if (this.clock.now() - this.#lastRecovery >= this.#options.leaseMs / 2) await this.recover();
    } catch (error) {
      this.logger.error({ err: error }, "executor poll failed");
    } finally {
      this.#polling = false;
      this.#schedulePoll();
    }
  }

  async #resultOf(executionId: string): Promise<ExecutionResult> {
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

  #assertOpen(): void {
    if (this.#closed) throw new SlipwayError("conflict", "executor is closed");
  }
}

let randomPool = Buffer.alloc(0);
let randomOffset = 0;

/** An id ordered by `now`; random bytes come from a pool because one `randomBytes` call per id is costly. */
function newId(now: number): string {
  if (randomOffset + 5 > randomPool.length) {
    randomPool = randomBytes(5 * 1024);
    randomOffset = 0;
  }
  const random = randomPool.toString("hex", randomOffset, randomOffset + 5);
  randomOffset += 5;
  return `${now.toString(36)}-${random}`;
}

/** Throws unless an existing execution is what a start with this saga and input would create. */
function assertSameStart(record: ExecutionRecord, saga: Saga, input: JsonObject): void {
  const what = `execution ${record.id} already exists`;
  const advice = "start with a new id, or repeat the original start to get the existing execution";
  if (record.saga !== saga.name || record.version !== saga.version)
    throw new IdempotencyConflictError(
      `${what} as saga ${record.saga} v${record.version}, not ${saga.name} v${saga.version}: ${advice}`,
    );
  const keys = new Set([...Object.keys(record.input), ...Object.keys(input)]);
  const differ = [...keys].filter((key) => !jsonEqual(record.input[key], input[key])).sort();
  if (differ.length > 0)
    throw new IdempotencyConflictError(
      `${what} with a different input (${differ.join(", ")} ${differ.length === 1 ? "differs" : "differ"}): ${advice}`,
    );
}

/** Deep equality of JSON values, ignoring the order of object keys. */
function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0))
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0))
    throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  return value;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
