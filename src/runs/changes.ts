/**
 * Server-wide change notices: a run was created or changed status, the queue changed. Small (ids,
 * status, pipeline; never whole records): a listener re-reads what it shows. Each notice has a cursor
 * (`<boot>.<n>`) a listener resumes after; a recent window is kept for that, and a listener too far
 * behind (or from before a restart) is told to re-read everything (`reset`). Nothing is persisted.
 */
import type { RunEvent, RunEventType } from "../engine/events.js";
import { SlipwayError } from "../errors.js";
import type { RunStatus } from "../storage/types.js";

export type RunChange =
  /** A run was created (`running`) or its status changed. */
  | { kind: "run"; cursor: string; run: string; pipeline: string; status: RunStatus }
  /** A job of this run entered or left the queue (started, waited, was admitted, ended). */
  | { kind: "queue"; cursor: string; run: string; pipeline: string; job: string | null }
  /** Notices were missed (a listener too slow, resuming after a restart) or runs were pruned: re-read everything. */
  | { kind: "reset"; cursor: string };

export interface ChangeOptions {
  /** Resume after this cursor (as `Last-Event-ID`): missed notices are replayed, or a `reset` comes first. */
  after?: string | undefined;
  signal?: AbortSignal | undefined;
}

/** Run events that change a run's status, and the status they leave it in. */
const STATUS_OF: Partial<Record<RunEventType, RunStatus>> = {
  "run:started": "running",
  "run:resumed": "running",
  "run:waiting": "waiting",
  "run:completed": "completed",
  "run:compensating": "compensating",
  "run:compensated": "compensated",
  "run:cancelled": "cancelled",
  "run:needs_attention": "needs_attention",
  "run:failed": "failed",
};

/** Run events that move a job into, out of or within the queue. */
const QUEUE_EVENTS: ReadonlySet<RunEventType> = new Set([
  "action:started",
  "action:waiting",
  "action:completed",
  "action:failed",
  "signal:received",
  "loop:iteration",
]);

export interface ChangeFeedOptions {
  /** Notices kept for listeners resuming after a cursor. Default 1,000. */
  window?: number;
  /** Notices held for one listener that does not read them; past it they are dropped for one `reset`. Default 1,000. */
  maxPending?: number;
}

interface Listener {
  pending: RunChange[];
  /** Notices were dropped: the next thing it reads is a `reset`. */
  overflowed: boolean;
  wake: (() => void) | undefined;
}

/** The notices of one process, fed by its executor's events (`publish`). */
export class ChangeFeed {
  /** Tells this process's cursors from another's (a restarted server's). */
  readonly #boot = `${Date.now().toString(36)}${Math.floor(Math.random() * 36 ** 4).toString(36)}`;
  readonly #window: number;
  readonly #maxPending: number;
  #n = 0;
  readonly #recent: RunChange[] = [];
  readonly #listeners = new Set<Listener>();
  #closed = false;

  constructor(options: ChangeFeedOptions = {}) {
    this.#window = options.window ?? 1000;
    this.#maxPending = options.maxPending ?? 1000;
  }

  /** Listeners now (tests, metrics). */
  get listeners(): number {
    return this.#listeners.size;
  }

  /** The notice a run event makes, if any. Progress events count only when admission's verdict changes. */
  publish(event: RunEvent): void {
    const status = STATUS_OF[event.type];
    if (status !== undefined) {
      this.#add({ kind: "run", cursor: "", run: event.runId, pipeline: event.saga, status });
      return;
    }
    const queued = event.type === "action:progress" && event.data?.queued !== undefined;
    if (queued || QUEUE_EVENTS.has(event.type))
      this.#add({ kind: "queue", cursor: "", run: event.runId, pipeline: event.saga, job: event.action });
  }

  #add(change: RunChange): void {
    if (this.#closed) return;
    const notice = { ...change, cursor: this.#cursor(++this.#n) };
    this.#recent.push(notice);
    if (this.#recent.length > this.#window) this.#recent.shift();
    for (const listener of this.#listeners) {
      if (listener.overflowed) continue;
      if (listener.pending.length >= this.#maxPending) {
        // A listener that stopped reading does not grow memory: its notices go, it re-reads instead.
        listener.pending = [];
        listener.overflowed = true;
      } else listener.pending.push(notice);
      listener.wake?.();
    }
  }

  #cursor(n: number): string {
    return `${this.#boot}.${n}`;
  }

  /** The notices after `after`, then live ones until `signal` aborts or the feed closes. */
  listen(options: ChangeOptions = {}): AsyncIterable<RunChange> {
    const listener: Listener = { pending: [], overflowed: false, wake: undefined };
    const after = options.after;
    if (after !== undefined) {
      const match = /^([0-9a-z]+)\.(\d+)$/.exec(after);
      if (!match)
        throw new SlipwayError(
          "invalid_input",
          `Last-Event-ID must be a cursor from this stream (<boot>.<n>), got "${after}"`,
        );
      const n = Number(match[2]);
      const oldest = this.#recent[0] ? this.#n - this.#recent.length + 1 : this.#n + 1;
      // Another process's cursor, or one older than the window (or beyond the last): re-read all.
      if (match[1] !== this.#boot || n < oldest - 1 || n > this.#n) listener.overflowed = true;
      else listener.pending = this.#recent.slice(this.#recent.length - (this.#n - n));
    }
    this.#listeners.add(listener);
    const feed = this;
    const { signal } = options;
    async function* notices(): AsyncGenerator<RunChange> {
      const onAbort = () => listener.wake?.();
      signal?.addEventListener("abort", onAbort);
      try {
        while (!signal?.aborted && !feed.#closed) {
          if (listener.overflowed) {
            listener.overflowed = false;
            yield { kind: "reset", cursor: feed.#cursor(feed.#n) };
            continue;
          }
          const next = listener.pending.shift();
          if (next) {
            yield next;
            continue;
          }
          await new Promise<void>((resolve) => {
            listener.wake = resolve;
          });
          listener.wake = undefined;
        }
      } finally {
        signal?.removeEventListener("abort", onAbort);
        feed.#listeners.delete(listener);
      }
    }
    return notices();
  }

  /** Tells every listener to re-read everything (what changed has no notice of its own: runs pruned). */
  reset(): void {
    for (const listener of this.#listeners) {
      listener.pending = [];
      listener.overflowed = true;
      listener.wake?.();
    }
  }

  /** Ends every listener's notices (the process is closing). */
  close(): void {
    this.#closed = true;
    for (const listener of this.#listeners) listener.wake?.();
  }
}
