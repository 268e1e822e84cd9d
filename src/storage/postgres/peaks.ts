/**
 * Measured job peaks in PostgreSQL (see {@link PeakStore}), the newest 100 per job. Admission asks
 * while it decides, synchronously: the peaks are read once when the storage opens and kept here,
 * and each new one is written behind (`flushed` waits for the writes). Another process's peaks are
 * seen at its next opening: memory belongs to each machine anyway.
 */
import type { PeakStore } from "../types.js";
import type { Connection } from "./connection.js";

/** Measured peaks kept per job: plenty for a p95, bounded so the table doesn't grow forever. */
const KEPT_PEAKS = 100;

const keyOf = (pipeline: string, job: string) => JSON.stringify([pipeline, job]);
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

export class PostgresPeaks implements PeakStore {
  readonly #db: Connection;
  readonly #cache = new Map<string, number[]>();
  #writes: Promise<void> = Promise.resolve();

  constructor(db: Connection) {
    this.#db = db;
  }

  /** Reads the kept peaks (once, as the storage opens). */
  async load(): Promise<void> {
    const peaks = await this.#db.query<{ pipeline: string; job: string; peak_bytes: number }>(
      "SELECT pipeline, job, peak_bytes FROM job_peaks ORDER BY at DESC",
    );
    for (const row of peaks.rows) {
      const key = keyOf(row.pipeline, row.job);
      const list = this.#cache.get(key) ?? [];
      if (list.length < KEPT_PEAKS) list.push(row.peak_bytes);
      this.#cache.set(key, list);
    }
  }

  /** Resolves once every peak recorded so far is written (or given up on). */
  flushed(): Promise<void> {
    return this.#writes;
  }

  recordPeak(pipeline: string, job: string, peakBytes: number, at: number): void {
    const bytes = Math.round(peakBytes);
    const key = keyOf(pipeline, job);
    const list = this.#cache.get(key) ?? [];
    list.unshift(bytes);
    if (list.length > KEPT_PEAKS) list.length = KEPT_PEAKS;
    this.#cache.set(key, list);
    this.#writes = this.#writes.then(() => this.#write(pipeline, job, bytes, at));
  }

  recentPeaks(pipeline: string, job: string, limit: number): number[] {
    return (this.#cache.get(keyOf(pipeline, job)) ?? []).slice(0, limit);
  }

  measuredJobs(): { pipeline: string; job: string }[] {
    return (
      [...this.#cache.entries()]
        .filter(([, list]) => list.length > 0)
        .map(([key]) => {
          const [pipeline, job] = JSON.parse(key) as [string, string];
          return { pipeline, job };
        })
        // By pipeline then job, in code-unit order, as SQLite's ORDER BY sorts them.
        .sort((a, b) => byText(a.pipeline, b.pipeline) || byText(a.job, b.job))
    );
  }

  async #write(pipeline: string, job: string, bytes: number, at: number): Promise<void> {
    try {
      await this.#db.transaction(async (client) => {
        await client.query("INSERT INTO job_peaks (pipeline, job, at, peak_bytes) VALUES ($1, $2, $3, $4)", [
          pipeline,
          job,
          at,
          bytes,
        ]);
        await client.query(
          `DELETE FROM job_peaks WHERE pipeline = $1 AND job = $2 AND ctid NOT IN
            (SELECT ctid FROM job_peaks WHERE pipeline = $1 AND job = $2 ORDER BY at DESC LIMIT ${KEPT_PEAKS})`,
          [pipeline, job],
        );
      });
    } catch {
      // A lost peak only makes `memory: auto` estimate from fewer samples.
    }
  }
}
