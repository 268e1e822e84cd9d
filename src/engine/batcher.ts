/**
 * Group commit, for any batched storage write: items handed in during one turn of the event loop go
 * to storage in one call (one transaction, one fsync), and each caller is answered only after that
 * call returned. Order is kept: an item is never written before one handed in earlier.
 */

interface Pending<In, Out> {
  item: In;
  resolve: (result: Out) => void;
  reject: (error: unknown) => void;
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
      this.#queue.push({ item, resolve, reject });
      this.#schedule();
    });
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
    const batch = this.#queue.splice(0, this.#maxBatch);
    try {
      const results = await this.#write(batch.map((p) => p.item));
      if (results.length !== batch.length)
        throw new Error(`batch of ${batch.length} got ${results.length} results`);
      for (const [i, p] of batch.entries()) p.resolve(results[i]!);
    } catch (error) {
      for (const p of batch) p.reject(error);
    }
  }
}
