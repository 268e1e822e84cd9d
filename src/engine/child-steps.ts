/**
 * Child steps: a step that starts another saga as a child run and waits durably for its end, which
 * the child's final transition signals to the parent (`child:<step>`); their timeouts, stops and
 * undos. See docs/sagas.md (child runs) and docs/state-machine.md.
 */
import type { ActionDefinition } from "../definition/types.js";
import { CancelledError, SlipwayError, TimeoutError, toErrorInfo } from "../errors.js";
import { assertJson, type JsonObject } from "../json.js";
import type { RunStatus, StepRecord } from "../storage/types.js";
import { GroupedRun } from "./groups.js";
import { Changes } from "./run-state.js";

/** What a child run's end tells its parent: the payload of its `child:<step>` signal. */
export interface ChildEnd {
  run: string;
  status: RunStatus;
  /** The values its actions produced (its input left out); empty unless it completed. */
  values: JsonObject;
  /** Why it did not complete. */
  error: string | null;
}

/** Signals whose name starts so are ends of child runs, sent by storage with the child's last transition. */
export const CHILD_SIGNAL = "child:";

/**
 * The id of the child run a step starts: `<parent>.<step>`, and `.<attempt>` for a retried step. A
 * step of a group's iteration (`attempts#2.fix`) writes `~` for `#`, which a URL would cut off.
 */
export function childRunId(parentId: string, step: string, attempt: number): string {
  const base = `${parentId}.${step.replaceAll("#", "~")}`;
  return attempt <= 1 ? base : `${base}.${attempt}`;
}

type Stop = "timeout" | "rollback";
type SagaRef = { name: string; version: number };

export abstract class ChildSteps extends GroupedRun {
  /** Steps whose child run is being started from here: the run stays in memory until it exists. */
  #startingSet: Set<string> | undefined;
  /** What this instance asked of child runs (`start:`, `cancel:`, `undo:` + id): asked once per instance. */
  #askedSet: Set<string> | undefined;

  // Made on first use: most runs have no child step, and a run is allocated per claim.
  get #starting(): Set<string> {
    this.#startingSet ??= new Set();
    return this.#startingSet;
  }
  get #asked(): Set<string> {
    this.#askedSet ??= new Set();
    return this.#askedSet;
  }

  protected get startingChildren(): boolean {
    return this.#startingSet !== undefined && this.#startingSet.size > 0;
  }

  protected beginChild(changes: Changes, action: ActionDefinition, now: number): boolean {
    const prev = this.stepRecords.get(action.name);
    const attempt = (prev?.attempt ?? 0) + 1;
    const id = childRunId(this.id, action.name, attempt);
    const started = { attempt, startedAt: prev?.startedAt ?? now, endedAt: null, error: null };
    let input: unknown;
    let saga: SagaRef | undefined;
    try {
      // A step that need not happen (a pipeline job whose `if` is false) completes at once with what skip gave.
      const given = action.skip?.(this.inputOf(action));
      if (given !== undefined) {
        this.setStep(changes, action.name, { status: "waiting", state: {}, ...started });
        const output = this.parseOutput(action, given);
        if (output instanceof Error) this.fail(changes, action, output, now, true);
        else this.complete(changes, action, output, now);
        return true;
      }
      input = action.childInput ? action.childInput(this.inputOf(action)) : {};
      if (input === null || typeof input !== "object" || Array.isArray(input))
        throw new TypeError(`the input of child run ${id} must be an object`);
      assertJson(input, `input of child run ${id}`);
      if (action.childSagaOf) {
        const { name, version } = action.childSagaOf(input as JsonObject);
        saga = { name, version };
      }
    } catch (error) {
      // User code computing the input failed: this step fails, nothing else does.
      this.setStep(changes, action.name, { status: "waiting", state: {}, ...started });
      this.fail(changes, action, error, now, true);
      return true;
    }
    // The input (and a saga chosen for it) is kept so that a start repeated after a crash asks for exactly the same run.
    const state: JsonObject = { child: id, input: input as JsonObject };
    if (saga) state.saga = { ...saga };
    if (action.timeoutMs !== null) state.deadline = now + action.timeoutMs;
    const step = this.setStep(changes, action.name, { status: "waiting", state, ...started });
    this.markRunning(changes);
    this.event(changes, "action:waiting", action.name, {
      child: id,
      ...(state.deadline !== undefined && { deadline: state.deadline }),
    });
    return this.checkChild(changes, action, step, now);
  }

  protected checkChild(changes: Changes, action: ActionDefinition, step: StepRecord, now: number): boolean {
    const state = step.state ?? {};
    const id = state.child as string;
    const end = this.#takeEnd(changes, action, id);
    if (end) {
      this.#settle(changes, action, step, end, now);
      return true;
    }
    // Started (or found) once per instance: after a crash the start is repeated, and finds the run.
    const saga = (state.saga as SagaRef | undefined) ?? action.childSaga!;
    this.#start(changes, action, id, saga, state.input as JsonObject);
    if (state.stopping !== undefined) this.#ask(changes, action, id, "cancel");
    else if (typeof state.deadline === "number" && state.deadline <= now)
      this.#stop(changes, action, step, "timeout");
    return true;
  }

  protected stopChild(
    changes: Changes,
    action: ActionDefinition,
    step: StepRecord,
    why: "rollback" | "hold",
  ): void {
    const id = step.state?.child as string;
    if (why === "hold") {
      // The step fails now (the run is held); its child run is cancelled, and a retry starts another.
      this.#ask(changes, action, id, "cancel");
      return;
    }
    if (step.state?.stopping !== "rollback") this.#stop(changes, action, step, "rollback");
    this.checkChild(changes, action, this.stepRecords.get(action.name)!, this.host.clock.now());
  }

  protected undoChild(changes: Changes, action: ActionDefinition, step: StepRecord): boolean {
    const id = childRunId(this.id, action.name, step.attempt);
    if (step.status === "undoing") {
      const end = this.#takeEnd(changes, action, id);
      if (end) this.#settleUndo(changes, action, step, end);
      else this.#ask(changes, action, id, "undo");
      return true;
    }
    const undoAttempt = step.undoAttempt + 1;
    this.setStep(changes, action.name, { status: "undoing", undoAttempt, state: { child: id } });
    this.event(changes, "undo:started", action.name, { attempt: undoAttempt, child: id });
    this.#ask(changes, action, id, "undo");
    return true;
  }

  protected notifyParent(changes: Changes): void {
    const parent = this.record.parent;
    if (!parent) return;
    const status = this.record.status;
    const values: JsonObject = {};
    if (status === "completed")
      for (const step of this.stepRecords.values()) if (step.output) Object.assign(values, step.output);
    const end: ChildEnd = { run: this.id, status, values, error: this.#whyNotCompleted() };
    const signal = {
      runId: parent.runId,
      name: `${CHILD_SIGNAL}${parent.step}`,
      payload: end as unknown as JsonObject,
      createdAt: this.host.clock.now(),
    };
    changes.notify = [...(changes.notify ?? []), signal];
  }

  #whyNotCompleted(): string | null {
    const { status, cause, error } = this.record;
    if (status === "completed") return null;
    if (status === "needs_attention") return `it needs attention: ${error?.message ?? "unknown"}`;
    if (cause?.kind === "cancel") return `cancelled: ${cause.reason}`;
    if (cause?.kind === "failure") return `action "${cause.action}" failed: ${cause.error.message}`;
    if (cause?.kind === "parent") return `undone by its parent run ${cause.runId}`;
    return status;
  }

  /** Consumes the pending ends of this step's child runs; returns that of run `id`, if it ended. */
  #takeEnd(changes: Changes, action: ActionDefinition, id: string): ChildEnd | undefined {
    const name = `${CHILD_SIGNAL}${action.name}`;
    let found: ChildEnd | undefined;
    for (let i = this.pendingSignals.length - 1; i >= 0; i--) {
      const signal = this.pendingSignals[i]!;
      if (signal.name !== name) continue;
      this.pendingSignals.splice(i, 1);
      // An earlier attempt's child (cancelled when the run was held, say) is consumed unheeded.
      changes.consumed.push({ seq: signal.seq, action: action.name });
      const end = signal.payload as unknown as ChildEnd;
      if (end.run !== id) continue;
      found = end;
      this.event(changes, "signal:received", action.name, { signal: signal.name, seq: signal.seq });
    }
    return found;
  }

  /** A child run ended while its step waited: its values complete the step, or its failure fails it. */
  #settle(changes: Changes, action: ActionDefinition, step: StepRecord, end: ChildEnd, now: number): void {
    const stopping = step.state?.stopping as Stop | undefined;
    if (end.status === "completed") {
      // Completed before a stop reached it: completed here too (the run's undo then undoes it).
      let raw: unknown;
      try {
        raw = action.fromResult ? action.fromResult(end.values) : end.values;
      } catch (error) {
        raw = error instanceof Error ? error : new Error(String(error));
      }
      const output = raw instanceof Error ? raw : this.parseOutput(action, raw);
      if (!(output instanceof Error)) return this.complete(changes, action, output, now);
      if (stopping !== "rollback") return this.fail(changes, action, output, now, true);
      // Undoing anyway: kept as completed so that its child run is undone too.
      return this.complete(changes, action, {}, now);
    }
    if (stopping === "rollback" && end.status === "needs_attention") {
      // Stopped, but its child run could not undo what it did: the run will need attention too.
      this.setStep(changes, action.name, {
        status: "undo_failed",
        undoError: toErrorInfo(new SlipwayError("child_failed", `child run ${end.run}: ${end.error}`)),
        state: null,
        endedAt: now,
      });
      return;
    }
    const error =
      stopping === "timeout"
        ? new TimeoutError(`child run ${end.run} did not complete within ${action.timeoutMs} ms`)
        : stopping === "rollback"
          ? new CancelledError(`stopped by the undo of the run: child run ${end.run} ${end.status}`)
          : new SlipwayError("child_failed", `child run ${end.run} failed: ${end.error}`);
    this.fail(changes, action, error, now, true);
  }

  #settleUndo(changes: Changes, action: ActionDefinition, step: StepRecord, end: ChildEnd): void {
    const now = this.host.clock.now();
    if (end.status === "needs_attention" || end.status === "completed") {
      const error = toErrorInfo(new SlipwayError("child_failed", `child run ${end.run}: ${end.error}`));
      this.setStep(changes, action.name, { status: "undo_failed", undoError: error, state: null });
      this.event(changes, "undo:failed", action.name, {
        attempt: step.undoAttempt,
        error: error.message,
        final: true,
      });
      return;
    }
    this.setStep(changes, action.name, { status: "undone", undoError: null, state: null, endedAt: now });
    this.event(changes, "undo:completed", action.name, { attempt: step.undoAttempt });
  }

  /** The step stops waiting for its child run as it was: it is cancelled, and the step waits for it to end. */
  #stop(changes: Changes, action: ActionDefinition, step: StepRecord, why: Stop): void {
    const { deadline: _, ...state } = step.state ?? {};
    this.setStep(changes, action.name, { state: { ...state, stopping: why } });
    this.#ask(changes, action, state.child as string, "cancel");
  }

  /** Starts the child run once this transition is committed, unless this instance did already. */
  #start(changes: Changes, action: ActionDefinition, id: string, saga: SagaRef, input: JsonObject): void {
    if (this.#asked.has(`start:${id}`) || this.#starting.has(action.name)) return;
    this.#starting.add(action.name);
    changes.after.push(() =>
      this.host.startChild(this, action.name, id, saga, input, (error) => {
        this.#starting.delete(action.name);
        const step = this.stepRecords.get(action.name);
        if (error === undefined) {
          this.#asked.add(`start:${id}`);
          // The step stopped waiting for it meanwhile (the run is held): it is cancelled now.
          if (step?.status !== "waiting" || step.state?.child !== id)
            this.host.stopChild(
              id,
              "cancel",
              { runId: this.id, step: action.name },
              "its parent run is held",
              () => {},
            );
        }
        if (this.detached || this.released) return;
        const changes = new Changes();
        if (error !== undefined && step?.status === "waiting" && step.state?.child === id) {
          const why = toErrorInfo(error).message;
          const failure = new SlipwayError("child_failed", `child run ${id} could not start: ${why}`);
          this.fail(changes, action, failure, this.host.clock.now(), true);
        }
        // A stop asked meanwhile waited for the start; the run may leave memory now.
        this.decide(changes);
        this.commit(changes);
      }),
    );
  }

  /** Asks the child run to stop or to undo, once this transition is committed (once per instance). */
  #ask(changes: Changes, action: ActionDefinition, id: string, how: "cancel" | "undo"): void {
    // A stop waits for a start under way, lest it find no run and the start create one after it.
    if (this.#asked.has(`${how}:${id}`) || this.#starting.has(action.name)) return;
    this.#asked.add(`${how}:${id}`);
    const parent = { runId: this.id, step: action.name };
    const reason =
      how === "undo" ? `undone by its parent run ${this.id}` : `stopped by its parent run ${this.id}`;
    changes.after.push(() =>
      this.host.stopChild(id, how, parent, reason, (found) => {
        if (found || how !== "undo" || this.detached || this.released) return;
        // Nothing to undo: the run is gone (deleted by hand).
        const step = this.stepRecords.get(action.name);
        if (step?.status !== "undoing") return;
        const changes = new Changes();
        this.#settleUndo(changes, action, step, { run: id, status: "compensated", values: {}, error: null });
        this.decide(changes);
        this.commit(changes);
      }),
    );
  }
}
