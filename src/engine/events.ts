/**
 * Run events: one typed, namespaced map. Lifecycle events are persisted in the history and then
 * published; progress events are only published. Publishing to nobody costs nothing and keeps nothing.
 */
import type { JsonObject } from "../json.js";

export type LifecycleEventType =
  | "run:started"
  | "run:resumed"
  | "run:waiting"
  | "run:completed"
  | "run:compensating"
  | "run:compensated"
  | "run:cancelled"
  | "run:needs_attention"
  | "run:failed"
  | "action:started"
  | "action:waiting"
  | "action:completed"
  | "action:failed"
  | "undo:started"
  | "undo:completed"
  | "undo:failed"
  | "cleanup:started"
  | "cleanup:completed"
  | "cleanup:failed"
  | "signal:received"
  /** A loop starts another iteration (its condition did not hold); `data.after` says why, when `until` said. */
  | "loop:iteration";

export type RunEventType = LifecycleEventType | "action:progress";

/**
 * The event that ends an attempt (`action:completed`, `action:failed`, `cleanup:started` after a cut
 * short attempt, `undo:completed`, `undo:failed`, `cleanup:completed`, `cleanup:failed`) carries
 * `data.timing` when the attempt recorded facts about its timing (`ActionContext.timing`): a pipeline
 * job's wait for admission, `{ admission: { at, grantedAt, waits: [{ at, kind, resource, holder, position, message }] } }`
 * (pipeline/timing.ts). `slipway show`'s phases come from them; so can a listener's queue-wait figures.
 */
export interface RunEvent {
  type: RunEventType;
  runId: string;
  saga: string;
  runName: string | null;
  /** Position in the persisted history; absent for progress events, which are not persisted. */
  seq?: number;
  action: string | null;
  at: number;
  data: JsonObject | null;
}

export type EventListener = (event: RunEvent) => void;

/** Listeners for all runs and for single ones. */
export class EventBus {
  readonly #all = new Set<EventListener>();
  readonly #byRun = new Map<string, Set<EventListener>>();

  /** Whether anyone listens to this run (lets callers skip building progress events). */
  wants(runId: string): boolean {
    return this.#all.size > 0 || this.#byRun.has(runId);
  }

  on(listener: EventListener, runId?: string): () => void {
    if (runId === undefined) {
      this.#all.add(listener);
      return () => this.#all.delete(listener);
    }
    let set = this.#byRun.get(runId);
    if (!set) {
      set = new Set();
      this.#byRun.set(runId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#byRun.delete(runId);
    };
  }

  emit(event: RunEvent): void {
    for (const listener of this.#all) safely(listener, event);
    const set = this.#byRun.get(event.runId);
    if (set) for (const listener of set) safely(listener, event);
  }
}

function safely(listener: EventListener, event: RunEvent): void {
  try {
    listener(event);
  } catch {
    // A listener's bug must not break the run it watches.
  }
}

/** Statuses after which a run emits nothing more unless resumed by hand. */
export const ENDING_EVENTS: ReadonlySet<RunEventType> = new Set([
  "run:completed",
  "run:compensated",
  "run:cancelled",
  "run:needs_attention",
  "run:failed",
]);
