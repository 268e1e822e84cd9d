/** Shared pieces of the admission tests: a fake clock, needs and tickets in one line, and promise state you can read synchronously. */
import type { Grant } from "../../../src/scheduler/admission.js";
import type { Need, Ticket } from "../../../src/scheduler/types.js";

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;

/** A clock tests move by hand; starts at 10:00:00 local time on a fixed day. */
export function fakeClock(): { now: () => number; advance(ms: number): void; set(ms: number): void } {
  let time = new Date(2025, 0, 15, 10, 0, 0).getTime();
  return {
    now: () => time,
    advance: (ms) => {
      time += ms;
    },
    set: (ms) => {
      time = ms;
    },
  };
}

export function need(partial: Partial<Need> = {}): Need {
  return { memoryBytes: 0, cpu: 0, diskBytes: 0, locks: [], ...partial };
}

export function ticket(runId: string, extra: Partial<Ticket> = {}): Ticket {
  return { runId, runName: null, pipeline: "ci", job: "build", ...extra };
}

/** A request's outcome so far, filled in as its promise settles. */
export interface Tracked {
  grant?: Grant;
  error?: unknown;
  readonly settled: boolean;
}

export function track(promise: Promise<Grant>): Tracked {
  const state: { grant?: Grant; error?: unknown; settled: boolean } = { settled: false };
  promise.then(
    (grant) => {
      state.grant = grant;
      state.settled = true;
    },
    (error: unknown) => {
      state.error = error;
      state.settled = true;
    },
  );
  return state;
}

/** Lets settled promises run their callbacks (one macrotask turn; no timers involved). */
export function flush(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
