/** `memory: auto`: what to request for a job from the peaks measured in its recent runs. */

const MiB = 2 ** 20;
const GiB = 2 ** 30;

export interface AutoMemoryOptions {
  /** Never request less than this. Default 256 MiB. */
  floorBytes?: number;
  /** Added on top of the p95, as a fraction: 0.2 requests 20 % more. Default 0.2. */
  margin?: number;
  /**
   * What a job with no measured run yet requests. Default 1 GiB: a blind floor of 256 MiB would let
   * a first run of a real build be admitted next to others and swap; 1 GiB is a safer first guess,
   * and the run's measured peak replaces it from the next run on.
   */
  unmeasuredBytes?: number;
  /** Never request more than this (the memory pool), so a once-bloated run can't make the job unadmittable. */
  maxBytes?: number;
}

/**
 * The 95th percentile (nearest rank) of `samples` (peak resident bytes of recent runs) times
 * `1 + margin`, rounded up to a whole MiB, at least `floorBytes` and at most `maxBytes`. Samples that
 * are not finite and positive are ignored; with none left, `unmeasuredBytes`.
 */
export function autoMemory(samples: readonly number[], options: AutoMemoryOptions = {}): number {
  const {
    floorBytes = 256 * MiB,
    margin = 0.2,
    unmeasuredBytes = GiB,
    maxBytes = Number.POSITIVE_INFINITY,
  } = options;
  if (!(margin >= 0)) throw new RangeError(`autoMemory: margin must be 0 or more, got ${margin}`);
  const valid = samples.filter((s) => Number.isFinite(s) && s > 0).sort((a, b) => a - b);
  let bytes: number;
  if (valid.length === 0) {
    bytes = Math.max(floorBytes, unmeasuredBytes);
  } else {
    const p95 = valid[Math.ceil(0.95 * valid.length) - 1]!;
    bytes = Math.max(floorBytes, Math.ceil((p95 * (1 + margin)) / MiB) * MiB);
  }
  return Math.min(bytes, maxBytes);
}
