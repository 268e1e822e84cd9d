/** The executor's action slots: how many bodies run at once, and who gets the next free one. */
import type { RunState } from "./run-state.js";

export class ActionSlots {
  readonly #max: number;
  /** Whether a run waiting in the queue is still the one hosted under its id. */
  readonly #hosted: (run: RunState) => boolean;
  #active = 0;
  #stopped = false;
  /**
   * Runs waiting for an action slot, first come first served: a queue (array and head) for
   * order, a set for membership. A Set alone would do, but taking its first entry over and over
   * walks the deleted entries before it each time: quadratic when a thousand wait.
   */
  #queue: RunState[] = [];
  #head = 0;
  readonly #queued = new Set<RunState>();

  constructor(max: number, hosted: (run: RunState) => boolean) {
    this.#max = max;
    this.#hosted = hosted;
  }

  /** Takes a slot; on false the run is queued and advanced once one frees. */
  acquire(run: RunState): boolean {
    if (this.#active < this.#max && !this.#stopped) {
      this.#active++;
      return true;
    }
    if (!this.#queued.has(run)) {
      this.#queued.add(run);
      this.#queue.push(run);
    }
    return false;
  }

  /** Gives a slot back and hands it to the first run still waiting for one. */
  release(): void {
    this.#active--;
    const queue = this.#queue;
    while (this.#head < queue.length) {
      const next = queue[this.#head]!;
      queue[this.#head++] = undefined as unknown as RunState;
      // Left the queue meanwhile (forgotten), or replaced by another instance: skip it.
      if (!this.#queued.delete(next) || !this.#hosted(next)) continue;
      queueMicrotask(() => next.advance());
      break;
    }
    if (this.#head === queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= queue.length) {
      this.#queue = queue.slice(this.#head);
      this.#head = 0;
    }
  }

  /** The run no longer waits for a slot here. */
  forget(run: RunState): void {
    this.#queued.delete(run);
  }

  /** No slot is given out any more (the executor is closing). */
  stop(): void {
    this.#stopped = true;
  }

  /** Drops every waiting run. */
  clear(): void {
    this.#queue = [];
    this.#head = 0;
    this.#queued.clear();
  }
}
