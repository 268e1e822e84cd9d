/** Runs a body under an AbortController, a timeout and a grace period, without trusting the body. */
import { TimeoutError } from "../errors.js";

/**
 * Settles with the body's result. On timeout the controller is aborted with a TimeoutError and the
 * attempt counts as timed out whatever the body does next. Once aborted for any reason, a body that
 * does not settle within `graceMs` is given up on (it may still be running: it ignored its signal).
 */
export function guard<T>(
  body: () => T | Promise<T>,
  controller: AbortController,
  timeoutMs: number | null,
  graceMs: number,
  timeoutMessage: string,
): Promise<Awaited<T>> {
  return new Promise<Awaited<T>>((resolve, reject) => {
    let settled = false;
    let timeout: NodeJS.Timeout | undefined;
    let grace: NodeJS.Timeout | undefined;
    const signal = controller.signal;
    const timedOut = () => signal.aborted && signal.reason instanceof TimeoutError;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timeout);
      clearTimeout(grace);
      signal.removeEventListener("abort", onAbort);
      settle();
    };
    const onAbort = () => {
      grace = setTimeout(() => finish(() => reject(signal.reason)), graceMs);
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs !== null)
      timeout = setTimeout(() => controller.abort(new TimeoutError(timeoutMessage)), timeoutMs);
    let result: Promise<Awaited<T>>;
    try {
      result = Promise.resolve(body()) as Promise<Awaited<T>>;
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => finish(() => (timedOut() ? reject(signal.reason) : resolve(value))),
      (error: unknown) => finish(() => reject(timedOut() ? signal.reason : error)),
    );
  });
}
