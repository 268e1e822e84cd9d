/** Runs a body under an abort handle, a timeout and a grace period, without trusting the body. */
import type { Clock, ClockTimer } from "../clock.js";
import { TimeoutError } from "../errors.js";

/**
 * An abort handle whose AbortController is created only when a body asks for its signal: most bodies
 * never do, and a controller plus its listeners is a measurable share of a no-op action's cost.
 */
export class Abort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #onAbort: (() => void) | undefined;
  #onFault: ((error: unknown) => void) | undefined;

  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  get reason(): unknown {
    return this.#reason;
  }

  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason;
    this.#controller?.abort(reason);
    this.#onAbort?.();
  }

  /** One listener: the guard that runs the body. */
  set onAbort(listener: (() => void) | undefined) {
    this.#onAbort = listener;
  }

  /**
   * The body failed outside its promise (a throw from its timer or callback, see faults.ts): its
   * attempt fails with `error` at once, and its signal tells what is left of it to stop. False when
   * the attempt has already settled (a late error: nothing is left to charge it to).
   */
  fault(error: unknown): boolean {
    const settle = this.#onFault;
    if (!settle) return false;
    settle(error);
    this.abort(error);
    return true;
  }

  /** One listener: the guard that runs the body, while the body has not settled. */
  set onFault(listener: ((error: unknown) => void) | undefined) {
    this.#onFault = listener;
  }
}

/**
 * Settles with the body's result. On timeout the handle is aborted with a TimeoutError and the
 * attempt counts as timed out whatever the body does next. Once aborted for any reason, a body that
 * does not settle within `graceMs` is given up on (it may still be running: it ignored its signal).
 */
export function guard<T>(
  body: () => T | Promise<T>,
  abort: Abort,
  timeoutMs: number | null,
  graceMs: number,
  timeoutMessage: string,
  clock: Clock,
): Promise<Awaited<T>> {
  return new Promise<Awaited<T>>((resolve, reject) => {
    let settled = false;
    let timeout: ClockTimer | undefined;
    let grace: ClockTimer | undefined;
    const timedOut = () => abort.aborted && abort.reason instanceof TimeoutError;
    const finish = (settle: () => void) => {
      if (settled) return;
      settled = true;
      if (timeout) clock.clearTimeout(timeout);
      if (grace) clock.clearTimeout(grace);
      abort.onAbort = undefined;
      abort.onFault = undefined;
      settle();
    };
    const onAbort = () => {
      grace = clock.setTimeout(() => finish(() => reject(abort.reason)), graceMs);
    };
    if (abort.aborted) onAbort();
    else abort.onAbort = onAbort;
    abort.onFault = (error) => finish(() => reject(timedOut() ? abort.reason : error));
    if (timeoutMs !== null)
      timeout = clock.setTimeout(() => abort.abort(new TimeoutError(timeoutMessage)), timeoutMs);
    let result: Promise<Awaited<T>>;
    try {
      result = Promise.resolve(body()) as Promise<Awaited<T>>;
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (value) => finish(() => (timedOut() ? reject(abort.reason) : resolve(value))),
      (error: unknown) => finish(() => reject(timedOut() ? abort.reason : error)),
    );
  });
}
