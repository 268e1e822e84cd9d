/**
 * One run in memory: the state machine that decides, after every change, what to persist and
 * what to run next. Decisions are synchronous; their writes go out as one transition, and nothing they
 * start (an action body, an undo, a poll check) begins before that transition is committed.
 * Built in layers: its state and commit protocol (run-state.ts), its decisions (decisions.ts), its
 * child steps (child-steps.ts), and here its entry points, the running of bodies and what their outcomes change. See docs/state-machine.md.
 */
import { undoOutput } from "../definition/saga.js";
import type { ActionDefinition } from "../definition/types.js";
import { toErrorInfo, ValidationError } from "../errors.js";
import type { JsonObject } from "../json.js";
import { withLogContext } from "../logging.js";
import type { CommitResult, SignalRecord } from "../storage/types.js";
import { Context } from "./action-context.js";
import { backoffDelay } from "./backoff.js";
import { ChildSteps } from "./child-steps.js";
import { ActionScope } from "./faults.js";
import { type Abort, guard } from "./guard.js";
import { Changes, type Phase } from "./run-state.js";

export class HostedRun extends ChildSteps {
  /** Persists a new run and starts its first actions. Resolves once the creation is committed. */
  create(): Promise<CommitResult> {
    const changes = new Changes();
    changes.create = this.record;
    this.event(changes, "run:started", null, { version: this.saga.version, input: this.record.input });
    this.decide(changes);
    // Storage throwing (a full disk) rejects with its error, so the caller says why.
    return new Promise((resolve, reject) =>
      this.commit(changes, (result, error) => (error === undefined ? resolve(result) : reject(error))),
    );
  }

  /** Continues after a claim: recovery, a wake-up, a signal, a cancel request. */
  resume(reason: string): void {
    const changes = new Changes();
    if (this.record.status !== "waiting") this.event(changes, "run:resumed", null, { reason });
    this.decide(changes);
    this.commit(changes);
  }

  /** Re-runs the engine's decisions (a slot freed, a timer fired). */
  advance(): void {
    this.slotWanted = false;
    const changes = new Changes();
    this.decide(changes);
    this.commit(changes);
  }

  /** A signal for this run was persisted. */
  deliver(signal: SignalRecord): void {
    // The same signal may come twice (in-process send, then the storage poll); once consumed it is
    // no longer pending, hence the separate record of seqs seen.
    if (this.seenSignals.has(signal.seq)) return;
    this.seenSignals.add(signal.seq);
    this.pendingSignals.push(signal);
    this.pendingSignals.sort((a, b) => a.seq - b.seq);
    this.advance();
  }

  /** A cancel request was persisted. */
  cancel(reason: string): void {
    if (this.record.cancelRequested === null) this.record = { ...this.record, cancelRequested: reason };
    this.advance();
  }

  // ---- running bodies -----------------------------------------------------------------------

  protected async execute(
    action: ActionDefinition,
    phase: Phase,
    attempt: number,
    abort: Abort,
  ): Promise<void> {
    const step = this.stepRecords.get(action.name)!;
    const flight = this.inFlight.get(action.name);
    if (flight) flight.started = true;
    const ctx = new Context(this, action.name, phase, attempt, abort);
    const input = this.inputOf(action);
    const scope = new ActionScope(
      {
        runId: this.id,
        runName: this.record.runName,
        saga: this.saga.name,
        action: action.name,
        attempt,
        phase,
      },
      abort,
      this.host.logger,
    );
    // A poll's timeout bounds the whole poll, so a hanging check is cut off at the poll's deadline.
    const deadline = phase === "check" ? (step.state?.deadline as number | undefined) : undefined;
    const timeoutMs =
      phase === "undo"
        ? action.undoTimeoutMs
        : phase === "cleanup"
          ? (action.cleanupTimeoutMs ?? null)
          : phase === "run"
            ? action.timeoutMs
            : deadline === undefined
              ? null
              : Math.max(1, deadline - this.host.clock.now());
    const timeoutMessage =
      phase === "check"
        ? `the poll did not report done within ${action.timeoutMs} ms`
        : `${phase === "run" ? "" : `${phase} of `}action "${action.name}" timed out after ${timeoutMs} ms`;
    const body =
      phase === "run"
        ? () => action.run!(input, ctx)
        : phase === "undo"
          ? () => action.undo!(input, undoOutput(action, step.output ?? {}), ctx)
          : phase === "cleanup"
            ? () => action.cleanup!(input, ctx)
            : () => action.check!(input, ctx);
    let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
    try {
      const value = await guard(
        () => withLogContext(scope, body),
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
    this.inFlight.delete(action.name);
    this.host.releaseSlot();
    if (this.detached) return;
    const changes = new Changes();
    const now = this.host.clock.now();
    if (phase === "undo") this.#settleUndo(changes, action, outcome, now);
    else if (phase === "cleanup") this.#settleCleanup(changes, action, outcome, now);
    else if (!outcome.ok)
      this.fail(changes, action, outcome.error, now, deadline !== undefined && deadline <= now);
    else if (phase === "run") {
      const output = this.parseOutput(action, outcome.value);
      if (output instanceof Error) this.fail(changes, action, output, now);
      else this.complete(changes, action, output, now);
    } else this.#settleCheck(changes, action, outcome.value, now);
    this.decide(changes);
    if (ctx.timed !== undefined) withTiming(changes, action.name, ctx.timed);
    this.commit(changes);
  }

  // ---- what a body returned -------------------------------------------------------------------

  /** A poll check returned: done (its output), not done (the next check is due), or something else. */
  #settleCheck(changes: Changes, action: ActionDefinition, result: unknown, now: number): void {
    const report = result as { done?: unknown; output?: unknown; message?: unknown } | null;
    if (report?.done === true) {
      const output = this.parseOutput(action, report.output);
      if (output instanceof Error) this.fail(changes, action, output, now);
      else this.complete(changes, action, output, now);
      return;
    }
    if (report?.done !== false) {
      this.fail(
        changes,
        action,
        new ValidationError("invalid_output", "a poll check must return { done: boolean }"),
        now,
      );
      return;
    }
    if (this.record.status === "compensating") return;
    const step = this.stepRecords.get(action.name)!;
    const state: JsonObject = { ...step.state, nextCheckAt: now + action.everyMs! };
    if (typeof report.message === "string") state.message = report.message;
    this.setStep(changes, action.name, { status: "waiting", state });
  }

  /**
   * A cleanup settled, well or not (its failure is reported and stops nothing): the attempt it
   * cleaned up after is settled now, as failed (and retried, or not) or, after a crash, run again.
   */
  #settleCleanup(
    changes: Changes,
    action: ActionDefinition,
    outcome: { ok: true; value: unknown } | { ok: false; error: unknown },
    now: number,
  ): void {
    const step = this.stepRecords.get(action.name)!;
    const failure = step.state?.failure;
    if (outcome.ok) this.event(changes, "cleanup:completed", action.name, { attempt: step.attempt });
    else
      this.event(changes, "cleanup:failed", action.name, {
        attempt: step.attempt,
        error: toErrorInfo(outcome.error).message,
      });
    this.setStep(changes, action.name, { state: { cleaned: step.attempt } });
    if (failure !== undefined) this.fail(changes, action, failure, now);
  }

  /** An undo settled: undone, retried after its backoff, or failed for good. */
  #settleUndo(
    changes: Changes,
    action: ActionDefinition,
    outcome: { ok: true; value: unknown } | { ok: false; error: unknown },
    now: number,
  ): void {
    const step = this.stepRecords.get(action.name)!;
    if (outcome.ok) {
      this.setStep(changes, action.name, { status: "undone", undoError: null, state: null, endedAt: now });
      this.event(changes, "undo:completed", action.name, { attempt: step.undoAttempt });
      return;
    }
    const error = toErrorInfo(outcome.error);
    if (step.undoAttempt < action.undoRetry.maxAttempts) {
      const at = now + backoffDelay(action.undoRetry, step.undoAttempt);
      this.setStep(changes, action.name, { undoError: error, state: { retryAt: at } });
      this.event(changes, "undo:failed", action.name, {
        attempt: step.undoAttempt,
        error: error.message,
        retryAt: at,
      });
    } else {
      this.setStep(changes, action.name, { status: "undo_failed", undoError: error, state: null });
      this.event(changes, "undo:failed", action.name, {
        attempt: step.undoAttempt,
        error: error.message,
        final: true,
      });
    }
  }
}

/**
 * Keeps what an attempt recorded of its timing (`ActionContext.timing`) with the event that ends it:
 * the first event about its action among these changes (completed, failed, its cleanup started, its
 * undo settled). No write of its own: the facts ride on one the engine makes anyway.
 */
function withTiming(changes: Changes, action: string, timing: JsonObject): void {
  const event = changes.events.find((e) => e.action === action);
  if (event) event.data = { ...event.data, timing };
}
