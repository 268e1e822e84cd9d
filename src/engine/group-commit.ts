/**
 * Group commit: transitions handed in during one turn of the event loop are written in one storage
 * call (one transaction, one fsync) and each caller is answered only after that call committed.
 * Order is kept: a transition is never committed before one handed in earlier.
 */
import type { CommitResult, Storage, Transition } from "../storage/types.js";

interface Pending {
  transition: Transition;
  resolve: (result: CommitResult) => void;
  reject: (error: unknown) => void;
}

export class GroupCommitter {
  readonly #storage: Storage;
  readonly #maxBatch: number;
  #queue: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  #idle: (() => void)[] = [];

  constructor(storage: Storage, maxBatch = 2000) {
    this.#storage = storage;
    this.#maxBatch = maxBatch;
  }

  commit(transition: Transition): Promise<CommitResult> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ transition, resolve, reject });
      this.#schedule();
    });
  }

  /** Resolves once everything handed in so far is committed (or failed). */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && !this.#flushing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: let every transition made ready in this turn join the batch.
    setImmediate(() => {
      this.#scheduled = false;
      this.#flushing = this.#flush().finally(() => {
        this.#flushing = null;
        if (this.#queue.length > 0) this.#schedule();
        else for (const resolve of this.#idle.splice(0)) resolve();
      });
    });
  }

  async #flush(): Promise<void> {
    const batch = this.#queue.splice(0, this.#maxBatch);
    try {
      const results = await this.#storage.commit(batch.map((p) => p.transition));
      for (const [i, p] of batch.entries()) p.resolve(results[i] ?? "not_owner");
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }
}
