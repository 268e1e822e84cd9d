/**
 * A run's state in memory and the commit/claim protocol: changes decided in one synchronous step
 * become one transition; nothing they start runs before it is committed, and a first transition may
 * carry the claim of a run loaded without one. Also its timer and its reservations of slots.
 */

import type { ClockTimer } from "../clock.js";
import { outputValues, type Saga } from "../definition/saga.js";
import type { ActionDefinition } from "../definition/types.js";
import { SlipwayError, ValidationError } from "../errors.js";
import { assertJson, type JsonObject } from "../json.js";
import { schemaIssues } from "../problems.js";
import type {
  CommitResult,
  EventRecord,
  NewSignal,
  RunPatch,
  RunRecord,
  RunSnapshot,
  RunStatus,
  SignalRecord,
  StepRecord,
  Transition,
} from "../storage/types.js";
import type { LifecycleEventType } from "./events.js";
import { Abort } from "./guard.js";
import type { RunHost } from "./run-host.js";
import { type Instance, RunPlan } from "./run-plan.js";

/** What runs for an action: its body, its undo, its cleanup, or a poll check. */
export type Phase = "run" | "undo" | "check" | "cleanup";

/** A body, undo, cleanup or check holding a slot, with the handle that aborts it. */
export interface InFlight {
  phase: Phase;
  abort: Abort;
  /** Set once the body runs (its transition committed); until then the slot is only reserved. */
  started?: boolean;
}

/** Changes decided in one synchronous step, committed together. */
export class Changes {
  readonly steps = new Map<string, StepRecord>();
  readonly events: EventRecord[] = [];
  readonly consumed: { seq: number; action: string }[] = [];
  /** Signals to other runs committed with these changes (a child run's end tells its parent). */
  notify: NewSignal[] | undefined;
  readonly after: (() => void)[] = [];
  patch: RunPatch | undefined;
  create: RunRecord | undefined;

  get empty(): boolean {
    return (
      !this.create &&
      !this.patch &&
      this.steps.size === 0 &&
      this.events.length === 0 &&
      this.consumed.length === 0 &&
      this.notify === undefined
    );
  }
}

/** The state of one run and how its changes are persisted; decisions and bodies build on it. */
export abstract class RunState {
  readonly id: string;
  readonly saga: Saga;
  /** The steps this run runs (the saga's actions, see run-plan.ts). */
  protected readonly plan: RunPlan;
  readonly host: RunHost;
  record: RunRecord;
  protected readonly stepRecords = new Map<string, StepRecord>();
  protected readonly produced: Record<string, unknown>;
  /** Values of each group iteration or item (`attempts#2`), produced by its steps: kept apart from the run's. */
  protected readonly scopes = new Map<string, Record<string, unknown>>();
  protected readonly pendingSignals: SignalRecord[];
  protected readonly seenSignals: Set<number>;
  protected readonly inFlight = new Map<string, InFlight>();
  protected nextSeq: number;
  protected timer: ClockTimer | undefined;
  protected timerAt = Number.POSITIVE_INFINITY;
  protected detached = false;
  protected released = false;
  protected arrivedWhileReleasing = false;
  protected slotWanted = false;
  /** Optimistic claim still to be carried by the next commit: the revision the snapshot was loaded at. */
  protected claimRevision: number | undefined;
  protected claimLost = false;
  /** Told once whether the claim committed. */
  protected onClaim: ((won: boolean) => void) | undefined;
  /** Transitions handed to the host and not answered yet, oldest first. */
  readonly #unanswered = new Set<Transition>();
  /** A commit threw: nothing later may be written, and this instance drives nothing any more. */
  #writeFailed = false;

  /**
   * `claimRevision`: the snapshot was loaded without claiming it; the first transition claims it
   * (`Transition.claim`), and nothing runs before that transition commits. `onClaim` learns the outcome.
   */
  constructor(
    host: RunHost,
    saga: Saga,
    snapshot: RunSnapshot,
    claimRevision?: number,
    onClaim?: (won: boolean) => void,
  ) {
    this.host = host;
    this.claimRevision = claimRevision;
    this.onClaim = onClaim;
    this.saga = saga;
    this.plan = new RunPlan(saga, snapshot.steps);
    this.id = snapshot.run.id;
    this.record = snapshot.run;
    this.produced = { ...snapshot.run.input };
    for (const step of snapshot.steps) {
      this.stepRecords.set(step.action, step);
      if (step.output && step.status !== "running" && step.status !== "failed")
        this.keep(step.action, step.output);
    }
    this.pendingSignals = [...snapshot.signals];
    this.seenSignals = new Set(snapshot.signals.map((s) => s.seq));
    this.nextSeq = snapshot.nextEventSeq;
  }

  get status(): RunStatus {
    return this.record.status;
  }

  get steps(): ReadonlyMap<string, StepRecord> {
    return this.stepRecords;
  }

  /** The values produced so far (the saga input included). */
  get values(): Readonly<Record<string, unknown>> {
    return this.produced;
  }

  /** Re-runs the engine's decisions (a slot freed, a timer fired). */
  abstract advance(): void;

  /** Stops driving this run here without writing anything (shutdown, lost ownership). */
  detach(reason: unknown): void {
    if (this.detached) return;
    this.detached = true;
    this.clearTimer();
    for (const flight of this.inFlight.values()) flight.abort.abort(reason);
  }

  /** A signal or cancel arrived while this run was leaving memory: claim it again. */
  get wakeAfterRelease(): boolean {
    return this.arrivedWhileReleasing;
  }

  /** Whether an action body, undo or poll check is running. */
  get busy(): boolean {
    return this.inFlight.size > 0;
  }

  // ---- slots, inputs and outputs --------------------------------------------------------------

  protected reserve(name: string, phase: Phase): boolean {
    if (this.inFlight.size >= this.host.perRunConcurrency) return false;
    if (!this.host.acquireSlot(this)) return false;
    this.inFlight.set(name, { phase, abort: new Abort() });
    return true;
  }

  protected inputOf(action: ActionDefinition): Record<string, unknown> {
    const input: Record<string, unknown> = {};
    const instance = this.plan.hasInstances ? this.plan.instance(action.name) : undefined;
    if (instance) for (const name of action.reads) input[name] = this.scoped(instance, name);
    else for (const name of action.reads) input[name] = this.produced[name];
    return input;
  }

  /** Keeps a step's output: among the run's values, or its group iteration's or item's. */
  protected keep(step: string, output: JsonObject): void {
    const instance = this.plan.hasInstances ? this.plan.instance(step) : undefined;
    if (!instance) Object.assign(this.produced, output);
    else {
      const values = this.scopes.get(instance.scope);
      if (values) Object.assign(values, output);
      else this.scopes.set(instance.scope, { ...output });
    }
  }

  /** A value as a step of a group iteration or item reads it: its own scope's first, then the run's. */
  protected scoped(instance: Instance, name: string): unknown {
    const { group, index, scope } = instance;
    if (group.group.produces.has(name)) return this.scopes.get(scope)?.[name];
    switch (name) {
      case "iteration":
      case "index":
        return index;
      case "previous":
        return index === 1 ? null : (this.scopes.get(`${group.name}#${index - 1}`) ?? {});
      case "item":
        return this.itemsOf(group)[index - 1];
      default:
        return this.produced[name];
    }
  }

  /** A fan-out's items, as its step's state keeps them. */
  protected itemsOf(group: ActionDefinition): readonly unknown[] {
    const items = this.stepRecords.get(group.name)?.state?.items;
    return Array.isArray(items) ? items : [];
  }

  /** Validates an action's output against its schema; returns the error rather than throwing. */
  protected parseOutput(action: ActionDefinition, raw: unknown): JsonObject | Error {
    if (!action.outputSchema) return {};
    const parsed = action.outputSchema.safeParse(outputValues(action, raw));
    if (!parsed.success) {
      const detail = schemaIssues(parsed.error.issues, "(output)").join("; ");
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
  protected nextTimeTrigger(): number | undefined {
    let next = Number.POSITIVE_INFINITY;
    for (const [name, step] of this.stepRecords) {
      if (this.inFlight.has(name) || !step.state) continue;
      const s = step.state;
      for (const key of ["retryAt", "deadline", "until", "nextCheckAt"] as const) {
        const at = s[key];
        if (typeof at === "number" && at < next) next = at;
      }
    }
    return Number.isFinite(next) ? next : undefined;
  }

  protected armTimer(at: number | undefined): void {
    if (at === undefined) return this.clearTimer();
    if (this.timer && this.timerAt <= at) return;
    this.clearTimer();
    this.timerAt = at;
    this.timer = this.host.clock.setTimeout(
      () => {
        this.timer = undefined;
        this.timerAt = Number.POSITIVE_INFINITY;
        this.advance();
      },
      Math.max(0, at - this.host.clock.now()),
    );
  }

  protected clearTimer(): void {
    if (this.timer) this.host.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
  }

  protected waitForSlot(): void {
    this.slotWanted = true;
    this.armTimer(this.nextTimeTrigger());
  }

  get waitingForSlot(): boolean {
    return this.slotWanted;
  }

  // ---- persistence --------------------------------------------------------------------------

  protected setStep(changes: Changes, action: string, fields: Partial<StepRecord>): StepRecord {
    const prev = this.stepRecords.get(action) ?? blankStep(this.id, action);
    const step: StepRecord = { ...prev, ...fields, updatedAt: this.host.clock.now() };
    this.stepRecords.set(action, step);
    changes.steps.set(action, step);
    return step;
  }

  protected patch(changes: Changes, patch: RunPatch): void {
    const { release, ...fields } = patch;
    this.record = { ...this.record, ...fields, ...(release && { owner: null }) };
    changes.patch = { ...changes.patch, ...patch };
  }

  protected event(
    changes: Changes,
    type: LifecycleEventType,
    action: string | null,
    data: JsonObject | null,
  ): void {
    changes.events.push({
      runId: this.id,
      seq: this.nextSeq++,
      type,
      action,
      at: this.host.clock.now(),
      data,
    });
  }

  /**
   * Commits the changes, then publishes their events and runs what they start; `done` gets the result
   * (and, when storage threw, the error).
   */
  protected commit(changes: Changes, done?: (result: CommitResult, error?: unknown) => void): void {
    // A pending claim is committed even with nothing else to write: nothing may run before it.
    if (changes.empty && this.claimRevision === undefined) {
      for (const fn of changes.after) fn();
      done?.("ok");
      return;
    }
    const transition: Transition = { runId: this.id, owner: this.host.owner };
    if (changes.create) transition.create = changes.create;
    if (changes.patch) transition.run = changes.patch;
    if (changes.steps.size > 0) transition.steps = [...changes.steps.values()];
    if (changes.events.length > 0) transition.events = changes.events;
    if (changes.consumed.length > 0) transition.consumeSignals = changes.consumed;
    if (changes.notify) transition.notify = changes.notify;
    const claiming = this.claimRevision !== undefined;
    if (claiming) {
      transition.claim = { revision: this.claimRevision! };
      this.claimRevision = undefined;
    }
    this.#unanswered.add(transition);
    // A callback, not a promise: thousands of transitions may be in one group commit.
    this.host.commit(transition, (error, result) => {
      this.#unanswered.delete(transition);
      if (this.#writeFailed) {
        // Decided on top of a transition that was not stored: the host did not write it either.
        if (claiming) this.settleClaim(false);
        done?.("not_owner", error);
        return;
      }
      if (error !== undefined) {
        if (claiming) this.settleClaim(false);
        this.#failWrite(error, changes.create === undefined);
        done?.("not_owner", error);
        return;
      }
      try {
        this.committed(changes, result!, claiming);
      } finally {
        done?.(result!);
      }
    });
  }

  /**
   * Storage threw on a commit (a full disk): this instance's memory is now ahead of what is stored, so
   * it is dropped, never written from again. Transitions decided after the failed one are not written
   * either (the host skips them), bodies they would have started give their slots back, and running
   * bodies are aborted. The host continues the run from storage once writes succeed (`stored`:
   * it exists there; a failed creation left nothing).
   */
  #failWrite(error: unknown, stored: boolean): void {
    this.#writeFailed = true;
    this.detach(error);
    for (const [name, flight] of this.inFlight) {
      if (flight.started) continue;
      this.inFlight.delete(name);
      this.host.releaseSlot();
    }
    // After the rest of the failed batch is answered (synchronously, by the batcher): what is still
    // unanswered then waits in a later batch, and must be skipped there.
    queueMicrotask(() => this.host.writeFailed(this, error, [...this.#unanswered], stored));
  }

  protected settleClaim(won: boolean): void {
    const onClaim = this.onClaim;
    this.onClaim = undefined;
    onClaim?.(won);
  }

  protected committed(changes: Changes, result: CommitResult, claiming: boolean): void {
    if (claiming) this.settleClaim(result === "ok");
    if (result !== "ok" && (claiming || this.claimLost || changes.create)) {
      // Someone took or changed it since it was loaded, or created it first: no transition of ours
      // committed, so no body started; give the slots back and leave quietly (later commits fail
      // the same way).
      if (!this.claimLost) {
        this.claimLost = true;
        const why = changes.create ? "created elsewhere" : "claimed elsewhere";
        this.detach(new SlipwayError("conflict", `run ${this.id}: ${why}`));
        for (let i = 0; i < this.inFlight.size; i++) this.host.releaseSlot();
        this.inFlight.clear();
        this.host.claimLost(this);
      }
      return;
    }
    if (result !== "ok") {
      this.detach(new SlipwayError("conflict", `run ${this.id}: commit refused (${result})`));
      this.host.detached(this, result);
      return;
    }
    if (changes.events.length > 0 && this.host.listening(this.id)) {
      this.host.publish(
        changes.events.map((e) => ({
          type: e.type as LifecycleEventType,
          runId: this.id,
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

function blankStep(runId: string, action: string): StepRecord {
  return {
    runId,
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
