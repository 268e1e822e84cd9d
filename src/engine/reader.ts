/**
 * Reading runs without an executor: list them, read their steps, outputs and timestamps, wait for a
 * result and follow their events, from another process, with no write and no lock a writer waits
 * on. A dashboard, a CLI or a service that only watches opens one; the executors that run the sagas
 * are elsewhere. It learns of changes by polling storage (every `pollIntervalMs`).
 */
import { type Clock, systemClock } from "../clock.js";
import { NotFoundError } from "../errors.js";
import { openStorage } from "../storage/open.js";
import {
  type EventRecord,
  type RunQuery,
  type RunRecord,
  STOPPED_STATUSES,
  type Storage,
} from "../storage/types.js";
import { outcomeOf, type RunInfo, type RunOutcome } from "./handles.js";

export interface RunReaderOptions {
  /** How often `result` and `watch` look for changes; default 200 ms. */
  pollIntervalMs?: number;
  clock?: Clock;
}

export class RunReader {
  readonly #storage: Storage;
  readonly #pollMs: number;
  readonly #clock: Clock;
  readonly #owned: boolean;
  #closed = false;

  /** A reader over a storage the caller opened (and closes). */
  constructor(storage: Storage, options: RunReaderOptions = {}, owned = false) {
    this.#storage = storage;
    this.#pollMs = options.pollIntervalMs ?? 200;
    this.#clock = options.clock ?? systemClock;
    this.#owned = owned;
  }

  /**
   * A reader of the database `db`: a SQLite file's path (opened read-only; it must exist) or a
   * `postgres://` URL; `close` closes it.
   */
  static async open(db: string, options: RunReaderOptions = {}): Promise<RunReader> {
    const storage = openStorage(db, { readOnly: true });
    try {
      await storage.init();
    } catch (error) {
      await storage.close();
      throw error;
    }
    return new RunReader(storage, options, true);
  }

  /** Runs, newest first unless the query says otherwise (filters: saga, status, name, key, paging). */
  list(query: RunQuery = {}): Promise<RunRecord[]> {
    return this.#storage.listRuns(query);
  }

  /** A run's record (status, createdAt, updatedAt, endedAt, cause) and its steps (with their times and outputs). */
  async get(runId: string): Promise<RunInfo | undefined> {
    const snapshot = await this.#storage.load(runId);
    return snapshot && { run: snapshot.run, steps: snapshot.steps };
  }

  /** A run's events in order, after `afterSeq` if given. */
  history(runId: string, afterSeq?: number): Promise<EventRecord[]> {
    return this.#storage.history(runId, afterSeq);
  }

  /** The run's outcome once it has stopped (ended, or needs attention); waits for that. */
  async result<V = Record<string, unknown>>(
    runId: string,
    options: { signal?: AbortSignal } = {},
  ): Promise<RunOutcome<V>> {
    for (;;) {
      const snapshot = await this.#storage.load(runId);
      if (!snapshot) throw new NotFoundError(`no run ${runId}`);
      if (STOPPED_STATUSES.includes(snapshot.run.status)) return outcomeOf(snapshot) as RunOutcome<V>;
      await this.#pause(options.signal);
    }
  }

  /**
   * The run's events, in order: those after `afterSeq` (default: from the first), then new ones as
   * they are stored, ending once the run has stopped (or on `signal`, or when the loop breaks).
   */
  async *watch(
    runId: string,
    options: { afterSeq?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<EventRecord> {
    let seq = options.afterSeq ?? 0;
    for (;;) {
      if (this.#closed || options.signal?.aborted) return;
      // The status first: if the run had stopped by then, the history read after it has every event.
      const run = await this.#storage.getRun(runId);
      if (!run) throw new NotFoundError(`no run ${runId}`);
      for (const event of await this.#storage.history(runId, seq)) {
        seq = event.seq;
        yield event;
      }
      if (STOPPED_STATUSES.includes(run.status)) return;
      try {
        await this.#pause(options.signal);
      } catch {
        return;
      }
    }
  }

  /** Ends every watch at its next look; closes the storage if this reader opened it. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#owned) await this.#storage.close();
  }

  #pause(signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const timer = this.#clock.setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, this.#pollMs);
      const onAbort = () => {
        this.#clock.clearTimeout(timer);
        reject(signal!.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
