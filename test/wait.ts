/**
 * The bounded waits of the test suite: `eventually` polls a condition, `within` races a promise.
 * Both fail after their limit with a message naming what they waited for, never sleep a fixed time.
 */
import { setTimeout as delay } from "node:timers/promises";

/**
 * Default limit of a wait. Generous on purpose: a wait ends as soon as its condition holds, so the
 * limit costs time only when a test fails, and a busy machine (2 cores shared with other suites)
 * can be seconds slow.
 */
export const WAIT_MS = 15_000;

export interface WaitOptions {
  /** Fail after this long; default `WAIT_MS`. */
  timeoutMs?: number;
  /** Between two checks; default 10 ms. */
  intervalMs?: number;
  /** Consulted before every check: a reason to give up at once (the process being waited on died). */
  abort?: () => string | undefined;
}

/** What a condition returns while it does not hold yet. */
type Falsy = undefined | null | false | 0 | "";

/**
 * Polls `check` until it returns a truthy value, and returns that value. Fails after the limit (a number
 * is the limit in ms) with `what` in the message, or at once when `abort` gives a reason. `what` may be
 * a function, read when the wait fails, to say what was last seen.
 */
export async function eventually<T>(
  check: () => T | Falsy | Promise<T | Falsy>,
  what: string | (() => string),
  options: number | WaitOptions = {},
): Promise<T> {
  const {
    timeoutMs = WAIT_MS,
    intervalMs = 10,
    abort,
  } = typeof options === "number" ? { timeoutMs: options } : options;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const reason = abort?.();
    const said = () => (typeof what === "string" ? what : what());
    if (reason !== undefined) throw new Error(`gave up waiting for ${said()}: ${reason}`);
    const value = await check();
    if (value) return value;
    if (Date.now() >= deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${said()}`);
    await delay(intervalMs);
  }
}

/** Races `promise` against a limit, so a hung test fails with its reason instead of the test timeout. */
export async function within<T>(promise: Promise<T>, what: string, timeoutMs = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}
