/**
 * Requests take turns: each API request waits in one first-come-first-served line, and the server
 * starts only a few milliseconds' worth (of CPU) of them per turn of the event loop. Under load the loop keeps
 * turning, so timers, job exits and the engine's commits are not held up behind a crowd of requests,
 * and so new connections are accepted (Node accepts one pending connection per turn of its loop: a
 * loop that turns twice a second leaves a new client waiting for seconds). In line, no request kind
 * can starve another: a request waits behind those that came before it, never behind later ones.
 */

export interface TurnsOptions {
  /** How much CPU time one turn of the loop may spend starting requests, ms. Default 4. */
  budgetMs?: number;
  /** At most this many requests started in one turn. Default 32. */
  maxPerTurn?: number;
  /** The clock for the budget, ms (tests); default this process's CPU time. */
  now?: () => number;
}

export class Turns {
  readonly #budgetMs: number;
  readonly #maxPerTurn: number;
  readonly #now: () => number;
  #line: (() => void)[] = [];
  #head = 0;
  /** Grants queued for the coming check phase. */
  #pending = 0;
  /** When the first grant of the current check phase ran. */
  #turnStart: number | undefined;

  constructor(options: TurnsOptions = {}) {
    this.#budgetMs = options.budgetMs ?? 4;
    this.#maxPerTurn = options.maxPerTurn ?? 32;
    // CPU time, not the wall clock: on a busy machine, time the process spends waiting for a core
    // would otherwise shrink each turn to a request or two, and every write to a batch of one.
    this.#now = options.now ?? cpuMs;
  }

  /** Requests waiting for their turn. */
  get waiting(): number {
    return this.#line.length - this.#head;
  }

  /** Resolves when it is this request's turn. */
  take(): Promise<void> {
    return new Promise((resolve) => {
      this.#line.push(resolve);
      this.#schedule();
    });
  }

  /**
   * One setImmediate per request that may start in the coming check phase: Node runs the microtasks
   * after each one, so a started request runs up to its first wait before the next grant looks at
   * the clock, and grants past the budget leave their request for the next turn.
   */
  #schedule(): void {
    if (this.#pending > 0 || this.waiting === 0) return;
    this.#turnStart = undefined;
    const n = Math.min(this.waiting, this.#maxPerTurn);
    this.#pending = n;
    for (let i = 0; i < n; i++) setImmediate(this.#grant);
  }

  readonly #grant = (): void => {
    this.#pending--;
    const now = this.#now();
    this.#turnStart ??= now;
    if (now - this.#turnStart <= this.#budgetMs && this.waiting > 0) {
      const next = this.#line[this.#head]!;
      this.#line[this.#head++] = undefined as unknown as () => void;
      if (this.#head > 1024 && this.#head * 2 > this.#line.length) {
        this.#line = this.#line.slice(this.#head);
        this.#head = 0;
      }
      next();
    }
    // The last grant of this phase schedules the next: those run in the loop's next turn.
    if (this.#pending === 0) this.#schedule();
  };
}

function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}
