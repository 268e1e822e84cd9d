/** Retry delays: exponential backoff, capped. */
import type { RetryPolicy } from "../definition/types.js";

/** Delay before the attempt that follows the `failures`-th failure. */
export function backoffDelay(policy: RetryPolicy, failures: number): number {
  const delay = policy.initialDelayMs * policy.backoffFactor ** Math.max(0, failures - 1);
  return Math.min(policy.maxDelayMs, delay);
}
