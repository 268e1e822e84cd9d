/** Time as the engine sees it: the current time and one-shot timers, injectable so tests need not sleep. */

/** A timer set through a clock; only that clock's `clearTimeout` knows what it is. */
export type ClockTimer = object;

/**
 * Where the current time and timers come from. Methods may be called unbound (`const { now } = clock`),
 * so `clock.now` fits wherever a `() => number` is asked for. Repeating work sets a new timer each
 * time, which keeps the shape small and lets a test clock fire every repetition in order.
 */
export interface Clock {
  /** Milliseconds since the epoch, as `Date.now()`. */
  now(): number;
  /** Calls `callback` once, `ms` (clamped to >= 0) from now. */
  setTimeout(callback: () => void, ms: number): ClockTimer;
  /** Cancels a timer set by this clock; a timer that already fired, or none, is ignored. */
  clearTimeout(timer: ClockTimer | undefined): void;
}

/** The real time: `Date.now()` and the runtime's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, Math.max(0, ms)),
  clearTimeout: (timer) => clearTimeout(timer as NodeJS.Timeout | undefined),
};
