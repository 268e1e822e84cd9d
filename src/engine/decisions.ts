/**
 * A run's decisions: after every change, what to persist and what to run next, forward
 * (start, wait, retry, complete) or back (undo, hold, end). Synchronous: their writes go out as
 * one transition. See docs/state-machine.md.
 */
import type { ActionDefinition } from "../definition/types.js";
import { CancelledError, type ErrorInfo, TimeoutError, toErrorInfo } from "../errors.js";
import type { JsonObject } from "../json.js";
import type { RunPatch, RunStatus, StepRecord, UndoCause } from "../storage/types.js";
import { backoffDelay } from "./backoff.js";
import type { Abort } from "./guard.js";
import { type Changes, type Phase, RunState } from "./run-state.js";

const ENDED: ReadonlySet<RunStatus> = new Set(["completed", "compensated", "cancelled", "needs_attention"]);

/** The state machine of a run; the run (run.ts) runs what it decides. */
export abstract class RunDecisions extends RunState {
  /** Held by a failure in this process, and not yet told (`run:failed` waits for settleHold). */
  protected heldHere = false;

  /** Runs an action body, undo or poll check reserved by a decision, once its transition committed. */
  protected abstract execute(
    action: ActionDefinition,
    phase: Phase,
    attempt: number,
    abort: Abort,
  ): Promise<void>;

  // Child runs (child-steps.ts).
  /** Begins a child step (or its next attempt): it waits for a child run started once this commits. */
  protected abstract beginChild(changes: Changes, action: ActionDefinition, now: number): boolean;
  /** A waiting child step: its child run's end, its timeout, its start or stop (again after a crash). */
  protected abstract checkChild(
    changes: Changes,
    action: ActionDefinition,
    step: StepRecord,
    now: number,
  ): boolean;
  /** The run stops a waiting child step (its undo, or its hold): the child run is cancelled. */
  protected abstract stopChild(
    changes: Changes,
    action: ActionDefinition,
    step: StepRecord,
    why: "rollback" | "hold",
  ): void;
  /** Undoes a completed child step by undoing its child run, and waits for that undo to end. */
  protected abstract undoChild(changes: Changes, action: ActionDefinition, step: StepRecord): boolean;
  /** A child run's end tells its parent, in the same transition. */
  protected abstract notifyParent(changes: Changes): void;
  /** Whether child runs are being started from here (the run stays in memory until they exist). */
  protected abstract get startingChildren(): boolean;

  /** Decides what follows from the run's state now, into `changes`. */
  protected decide(changes: Changes): void {
    if (this.detached || ENDED.has(this.record.status)) return;
    if (this.released) {
      // Leaving memory (its release is being committed): whatever arrived is in storage; the host
      // claims it again once the release is committed.
      this.arrivedWhileReleasing = true;
      return;
    }
    const now = this.host.clock.now();
    const status = this.record.status;
    if (
      this.record.cancelRequested !== null &&
      (status === "running" || status === "waiting" || status === "failed")
    )
      this.beginUndo(changes, { kind: "cancel", reason: this.record.cancelRequested });
    if (this.record.status === "compensating") this.undoCompleted(changes, now);
    else if (this.record.status === "failed") this.settleHold(changes);
    else this.forward(changes, now);
  }

  protected forward(changes: Changes, now: number): void {
    let blocked: boolean;
    do {
      blocked = false;
      // Indexed: groups add steps to the order as they go.
      for (let i = 0; i < this.plan.order.length && this.goingForward; i++) {
        const name = this.plan.order[i]!;
        if (this.inFlight.has(name)) continue;
        const action = this.plan.action(name);
        const step = this.stepRecords.get(name);
        if (!step) {
          if (action.dependsOn.every((dep) => this.stepRecords.get(dep)?.status === "completed"))
            blocked = !this.begin(changes, action, now) || blocked;
        } else if (step.status === "running") {
          // Its attempt ended without completing (it failed, or was in flight when its process died):
          // its cleanup first, if it has one; then, after a crash, run it again, same idempotency key.
          const started = this.cleanupDue(action, step)
            ? this.startCleanup(changes, action, step)
            : this.startAttempt(changes, action, now);
          blocked = !started || blocked;
        } else if (step.status === "retrying") {
          if (retryAt(step) <= now) blocked = !this.startAttempt(changes, action, now) || blocked;
        } else if (step.status === "waiting" && !action.group) {
          blocked = !this.checkWait(changes, action, step, now) || blocked;
        }
      }
      // A group that ended, or added an iteration, may let more start: walk again.
    } while (this.goingForward && this.settleGroups(changes, now));
    if (this.record.status === "compensating") return this.undoCompleted(changes, now);
    if (this.record.status === "failed") return this.settleHold(changes);
    if (this.plan.order.every((name) => this.stepRecords.get(name)?.status === "completed")) {
      return this.end(changes, "completed");
    }
    if (blocked) return this.waitForSlot();
    const nextAt = this.nextTimeTrigger();
    if (this.inFlight.size > 0 || this.startingChildren) return this.armTimer(nextAt);
    const hasWaits = [...this.stepRecords.values()].some(
      (s) => s.status === "waiting" || s.status === "retrying",
    );
    if (!hasWaits) {
      // Nothing runs, nothing waits, not done: a bug, but never a silent hang.
      return this.needsAttention(changes, {
        name: "StalledError",
        message: "run has nothing to run or wait for but is not complete",
      });
    }
    if (nextAt === undefined || nextAt - now >= this.host.evictAfterMs) this.evict(changes, nextAt ?? null);
    else this.armTimer(nextAt);
  }

  /** Neither undoing nor held: what `forward` decides still goes. */
  protected get goingForward(): boolean {
    return this.record.status !== "compensating" && this.record.status !== "failed";
  }

  /** Starts a group (a loop's iteration, a fan-out's items), or again after a retry. */
  protected abstract beginGroup(changes: Changes, action: ActionDefinition, now: number): boolean;

  /** Ends groups whose steps are done, or adds their next iteration. True when anything changed. */
  protected abstract settleGroups(changes: Changes, now: number): boolean;

  /** Starts a fresh action. False when it needs a slot and none is free. */
  protected begin(changes: Changes, action: ActionDefinition, now: number): boolean {
    if (action.group) return this.beginGroup(changes, action, now);
    if (action.kind === "task") return this.startAttempt(changes, action, now);
    if (action.kind === "child") return this.beginChild(changes, action, now);
    const state: JsonObject = {};
    let waitingFor: JsonObject;
    if (action.kind === "signal") {
      if (action.skip) {
        // A wait that need not happen (its `if` is false, say) completes at once with what skip gave.
        let given: unknown;
        try {
          given = action.skip(this.inputOf(action));
        } catch (error) {
          this.setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
          this.fail(changes, action, error, now, true);
          return true;
        }
        if (given !== undefined) {
          this.setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
          const output = this.parseOutput(action, given);
          if (output instanceof Error) this.fail(changes, action, output, now, true);
          else this.complete(changes, action, output, now);
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
            : toTime(action.sleepUntil!(this.inputOf(action)));
      } catch (error) {
        // User code computing the time failed: this action fails, nothing else does.
        this.setStep(changes, action.name, { status: "waiting", attempt: 1, state: {}, startedAt: now });
        this.fail(changes, action, error, now, true);
        return true;
      }
      state.until = until;
      waitingFor = { until };
    } else {
      state.nextCheckAt = now;
      waitingFor = { poll: action.everyMs! };
    }
    if (action.timeoutMs !== null) state.deadline = now + action.timeoutMs;
    const step = this.setStep(changes, action.name, {
      status: "waiting",
      attempt: 1,
      state,
      startedAt: now,
    });
    this.markRunning(changes);
    this.event(changes, "action:waiting", action.name, { ...waitingFor, ...state });
    return this.checkWait(changes, action, step, now);
  }

  /** Completes or fails a waiting action when its condition holds; starts a due poll check. */
  protected checkWait(changes: Changes, action: ActionDefinition, step: StepRecord, now: number): boolean {
    if (action.kind === "child") return this.checkChild(changes, action, step, now);
    const state = step.state ?? {};
    if (action.kind === "signal") {
      const index = this.pendingSignals.findIndex((s) => s.name === action.signalName);
      if (index >= 0) {
        const [signal] = this.pendingSignals.splice(index, 1);
        changes.consumed.push({ seq: signal!.seq, action: action.name });
        this.event(changes, "signal:received", action.name, { signal: signal!.name, seq: signal!.seq });
        const payload = action.fromPayload ? action.fromPayload(signal!.payload) : signal!.payload;
        const output = this.parseOutput(action, payload);
        if (output instanceof Error) this.fail(changes, action, output, now);
        else this.complete(changes, action, output, now);
        return true;
      }
    } else if (action.kind === "sleep") {
      if ((state.until as number) <= now) {
        this.complete(changes, action, {}, now);
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
      this.fail(changes, action, new TimeoutError(`${what} within ${action.timeoutMs} ms`), now, true);
      return true;
    }
    if (action.kind === "poll" && (state.nextCheckAt as number) <= now) {
      if (!this.reserve(action.name, "check")) return false;
      const flight = this.inFlight.get(action.name)!;
      changes.after.push(() => this.execute(action, "check", step.attempt, flight.abort));
    }
    return true;
  }

  protected startAttempt(changes: Changes, action: ActionDefinition, now: number): boolean {
    if (action.group) return this.beginGroup(changes, action, now);
    if (action.kind === "child") return this.beginChild(changes, action, now);
    if (action.kind === "poll") {
      // A poll "retry" resumes polling.
      const prev = this.stepRecords.get(action.name)!;
      const state = { ...deadlineOf(prev), nextCheckAt: now };
      this.setStep(changes, action.name, { status: "waiting", state });
      return this.checkWait(changes, action, this.stepRecords.get(action.name)!, now);
    }
    if (!this.reserve(action.name, "run")) return false;
    const prev = this.stepRecords.get(action.name);
    const attempt = (prev?.attempt ?? 0) + 1;
    this.setStep(changes, action.name, {
      status: "running",
      attempt,
      state: null,
      startedAt: prev?.startedAt ?? now,
    });
    this.markRunning(changes);
    this.event(
      changes,
      "action:started",
      action.name,
      prev?.status === "running" ? { attempt, recovered: true } : { attempt },
    );
    const flight = this.inFlight.get(action.name)!;
    changes.after.push(() => this.execute(action, "run", attempt, flight.abort));
    return true;
  }

  protected complete(changes: Changes, action: ActionDefinition, output: JsonObject, now: number): void {
    this.setStep(changes, action.name, {
      status: "completed",
      output,
      error: null,
      state: this.endState(action.name),
      endedAt: now,
    });
    this.keep(action.name, output);
    this.markRunning(changes);
    this.event(changes, "action:completed", action.name, {
      attempt: this.stepRecords.get(action.name)!.attempt,
    });
  }

  /** An attempt failed: retry after a backoff, or fail for good and undo what completed. */
  protected fail(
    changes: Changes,
    action: ActionDefinition,
    error: unknown,
    now: number,
    final = false,
  ): void {
    const prev = this.stepRecords.get(action.name)!;
    const failures = prev.failures + 1;
    const info = errorInfoOf(error);
    // Undoing or held: what fails now just fails, nothing is retried.
    const cancelled = this.record.status === "compensating" || this.record.status === "failed";
    if (this.cleanupDue(action, prev)) {
      // The attempt is settled once its cleanup has run (which calls this again); a failure for good
      // stops the rest of the run now, not after the cleanup.
      this.setStep(changes, action.name, { state: { failure: info as unknown as JsonObject } });
      if (cancelled || (!final && failures < action.retry.maxAttempts)) return;
      const cause: UndoCause = { kind: "failure", action: action.name, error: info };
      if (this.saga.onFailure === "hold") this.hold(changes, cause);
      else this.beginUndo(changes, cause);
      return;
    }
    if (!final && !cancelled && failures < action.retry.maxAttempts) {
      const at = now + backoffDelay(action.retry, failures);
      this.setStep(changes, action.name, {
        status: "retrying",
        failures,
        error: info,
        state: { ...deadlineOf(prev), retryAt: at },
      });
      this.event(changes, "action:failed", action.name, {
        attempt: prev.attempt,
        error: info.message,
        retryAt: at,
      });
      return;
    }
    this.setStep(changes, action.name, {
      status: "failed",
      failures,
      error: info,
      state: this.endState(action.name),
      endedAt: now,
    });
    this.event(changes, "action:failed", action.name, {
      attempt: prev.attempt,
      error: info.message,
      final: true,
    });
    if (cancelled) return;
    const cause: UndoCause = { kind: "failure", action: action.name, error: info };
    if (this.saga.onFailure === "hold") this.hold(changes, cause);
    else this.beginUndo(changes, cause);
  }

  /** onFailure "hold": start nothing new, stop what runs, keep what completed; `retry` continues. */
  protected hold(changes: Changes, cause: UndoCause & { kind: "failure" }): void {
    this.patch(changes, { status: "failed", cause, wakeAt: null });
    // Told once what was running has stopped and been cleaned up after (settleHold): whoever
    // follows the run stops listening at that event.
    this.heldHere = true;
    const reason = new CancelledError(`action "${cause.action}" failed; the run is held`);
    for (const flight of this.inFlight.values()) if (flight.phase !== "cleanup") flight.abort.abort(reason);
  }

  /** A held run leaves memory once what was running has settled and been cleaned up after. */
  protected settleHold(changes: Changes): void {
    if (this.inFlight.size > 0) return;
    let cleaning = false;
    for (const [name, step] of this.stepRecords) {
      const action = this.plan.action(name);
      if (!this.cleanupDue(action, step)) continue;
      cleaning = true;
      if (!this.startCleanup(changes, action, step)) return this.waitForSlot();
    }
    if (cleaning) return;
    const now = this.host.clock.now();
    for (const [name, step] of this.stepRecords) {
      if (step.status === "running" || step.status === "retrying" || step.status === "waiting") {
        const action = this.plan.action(name);
        if (step.status === "waiting" && action.kind === "child")
          this.stopChild(changes, action, step, "hold");
        const stopped = toErrorInfo(new CancelledError("stopped because the run is held"));
        this.setStep(changes, name, {
          status: "failed",
          error: step.error ?? stopped,
          state: this.endState(name),
          endedAt: now,
        });
      }
    }
    const cause = this.record.cause;
    if (this.heldHere && cause?.kind === "failure")
      this.event(changes, "run:failed", null, { action: cause.action, error: cause.error.message });
    this.heldHere = false;
    this.released = true;
    this.patch(changes, { release: true });
    this.clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  protected beginUndo(changes: Changes, cause: UndoCause): void {
    this.patch(changes, { status: "compensating", cause, wakeAt: null });
    this.event(
      changes,
      "run:compensating",
      null,
      cause.kind === "failure"
        ? { kind: cause.kind, action: cause.action, error: cause.error.message }
        : cause,
    );
    const reason = new CancelledError(
      cause.kind === "cancel"
        ? `run cancelled: ${cause.reason}`
        : cause.kind === "parent"
          ? `undone by its parent run ${cause.runId}`
          : `action "${cause.action}" failed`,
    );
    for (const flight of this.inFlight.values())
      if (flight.phase !== "undo" && flight.phase !== "cleanup") flight.abort.abort(reason);
  }

  /**
   * Cleans up after actions cut short, then undoes completed actions, dependents before their
   * dependencies; ends when nothing is left.
   */
  protected undoCompleted(changes: Changes, now: number): void {
    let blocked = false;
    // Whatever was started but is not running here any more will never complete now.
    for (const [name, step] of this.stepRecords) {
      if (this.inFlight.has(name)) continue;
      const action = this.plan.action(name);
      if (this.cleanupDue(action, step)) {
        if (!this.startCleanup(changes, action, step)) blocked = true;
        continue;
      }
      // A child run is stopped, and its step waits for it to end (and to undo what it did).
      if (step.status === "waiting" && action.kind === "child") {
        this.stopChild(changes, action, step, "rollback");
        continue;
      }
      if (step.status === "running" || step.status === "retrying" || step.status === "waiting") {
        const interrupted = toErrorInfo(
          new CancelledError("stopped by the undo of the run before it completed"),
        );
        this.setStep(changes, name, {
          status: "failed",
          error: step.error ?? interrupted,
          state: this.endState(name),
          endedAt: now,
        });
        this.event(changes, "action:failed", name, {
          attempt: step.attempt,
          error: interrupted.message,
          final: true,
        });
      }
    }
    // A step still `running` here is being stopped or cleaned up after: undos wait for its cleanup
    // (tearing down a half-made deploy may need what completed jobs made).
    const cleaningUp = [...this.stepRecords.values()].some(
      (s) => s.status === "running" && this.plan.action(s.action).cleanup !== undefined,
    );
    for (let i = this.plan.order.length - 1; i >= 0 && !cleaningUp; i--) {
      const name = this.plan.order[i]!;
      const action = this.plan.action(name);
      const step = this.stepRecords.get(name);
      if (this.inFlight.has(name) || !step || !action.undo) continue;
      const due = step.status === "completed" || (step.status === "undoing" && retryAt(step) <= now);
      if (!due || !this.dependentsUndone(name)) continue;
      if (!this.startUndo(changes, action, step, now)) blocked = true;
    }
    if (blocked) return this.waitForSlot();
    // (A step still waiting here is a child step waiting for its child run to stop.)
    if (
      this.inFlight.size > 0 ||
      [...this.stepRecords.values()].some((s) => s.status === "undoing" || s.status === "waiting")
    )
      return this.armTimer(this.nextTimeTrigger());
    // Nothing runs or will run by itself: either everything is undone, or an undo failed for good
    // (and what depends on it stays in place).
    const failed = [...this.stepRecords.values()].find((s) => s.status === "undo_failed");
    if (failed) {
      const error = failed.undoError ?? { name: "Error", message: "undo failed" };
      return this.needsAttention(changes, {
        ...error,
        message: `undo of "${failed.action}" failed: ${error.message}`,
      });
    }
    this.end(changes, this.record.cause?.kind === "cancel" ? "cancelled" : "compensated");
  }

  /** True when nothing that depends on `name` still has work done that must be undone first. */
  protected dependentsUndone(name: string): boolean {
    for (const dependent of this.plan.dependentsOf(name)) {
      if (this.inFlight.has(dependent)) return false;
      const step = this.stepRecords.get(dependent);
      if (!step) continue;
      const hasUndo = this.plan.action(dependent).undo !== undefined;
      // Waiting while the run undoes: a child run being stopped, which may still use what this made.
      if (step.status === "undoing" || step.status === "undo_failed" || step.status === "waiting")
        return false;
      if (step.status === "completed" && hasUndo) return false;
    }
    return true;
  }

  /**
   * Whether the step's attempt of `run` started but did not complete and its cleanup has not run: it
   * failed (its failure waits in `state.failure`), or it was in flight when its process died. The
   * caller knows it is not in flight.
   */
  protected cleanupDue(action: ActionDefinition, step: StepRecord): boolean {
    return (
      action.cleanup !== undefined &&
      step.status === "running" &&
      step.attempt > 0 &&
      step.state?.cleaned !== step.attempt
    );
  }

  protected startCleanup(changes: Changes, action: ActionDefinition, step: StepRecord): boolean {
    if (!this.reserve(action.name, "cleanup")) return false;
    const failure = step.state?.failure as ErrorInfo | undefined;
    this.event(changes, "cleanup:started", action.name, {
      attempt: step.attempt,
      ...(failure ? { error: failure.message } : { interrupted: true }),
    });
    const flight = this.inFlight.get(action.name)!;
    changes.after.push(() => this.execute(action, "cleanup", step.attempt, flight.abort));
    return true;
  }

  protected startUndo(changes: Changes, action: ActionDefinition, step: StepRecord, _now: number): boolean {
    if (action.kind === "child") return this.undoChild(changes, action, step);
    if (!this.reserve(action.name, "undo")) return false;
    const undoAttempt = step.undoAttempt + 1;
    this.setStep(changes, action.name, { status: "undoing", undoAttempt, state: null });
    this.event(changes, "undo:started", action.name, { attempt: undoAttempt });
    const flight = this.inFlight.get(action.name)!;
    changes.after.push(() => this.execute(action, "undo", undoAttempt, flight.abort));
    return true;
  }

  /**
   * A step's state once it ended: a group keeps its (how many iterations or items it added: what
   * rebuilds the run's plan, and tells loops from fan-outs); any other step's wait is over.
   */
  protected endState(name: string): JsonObject | null {
    const action = this.plan.action(name);
    if (action.kind === "loop") return { iteration: this.plan.count(name) };
    return action.group ? (this.stepRecords.get(name)?.state ?? null) : null;
  }

  protected end(changes: Changes, status: "completed" | "compensated" | "cancelled"): void {
    const now = this.host.clock.now();
    this.patch(changes, { status, endedAt: now, wakeAt: null, release: true });
    this.event(changes, `run:${status}`, null, null);
    this.notifyParent(changes);
    this.clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  protected needsAttention(changes: Changes, error: ErrorInfo): void {
    this.patch(changes, { status: "needs_attention", error, wakeAt: null, release: true });
    this.event(changes, "run:needs_attention", null, { error: error.message });
    this.notifyParent(changes);
    this.clearTimer();
    changes.after.push(() => this.host.ended(this));
  }

  /** Nothing runs: persist what wakes it and leave memory. */
  protected evict(changes: Changes, wakeAt: number | null): void {
    this.released = true;
    const patch: RunPatch = { wakeAt, release: true };
    if (this.record.status !== "waiting") {
      patch.status = "waiting";
      this.event(changes, "run:waiting", null, { wakeAt });
    }
    this.patch(changes, patch);
    this.clearTimer();
    changes.after.push(() => this.host.evicted(this, wakeAt));
  }

  protected markRunning(changes: Changes): void {
    if (this.record.status === "waiting") this.patch(changes, { status: "running", wakeAt: null });
  }
}

/** The overall deadline a poll or wait keeps across retries, as a state fragment. */
function deadlineOf(step: StepRecord): JsonObject {
  const deadline = step.state?.deadline;
  return typeof deadline === "number" ? { deadline } : {};
}

/** A failure kept in a step's state (already an ErrorInfo) stays as it is. */
function errorInfoOf(error: unknown): ErrorInfo {
  if (error !== null && typeof error === "object" && !(error instanceof Error)) {
    const { name, message } = error as Partial<ErrorInfo>;
    if (typeof name === "string" && typeof message === "string") return error as ErrorInfo;
  }
  return toErrorInfo(error);
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
