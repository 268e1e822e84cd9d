/**
 * One execution in memory: the state machine that decides, after every change, what to persist and
 * what to run next. Decisions are synchronous; their writes go out as one transition, and nothing they
 * start (an action body, an undo, a poll check) begins before that transition is committed.
 * See docs/state-machine.md.
 */
import type { Logger } from "pino";
import type { Clock, ClockTimer } from "../clock.js";
import type { Saga } from "../definition/saga.js";
import type { ActionContext, ActionDefinition } from "../definition/types.js";
import {
  CancelledError,
  type ErrorInfo,
  SlipwayError,
  TimeoutError,
  toErrorInfo,
  ValidationError,
} from "../errors.js";
import { assertJson, type JsonObject } from "../json.js";
import { withLogContext } from "../logging.js";
import { type StagedRef, stagedPath } from "../staging/staging.js";
import type {
  CommitResult,
  CompensationCause,
  EventRecord,
  ExecutionPatch,
  ExecutionRecord,
  ExecutionSnapshot,
  ExecutionStatus,
  SignalRecord,
  StepRecord,
  Transition,
} from "../storage/types.js";
import { backoffDelay } from "./backoff.js";
import type { BatchCallback } from "./batcher.js";
import type { ExecutionEvent, LifecycleEventType } from "./events.js";
import { Abort, guard } from "./guard.js";

/** What an execution needs from the executor that hosts it. */
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
  progress(execution: Execution, action: string, message: string, data: JsonObject | undefined): void;
  /** Takes one of the executor's action slots; on false, the host calls `advance()` when one frees. */
  acquireSlot(execution: Execution): boolean;
  releaseSlot(): void;
  /** The execution was released to wait unowned (committed). */
  evicted(execution: Execution, wakeAt: number | null): void;
  /** The execution reached an end (or needs attention) and was released (committed). */
  ended(execution: Execution): void;
  /** The execution can no longer be driven from here (lost ownership, storage failure). */
  detached(execution: Execution, reason: unknown): void;
  /**
   * Its optimistic claim lost (someone changed it since it was loaded), or its creation was refused
   * (the id exists): nothing was written or run.
   */
  claimLost(execution: Execution): void;
}

type Phase = "run" | "undo" | "check";

interface InFlight {
  phase: Phase;
  abort: Abort;
}

/** Changes decided in one synchronous step, committed together. */
class Changes {
  readonly steps = new Map<string, StepRecord>();
  readonly events: EventRecord[] = [];
  readonly consumed: { seq: number; action: string }[] = [];
  readonly after: (() => void)[] = [];
  patch: ExecutionPatch | undefined;
  create: ExecutionRecord | undefined;

  get empty(): boolean {
    return (
      !this.create &&
      !this.patch &&
      this.steps.size === 0 &&
      this.events.length === 0 &&
      this.consumed.length === 0
    );
  }
}

const ENDED: ReadonlySet<ExecutionStatus> = new Set([
  "completed",
  "compensated",
  "cancelled",
  "needs_attention",
]);
const transitiveDependents = new WeakMap<Saga, Map<string, string[]>>();

export class Execution {
  readonly id: string;
  readonly saga: Saga;
  readonly host: ExecutionHost;
  record: ExecutionRecord;
  readonly #steps = new Map<string, StepRecord>();
  readonly #values: Record<string, unknown>;
  readonly #signals: SignalRecord[];
  readonly #seenSignals: Set<number>;
  readonly #inFlight = new Map<string, InFlight>();
  #nextSeq: number;
  #timer: ClockTimer | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #detached = false;
  #released = false;
  #wakeAfterRelease = false;
  #waitingForSlot = false;
  /** Optimistic claim still to be carried by the next commit: the revision the snapshot was loaded at. */
  #claimRevision: number | undefined;
  #claimLost = false;
  /** Told once whether the claim committed. */
  #onClaim: ((won: boolean) => void) | undefined;

  /**
   * `claimRevision`: the snapshot was loaded without claiming it; the first transition claims it
   * (`Transition.claim`), and nothing runs before that transition commits. `onClaim` learns the outcome.
   */
  constructor(
    host: ExecutionHost,
    saga: Saga,
    snapshot: ExecutionSnapshot,
    claimRevision?: number,
    onClaim?: (won: boolean) => void,
  ) {
    this.host = host;
    this.#claimRevision = claimRevision;
    this.#onClaim = onClaim;
    this.saga = saga;
    this.id = snapshot.execution.id;
    this.record = snapshot.execution;
    this.#values = { ...snapshot.execution.input };
    for (const step of snapshot.steps) {
      this.#steps.set(step.action, step);
      if (step.output && step.status !== "running" && step.status !== "failed")
        Object.assign(this.#values, step.output);
    }
    this.#signals = [...snapshot.signals];
    this.#seenSignals = new Set(snapshot.signals.map((s) => s.seq));
    this.#nextSeq = snapshot.nextEventSeq;
  }

  get status(): ExecutionStatus {
    return this.record.status;
  }

  get steps(): ReadonlyMap<string, StepRecord> {
    return this.#steps;
  }

  /** The values produced so far (the saga input included). */
  get values(): Readonly<Record<string, unknown>> {
    return this.#values;
  }

  /** Persists a new execution and starts its first actions. Resolves once the creation is committed. */
  create(): Promise<CommitResult> {
    const changes = new Changes();
    changes.create = this.record;
    this.#event(changes, "execution:started", null, { version: this.saga.version, input: this.record.input });
    this.#advance(changes);
    return new Promise((resolve) => this.#commit(changes, resolve));
  }

  /** Continues after a claim: recovery, a wake-up, a signal, a cancel request. */
  resume(reason: string): void {
    const changes = new Changes();
    if (this.record.status !== "waiting") this.#event(changes, "execution:resumed", null, { reason });
    this.#advance(changes);
    this.#commit(changes);
  }

  /** Re-runs the engine's decisions (a slot freed, a timer fired). */
  advance(): void {
    this.#waitingForSlot = false;
    const changes = new Changes();
    this.#advance(changes);
    this.#commit(changes);
  }

  /** A signal for this execution was persisted. */
  deliver(signal: SignalRecord): void {
    // The same signal may come twice (in-process send, then the storage poll); once consumed it is
    // no longer in #signals, hence the separate record of seqs seen.
    if (this.#seenSignals.has(signal.seq)) return;
    this.#seenSignals.add(signal.seq);
    this.#signals.push(signal);
    this.#signals.sort((a, b) => a.seq - b.seq);
    this.advance();
  }

  /** A cancel request was persisted. */
  cancel(reason: string): void {
    if (this.record.cancelRequested === null) this.record = { ...this.record, cancelRequested: reason };
    this.advance();
  }

  /** Stops driving this execution here without writing anything (shutdown, lost ownership). */
  detach(reason: unknown): void {
    if (this.#detached) return;
    this.#detached = true;
    this.#clearTimer();
    for (const flight of this.#inFlight.values()) flight.abort.abort(reason);
  }

  /** A signal or cancel arrived while this execution was leaving memory: claim it again. */
  get wakeAfterRelease(): boolean {
    return this.#wakeAfterRelease;
  }

  /** Whether an action body, undo or poll check is running. */
  get busy(): boolean {
    return this.#inFlight.size > 0;
  }

  // ---- decisions ----------------------------------------------------------------------------

  #advance(changes: Changes): void {
    if (this.#detached || ENDED.has(this.record.status)) return;
    if (this.#released) {
      // Leaving memory (its release is being committed): whatever arrived is in storage; the host
      // claims it again once the release is committed.
      this.#wakeAfterRelease = true;
      return;
    }
    const now = this.host.clock.now();
    const status = this.record.status;
    if (
      this.record.cancelRequested !== null &&
      (status === "running" || status === "waiting" || status === "failed")
    )
      this.#beginCompensation(changes, { kind: "cancel", reason: this.record.cancelRequested });
    if (this.record.status === "compensating") this.#compensate(changes, now);
    else if (this.record.status === "failed") this.#settleHold(changes);
    else this.#forward(changes, now);
  }

  #forward(changes: Changes, now: number): void {
    let blocked = false;
    for (const name of this.saga.order) {
      if (this.#inFlight.has(name)) continue;
      const action = this.saga.actions.get(name)!;
      const step = this.#steps.get(name);
      if (!step) {
        if (action.dependsOn.every((dep) => this.#steps.get(dep)?.status === "completed"))
          blocked = !this.#begin(changes, action, now) || blocked;
      } else if (step.status === "running") {
        // In flight when its process died: run it again, same idempotency key.
        blocked = !this.#startAttempt(changes, action, now) || blocked;
      } else if (step.status === "retrying") {
        if (retryAt(step) <= now) blocked = !this.#startAttempt(changes, action, now) || blocked;
      } else if (step.status === "waiting") {
        blocked = !this.#checkWait(changes, action, step, now) || blocked;
      }
      if (this.record.status === "compensating") return this.#compensate(changes, now);
    }
    if (this.saga.order.every((name) => this.#steps.get(name)?.status === "completed")) {
      return this.#end(changes, "completed");
    }
    if (blocked) return this.#waitForSlot();
    const nextAt = this.#nextTimeTrigger();
    if (this.#inFlight.size > 0) return this.#armTimer(nextAt);
    const hasWaits = [...this.#steps.values()].some((s) => s.status === "waiting" || s.status === "retrying");
    if (!hasWaits) {
      // Nothing runs, nothing waits, not done: a bug, but never a silent hang.
      return this.#needsAttention(changes, {
        name: "StalledError",
        message: "execution has nothing to run or wait for but is not complete",
      });
    }
    if (nextAt === undefined || nextAt - now >= this.host.evictAfterMs) this.#evict(changes, nextAt ?? null);
    else this.#armTimer(nextAt);
  }

  /** Starts a fresh action. False when it needs a slot and none is free. */
  #begin(changes: Changes, action: ActionDefinition, now: number): boolean {
    if (action.kind === "task") return this.#startAttempt(changes, action, now);
    const state: JsonObject = {};
    let waitingFor: JsonObject;
    if (action.kind === "signal") {
      if (action.skip) {
        // A wait that need not happen (its `if` is false, say) completes at once with what skip gave.
        let given: unknown;
        try {
          given = action.skip(this.#inputOf(action));
        } catch (error) {
          this.#setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
          this.#fail(changes, action, error, now, true);
          return true;
        }
        if (given !== undefined) {
          this.#setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
          const output = this.#parseOutput(action, given);
          if (output instanceof Error) this.#fail(changes, action, output, now, true);
          else this.#complete(changes, action, output, now);
          return true;
        }
      }
      state.signal = action.signalName!;
      waitingFor = {};
    } else if (action.kind === "sleep") {
      let until: number;
      try {
        until =
          action.sleepMs !== undefined
            ? now + action.sleepMs
            : toTime(action.sleepUntil!(this.#inputOf(action)));
      } catch (error) {
        // User code computing the time failed: this action fails, nothing else does.
        this.#setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
        this.#fail(changes, action, error, now, true);
        return true;
      }
      state.until = until;
      waitingFor = { until };
    } else {
      state.nextCheckAt = now;
      waitingFor = { poll: action.everyMs! };
    }
    if (action.timeoutMs !== null) state.deadline = now + action.timeoutMs;
    const step = this.#setStep(changes, action.name, {
      status: "waiting",
      attempt: 1,
      state,
      startedAt: now,
    });
    this.#markRunning(changes);
    this.#event(changes, "action:waiting", action.name, { ...waitingFor, ...state });
    return this.#checkWait(changes, action, step, now);
  }

  /** Completes or fails a waiting action when its condition holds; starts a due poll check. */
  #checkWait(changes: Changes, action: ActionDefinition, step: StepRecord, now: number): boolean {
    const state = step.state ?? {};
    if (action.kind === "signal") {
      const index = this.#signals.findIndex((s) => s.name === action.signalName);
      if (index >= 0) {
        const [signal] = this.#signals.splice(index, 1);
        changes.consumed.push({ seq: signal!.seq, action: action.name });
        this.#event(changes, "signal:received", action.name, { signal: signal!.name, seq: signal!.seq });
        const payload = action.fromPayload ? action.fromPayload(signal!.payload) : signal!.payload;
        const output = this.#parseOutput(action, payload);
        if (output instanceof Error) this.#fail(changes, action, output, now);
        else this.#complete(changes, action, output, now);
        return true;
      }
    } else if (action.kind === "sleep") {
      if ((state.until as number) <= now) {
        this.#complete(changes, action, {}, now);
        return true;
      }
    }
    const deadline = state.deadline as number | undefined;
    if (deadline !== undefined && deadline <= now) {
      const what =
        action.kind === "signal"
          ? `no signal "${action.signalName}" arrived`
          : action.kind === "poll"
            ? "the poll did not report done"
            : "it did not finish";
      this.#fail(changes, action, new TimeoutError(`${what} within ${action.timeoutMs} ms`), now, true);
      return true;
    }
    if (action.kind === "poll" && (state.nextCheckAt as number) <= now) {
      if (!this.#reserve(action.name, "check")) return false;
      const flight = this.#inFlight.get(action.name)!;
      changes.after.push(() => this.#execute(action, "check", step.attempt, flight.abort));
    }
    return true;
  }

  #startAttempt(changes: Changes, action: ActionDefinition, now: number): boolean {
    if (action.kind === "poll") {
      // A poll "retry" resumes polling.
      const prev = this.#steps.get(action.name)!;
      const state = { ...deadlineOf(prev), nextCheckAt: now };
      this.#setStep(changes, action.name, { status: "waiting", state });
      return this.#checkWait(changes, action, this.#steps.get(action.name)!, now);
    }
    if (!this.#reserve(action.name, "run")) return false;
    const prev = this.#steps.get(action.name);
    const attempt = (prev?.attempt ?? 0) + 1;
    this.#setStep(changes, action.name, {
      status: "running",
      attempt,
      state: null,
      startedAt: prev?.startedAt ?? now,
    });
    this.#markRunning(changes);
    this.#event(
      changes,
      "action:started",
      action.name,
      prev?.status === "running" ? { attempt, recovered: true } : { attempt },
    );
    const flight = this.#inFlight.get(action.name)!;
    changes.after.push(() => this.#execute(action, "run", attempt, flight.abort));
    return true;
  }

  #complete(changes: Changes, action: ActionDefinition, output: JsonObject, now: number): void {
    this.#setStep(changes, action.name, {
      status: "completed",
      output,
      error: null,
      state: null,
      endedAt: now,
    });
    Object.assign(this.#values, output);
    this.#markRunning(changes);
    this.#event(changes, "action:completed", action.name, { attempt: this.#steps.get(action.name)!.attempt });
  }

  /** An attempt failed: retry after a backoff, or fail for good and compensate. */
  #fail(changes: Changes, action: ActionDefinition, error: unknown, now: number, final = false): void {
    const prev = this.#steps.get(action.name)!;
    const failures = prev.failures + 1;
    const info = toErrorInfo(error);
    // Compensating or held: what fails now just fails, nothing is retried.
    const cancelled = this.record.status === "compensating" || this.record.status === "failed";
    if (!final && !cancelled && failures < action.retry.maxAttempts) {
      const at = now + backoffDelay(action.retry, failures);
      this.#setStep(changes, action.name, {
        status: "retrying",
        failures,
        error: info,
        state: { ...deadlineOf(prev), retryAt: at },
      });
      this.#event(changes, "action:failed", action.name, {
        attempt: prev.attempt,
        error: info.message,
        retryAt: at,
      });
      return;
    }
    this.#setStep(changes, action.name, {
      status: "failed",
      failures,
      error: info,
      state: null,
      endedAt: now,
    });
    this.#event(changes, "action:failed", action.name, {
      attempt: prev.attempt,
      error: info.message,
      final: true,
    });
    if (cancelled) return;
    const cause: CompensationCause = { kind: "failure", action: action.name, error: info };
    if (this.saga.onFailure === "hold") this.#hold(changes, cause);
    else this.#beginCompensation(changes, cause);
  }

  /** onFailure "hold": start nothing new, stop what runs, keep what completed; `retry` continues. */
  #hold(changes: Changes, cause: CompensationCause & { kind: "failure" }): void {
    this.#patch(changes, { status: "failed", cause, wakeAt: null });
    this.#event(changes, "execution:failed", null, { action: cause.action, error: cause.error.message });
    const reason = new CancelledError(`action "${cause.action}" failed; the execution is held`);
    for (const flight of this.#inFlight.values()) flight.abort.abort(reason);
  }

  /** A held execution leaves memory once what was running has settled. */
  #settleHold(changes: Changes): void {
    if (this.#inFlight.size > 0) return;
    const now = this.host.clock.now();
    for (const [name, step] of this.#steps) {
      if (step.status === "running" || step.status === "retrying" || step.status === "waiting") {
        const stopped = toErrorInfo(new CancelledError("stopped because the execution is held"));
        this.#setStep(changes, name, {
          status: "failed",
          error: step.error ?? stopped,
          state: null,
          endedAt: now,
        });
      }
    }
    this.#released = true;
    this.#patch(changes, { release: true });
    this.#clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  #beginCompensation(changes: Changes, cause: CompensationCause): void {
    this.#patch(changes, { status: "compensating", cause, wakeAt: null });
    this.#event(
      changes,
      "execution:compensating",
      null,
      cause.kind === "cancel"
        ? cause
        : { kind: cause.kind, action: cause.action, error: cause.error.message },
    );
    const reason = new CancelledError(
      cause.kind === "cancel" ? `execution cancelled: ${cause.reason}` : `action "${cause.action}" failed`,
    );
    for (const flight of this.#inFlight.values()) if (flight.phase !== "undo") flight.abort.abort(reason);
  }

  /** Undoes completed actions, dependents before their dependencies; ends when nothing is left. */
  #compensate(changes: Changes, now: number): void {
    // Whatever was started but is not running here any more will never complete now.
    for (const [name, step] of this.#steps) {
      if (this.#inFlight.has(name)) continue;
      if (step.status === "running" || step.status === "retrying" || step.status === "waiting") {
        const interrupted = toErrorInfo(new CancelledError("stopped by compensation before it completed"));
        this.#setStep(changes, name, {
          status: "failed",
          error: step.error ?? interrupted,
          state: null,
          endedAt: now,
        });
        this.#event(changes, "action:failed", name, {
          attempt: step.attempt,
          error: interrupted.message,
          final: true,
        });
      }
    }
    let blocked = false;
    for (let i = this.saga.order.length - 1; i >= 0; i--) {
      const name = this.saga.order[i]!;
      const action = this.saga.actions.get(name)!;
      const step = this.#steps.get(name);
      if (this.#inFlight.has(name) || !step || !action.undo) continue;
      const due = step.status === "completed" || (step.status === "undoing" && retryAt(step) <= now);
      if (!due || !this.#dependentsUndone(name)) continue;
      if (!this.#startUndo(changes, action, step, now)) blocked = true;
    }
    if (blocked) return this.#waitForSlot();
    if (this.#inFlight.size > 0 || [...this.#steps.values()].some((s) => s.status === "undoing"))
      return this.#armTimer(this.#nextTimeTrigger());
    // Nothing runs or will run by itself: either everything is undone, or an undo failed for good
    // (and what depends on it stays in place).
    const failed = [...this.#steps.values()].find((s) => s.status === "undo_failed");
    if (failed) {
      const error = failed.undoError ?? { name: "Error", message: "undo failed" };
      return this.#needsAttention(changes, {
        ...error,
        message: `undo of "${failed.action}" failed: ${error.message}`,
      });
    }
    this.#end(changes, this.record.cause?.kind === "cancel" ? "cancelled" : "compensated");
  }

  /** True when nothing that depends on `name` still has work done that must be undone first. */
  #dependentsUndone(name: string): boolean {
    for (const dependent of this.#dependentsOf(name)) {
      if (this.#inFlight.has(dependent)) return false;
      const step = this.#steps.get(dependent);
      if (!step) continue;
      const hasUndo = this.saga.actions.get(dependent)!.undo !== undefined;
      if (step.status === "undoing" || step.status === "undo_failed") return false;
      if (step.status === "completed" && hasUndo) return false;
    }
    return true;
  }

  #dependentsOf(name: string): string[] {
    let table = transitiveDependents.get(this.saga);
    if (!table) {
      table = new Map();
      for (const action of this.saga.actions.keys()) table.set(action, []);
      for (const action of this.saga.order) {
        const seen = new Set<string>();
        const stack = [...this.saga.actions.get(action)!.dependsOn];
        while (stack.length > 0) {
          const dep = stack.pop()!;
          if (seen.has(dep)) continue;
          seen.add(dep);
          table.get(dep)!.push(action);
          stack.push(...this.saga.actions.get(dep)!.dependsOn);
        }
      }
      transitiveDependents.set(this.saga, table);
    }
    return table.get(name) ?? [];
  }

  #startUndo(changes: Changes, action: ActionDefinition, step: StepRecord, _now: number): boolean {
    if (!this.#reserve(action.name, "undo")) return false;
    const undoAttempt = step.undoAttempt + 1;
    this.#setStep(changes, action.name, { status: "undoing", undoAttempt, state: null });
    this.#event(changes, "undo:started", action.name, { attempt: undoAttempt });
    const flight = this.#inFlight.get(action.name)!;
    changes.after.push(() => this.#execute(action, "undo", undoAttempt, flight.abort));
    return true;
  }

  #end(changes: Changes, status: "completed" | "compensated" | "cancelled"): void {
    const now = this.host.clock.now();
    this.#patch(changes, { status, endedAt: now, wakeAt: null, release: true });
    this.#event(changes, `execution:${status}`, null, null);
    this.#clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  #needsAttention(changes: Changes, error: ErrorInfo): void {
    this.#patch(changes, { status: "needs_attention", error, wakeAt: null, release: true });
    this.#event(changes, "execution:needs_attention", null, { error: error.message });
    this.#clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  /** Nothing runs: persist what wakes it and leave memory. */
  #evict(changes: Changes, wakeAt: number | null): void {
    this.#released = true;
    const patch: ExecutionPatch = { wakeAt, release: true };
    if (this.record.status !== "waiting") {
      patch.status = "waiting";
      this.#event(changes, "execution:waiting", null, { wakeAt });
    }
    this.#patch(changes, patch);
    this.#clearTimer();
    changes.after.push(() => this.host.evicted(this, wakeAt));
  }

  #markRunning(changes: Changes): void {
    if (this.record.status === "waiting") this.#patch(changes, { status: "running", wakeAt: null });
  }

  // ---- running bodies -----------------------------------------------------------------------

  #reserve(name: string, phase: Phase): boolean {
    if (this.#inFlight.size >= this.host.perExecutionConcurrency) return false;
    if (!this.host.acquireSlot(this)) return false;
    this.#inFlight.set(name, { phase, abort: new Abort() });
    return true;
  }

  async #execute(action: ActionDefinition, phase: Phase, attempt: number, abort: Abort): Promise<void> {
    const step = this.#steps.get(action.name)!;
    const ctx = this.#context(action, phase, attempt, abort);
    const input = this.#inputOf(action);
    const logContext = {
      executionId: this.id,
      ...(this.record.runName !== null && { runName: this.record.runName }),
      saga: this.saga.name,
      action: action.name,
      attempt,
      phase,
    };
    // A poll's timeout bounds the whole poll, so a hanging check is cut off at the poll's deadline.
    const deadline = phase === "check" ? (step.state?.deadline as number | undefined) : undefined;
    const timeoutMs =
      phase === "undo"
        ? action.undoTimeoutMs
        : phase === "run"
          ? action.timeoutMs
          : deadline === undefined
            ? null
            : Math.max(1, deadline - this.host.clock.now());
    const timeoutMessage =
      phase === "check"
        ? `the poll did not report done within ${action.timeoutMs} ms`
        : `${phase === "undo" ? "undo of " : ""}action "${action.name}" timed out after ${timeoutMs} ms`;
    const body =
      phase === "run"
        ? () => action.run!(input, ctx)
        : phase === "undo"
          ? () => action.undo!(input, step.output ?? {}, ctx)
          : () => action.check!(input, ctx);
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      const value = await guard(
        () => withLogContext(logContext, body),
        abort,
        timeoutMs,
        this.host.abortGraceMs,
        timeoutMessage,
        this.host.clock,
      );
      outcome = { ok: true, value };
    } catch (error) {
      outcome = { ok: false, error };
    }
    this.#inFlight.delete(action.name);
    this.host.releaseSlot();
    if (this.#detached) return;
    const changes = new Changes();
    const now = this.host.clock.now();
    if (phase === "undo") this.#settleUndo(changes, action, outcome, now);
    else if (!outcome.ok)
      this.#fail(changes, action, outcome.error, now, deadline !== undefined && deadline <= now);
    else if (phase === "run") {
      const output = this.#parseOutput(action, outcome.value);
      if (output instanceof Error) this.#fail(changes, action, output, now);
      else this.#complete(changes, action, output, now);
    } else this.#settleCheck(changes, action, outcome.value, now);
    this.#advance(changes);
    this.#commit(changes);
  }

  #settleCheck(changes: Changes, action: ActionDefinition, result: unknown, now: number): void {
    const report = result as { done?: unknown; output?: unknown; message?: unknown } | null;
    if (report?.done === true) {
      const output = this.#parseOutput(action, report.output);
      if (output instanceof Error) this.#fail(changes, action, output, now);
      else this.#complete(changes, action, output, now);
      return;
    }
    if (report?.done !== false) {
      this.#fail(
        changes,
        action,
        new ValidationError("invalid_output", "a poll check must return { done: boolean }"),
        now,
      );
      return;
    }
    if (this.record.status === "compensating") return;
    const step = this.#steps.get(action.name)!;
    const state: JsonObject = { ...step.state, nextCheckAt: now + action.everyMs! };
    if (typeof report.message === "string") state.message = report.message;
    this.#setStep(changes, action.name, { status: "waiting", state });
  }

  #settleUndo(
    changes: Changes,
    action: ActionDefinition,
    outcome: { ok: true; value: unknown } | { ok: false; error: unknown },
    now: number,
  ): void {
    const step = this.#steps.get(action.name)!;
    if (outcome.ok) {
      this.#setStep(changes, action.name, { status: "undone", undoError: null, state: null, endedAt: now });
      this.#event(changes, "undo:completed", action.name, { attempt: step.undoAttempt });
      return;
    }
    const error = toErrorInfo(outcome.error);
    if (step.undoAttempt < action.undoRetry.maxAttempts) {
      const at = now + backoffDelay(action.undoRetry, step.undoAttempt);
      this.#setStep(changes, action.name, { undoError: error, state: { retryAt: at } });
      this.#event(changes, "undo:failed", action.name, {
        attempt: step.undoAttempt,
        error: error.message,
        retryAt: at,
      });
    } else {
      this.#setStep(changes, action.name, { status: "undo_failed", undoError: error, state: null });
      this.#event(changes, "undo:failed", action.name, {
        attempt: step.undoAttempt,
        error: error.message,
        final: true,
      });
    }
  }

  #context(action: ActionDefinition, phase: Phase, attempt: number, abort: Abort): ActionContext {
    return new Context(this, action.name, phase, attempt, abort);
  }

  #inputOf(action: ActionDefinition): Record<string, unknown> {
    const input: Record<string, unknown> = {};
    for (const name of action.reads) input[name] = this.#values[name];
    return input;
  }

  /** Validates an action's output against its schema; returns the error rather than throwing. */
  #parseOutput(action: ActionDefinition, raw: unknown): JsonObject | Error {
    if (!action.outputSchema) return {};
    const parsed = action.outputSchema.safeParse(raw ?? {});
    if (!parsed.success) {
      const detail = parsed.error.issues
        .map((i) => `${i.path.join(".") || "(output)"}: ${i.message}`)
        .join("; ");
      return new ValidationError(
        "invalid_output",
        `action "${action.name}" produced an invalid output: ${detail}`,
      );
    }
    try {
      assertJson(parsed.data, `output of action "${action.name}"`);
    } catch (error) {
      return new ValidationError("invalid_output", (error as Error).message);
    }
    return parsed.data as JsonObject;
  }

  // ---- timers and slots ---------------------------------------------------------------------

  /** Earliest time at which some step needs attention (retry, deadline, sleep end, next poll check). */
  #nextTimeTrigger(): number | undefined {
    let next = Number.POSITIVE_INFINITY;
    for (const [name, step] of this.#steps) {
      if (this.#inFlight.has(name) || !step.state) continue;
      const s = step.state;
      for (const key of ["retryAt", "deadline", "until", "nextCheckAt"] as const) {
        const at = s[key];
        if (typeof at === "number" && at < next) next = at;
      }
    }
    return Number.isFinite(next) ? next : undefined;
  }

  #armTimer(at: number | undefined): void {
    if (at === undefined) return this.#clearTimer();
    if (this.#timer && this.#timerAt <= at) return;
    this.#clearTimer();
    this.#timerAt = at;
    this.#timer = this.host.clock.setTimeout(
      () => {
        this.#timer = undefined;
        this.#timerAt = Number.POSITIVE_INFINITY;
        this.advance();
      },
      Math.max(0, at - this.host.clock.now()),
    );
  }

  #clearTimer(): void {
    if (this.#timer) this.host.clock.clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = Number.POSITIVE_INFINITY;
  }

  #waitForSlot(): void {
    this.#waitingForSlot = true;
    this.#armTimer(this.#nextTimeTrigger());
  }

  get waitingForSlot(): boolean {
    return this.#waitingForSlot;
  }

  // ---- persistence --------------------------------------------------------------------------

  #setStep(changes: Changes, action: string, fields: Partial<StepRecord>): StepRecord {
    const prev = this.#steps.get(action) ?? blankStep(this.id, action);
    const step: StepRecord = { ...prev, ...fields, updatedAt: this.host.clock.now() };
    this.#steps.set(action, step);
    changes.steps.set(action, step);
    return step;
  }

  #patch(changes: Changes, patch: ExecutionPatch): void {
    const { release, ...fields } = patch;
    this.record = { ...this.record, ...fields, ...(release && { owner: null }) };
    changes.patch = { ...changes.patch, ...patch };
  }

  #event(changes: Changes, type: LifecycleEventType, action: string | null, data: JsonObject | null): void {
    changes.events.push({
      executionId: this.id,
      seq: this.#nextSeq++,
      type,
      action,
      at: this.host.clock.now(),
      data,
    });
  }

  /** Commits the changes, then publishes their events and runs what they start; `done` gets the result. */
  #commit(changes: Changes, done?: (result: CommitResult) => void): void {
    // A pending claim is committed even with nothing else to write: nothing may run before it.
    if (changes.empty && this.#claimRevision === undefined) {
      for (const fn of changes.after) fn();
      done?.("ok");
      return;
    }
    const transition: Transition = { executionId: this.id, owner: this.host.owner };
    if (changes.create) transition.create = changes.create;
    if (changes.patch) transition.execution = changes.patch;
    if (changes.steps.size > 0) transition.steps = [...changes.steps.values()];
    if (changes.events.length > 0) transition.events = changes.events;
    if (changes.consumed.length > 0) transition.consumeSignals = changes.consumed;
    const claiming = this.#claimRevision !== undefined;
    if (claiming) {
      transition.claim = { revision: this.#claimRevision! };
      this.#claimRevision = undefined;
    }
    // A callback, not a promise: thousands of transitions may be in one group commit.
    this.host.commit(transition, (error, result) => {
      if (error !== undefined) {
        if (claiming) this.#settleClaim(false);
        this.detach(error);
        this.host.detached(this, error);
        done?.("not_owner");
        return;
      }
      try {
        this.#committed(changes, result!, claiming);
      } finally {
        done?.(result!);
      }
    });
  }

  #settleClaim(won: boolean): void {
    const onClaim = this.#onClaim;
    this.#onClaim = undefined;
    onClaim?.(won);
  }

  #committed(changes: Changes, result: CommitResult, claiming: boolean): void {
    if (claiming) this.#settleClaim(result === "ok");
    if (result !== "ok" && (claiming || this.#claimLost || changes.create)) {
      // Someone took or changed it since it was loaded, or created it first: no transition of ours
      // committed, so no body started; give the slots back and leave quietly (later commits fail
      // the same way).
      if (!this.#claimLost) {
        this.#claimLost = true;
        const why = changes.create ? "created elsewhere" : "claimed elsewhere";
        this.detach(new SlipwayError("conflict", `execution ${this.id}: ${why}`));
        for (let i = 0; i < this.#inFlight.size; i++) this.host.releaseSlot();
        this.#inFlight.clear();
        this.host.claimLost(this);
      }
      return;
    }
    if (result !== "ok") {
      this.detach(new SlipwayError("conflict", `execution ${this.id}: commit refused (${result})`));
      this.host.detached(this, result);
      return;
    }
    if (changes.events.length > 0 && this.host.listening(this.id)) {
      this.host.publish(
        changes.events.map((e) => ({
          type: e.type as LifecycleEventType,
          executionId: this.id,
          saga: this.saga.name,
          runName: this.record.runName,
          seq: e.seq,
          action: e.action,
          at: e.at,
          data: e.data,
        })),
      );
    }
    for (const fn of changes.after) fn();
  }
}

/** What an action body sees; a class so that each attempt allocates one object, not a bag of closures. */
class Context implements ActionContext {
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
    return this.phase === "undo" ? `${key}/undo` : key;
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

function blankStep(executionId: string, action: string): StepRecord {
  return {
    executionId,
    action,
    status: "running",
    attempt: 0,
    failures: 0,
    output: null,
    error: null,
    state: null,
    undoAttempt: 0,
    undoError: null,
    startedAt: null,
    endedAt: null,
    updatedAt: 0,
  };
}

/** The overall deadline a poll or wait keeps across retries, as a state fragment. */
function deadlineOf(step: StepRecord): JsonObject {
  const deadline = step.state?.deadline;
  return typeof deadline === "number" ? { deadline } : {};
}

function retryAt(step: StepRecord): number {
  const at = step.state?.retryAt;
  return typeof at === "number" ? at : 0;
}

function toTime(value: Date | number): number {
  const time = value instanceof Date ? value.getTime() : value;
  if (!Number.isFinite(time)) throw new TypeError(`sleep until: not a valid time (${String(value)})`);
  return time;
}
