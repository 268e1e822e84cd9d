/**
 * Execution events: one typed, namespaced map. Lifecycle events are persisted in the history and then
 * published; progress events are only published. Publishing to nobody costs nothing and keeps nothing.
 */
import type { JsonObject } from "../json.js";

export type LifecycleEventType =
  | "execution:started"
  | "execution:resumed"
  | "execution:waiting"
  | "execution:completed"
  | "execution:compensating"
  | "execution:compensated"
  | "execution:cancelled"
  | "execution:needs_attention"
  | "execution:failed"
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
  | "signal:received";

export type ExecutionEventType = LifecycleEventType | "action:progress";

export interface ExecutionEvent {
  type: ExecutionEventType;
  executionId: string;
  saga: string;
  runName: string | null;
  /** Position in the persisted history; absent for progress events, which are not persisted. */
  seq?: number;
  action: string | null;
  at: number;
  data: JsonObject | null;
}

export type EventListener = (event: ExecutionEvent) => void;

/** Listeners for all executions and for single ones. */
export class EventBus {
  readonly #all = new Set<EventListener>();
  readonly #byExecution = new Map<string, Set<EventListener>>();

  /** Whether anyone listens to this execution (lets callers skip building progress events). */
  wants(executionId: string): boolean {
    return this.#all.size > 0 || this.#byExecution.has(executionId);
  }

  on(listener: EventListener, executionId?: string): () => void {
    if (executionId === undefined) {
      this.#all.add(listener);
      return () => this.#all.delete(listener);
    }
    let set = this.#byExecution.get(executionId);
    if (!set) {
      set = new Set();
      this.#byExecution.set(executionId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#byExecution.delete(executionId);
    };
  }

  emit(event: ExecutionEvent): void {
    for (const listener of this.#all) safely(listener, event);
    const set = this.#byExecution.get(event.executionId);
    if (set) for (const listener of set) safely(listener, event);
  }
}

function safely(listener: EventListener, event: ExecutionEvent): void {
  try {
    listener(event);
  } catch {
    // A listener's bug must not break the execution it watches.
  }
}

/** Statuses after which an execution emits nothing more unless resumed by hand. */
export const ENDING_EVENTS: ReadonlySet<ExecutionEventType> = new Set([
  "execution:completed",
  "execution:compensated",
  "execution:cancelled",
  "execution:needs_attention",
  "execution:failed",
]);
