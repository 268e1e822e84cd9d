/**
 * Group commit, for any batched storage write: items handed in during one turn of the event loop go
 * to storage in one call (one transaction, one fsync), and each caller is answered only after that
 * call returned. Order is kept: an item is never written before one handed in earlier.
 */

/** How a caller is answered: an error, or the item's result. */
export type BatchCallback<Out> = (error: unknown, result: Out | undefined) => void;

interface Pending<In, Out> {
  item: In;
  done: BatchCallback<Out>;
}

export class Batcher<In, Out> {
  readonly #write: (items: In[]) => Promise<Out[]>;
  readonly #maxBatch: number;
  #queue: Pending<In, Out>[] = [];
  #scheduled = false;
  #flushing: Promise<void> | null = null;
  #idle: (() => void)[] = [];

  /** `write` must return one result per item, in order. */
  constructor(write: (items: In[]) => Promise<Out[]>, maxBatch = 2000) {
    this.#write = write;
    this.#maxBatch = maxBatch;
  }

  submit(item: In): Promise<Out> {
    return new Promise((resolve, reject) => {
      this.enqueue(item, (error, result) => (error === undefined ? resolve(result as Out) : reject(error)));
    });
  }

  /**
   * `submit` without a promise per item: `done` is called once the batch is written. For hot paths
   * (thousands of transitions at once), where a promise and its reaction per item are a measurable cost.
   */
  enqueue(item: In, done: BatchCallback<Out>): void {
    this.#queue.push({ item, done });
    this.#schedule();
  }

  /** Resolves once everything handed in so far is written (or failed). */
  drained(): Promise<void> {
    if (this.#queue.length === 0 && !this.#flushing) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // setImmediate, not a microtask: let every item made ready in this turn join the batch.
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
    const batch = this.#queue.length <= this.#maxBatch ? this.#queue : this.#queue.slice(0, this.#maxBatch);
    this.#queue = batch === this.#queue ? [] : this.#queue.slice(this.#maxBatch);
    let results: Out[];
    try {
      results = await this.#write(batch.map((p) => p.item));
      if (results.length !== batch.length)
        throw new Error(`batch of ${batch.length} got ${results.length} results`);
    } catch (error) {
      for (const p of batch) answer(p, error ?? new Error("batch write failed"), undefined);
      return;
    }
    for (let i = 0; i < batch.length; i++) answer(batch[i]!, undefined, results[i]);
  }
}

/** A caller's callback throwing must not keep the rest of the batch from being answered. */
function answer<In, Out>(p: Pending<In, Out>, error: unknown, result: Out | undefined): void {
  try {
    p.done(error, result);
  } catch (thrown) {
    queueMicrotask(() => {
      throw thrown;
    });
  }
}
