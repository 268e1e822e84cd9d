/**
 * How much a pipeline file (and the values a run is given) may ask of Slipway: one place for every
 * limit, each refused with a message that names it and says where it is set. docs/pipelines.md
 * (Limits) lists them; they are fixed, chosen far above what real pipelines use and far below what
 * would stall a server (an 8-axis × 8-value matrix is 16,777,216 legs).
 */

export interface Limit {
  /** The largest value allowed. */
  readonly max: number;
  /** What is counted, after the number: "legs per job". */
  readonly unit: string;
  /** The constant's name, so a message says where it is set. */
  readonly name: string;
  /** How a message shows the limit, when not as the number and the unit. */
  readonly shown?: string;
}

const limit = (name: string, max: number, unit: string, shown?: string): Limit =>
  shown === undefined ? { name, max, unit } : { name, max, unit, shown };

/** A pipeline file's text, in bytes (UTF-8). Below the server's 1 MiB request body, so any file that validates can be submitted. */
export const MAX_FILE_BYTES = limit("MAX_FILE_BYTES", 256 * 1024, "bytes");
/** How deep maps and lists nest in a pipeline file (the deepest real pipelines reach about 6). */
export const MAX_YAML_DEPTH = limit("MAX_YAML_DEPTH", 32, "levels of nesting");
/** Entries in one YAML map or list (`jobs`, `env`, `needs`, a matrix axis...). */
export const MAX_ITEMS = limit("MAX_ITEMS", 1_000, "entries in one map or list");
/** Jobs in one pipeline. */
export const MAX_JOBS = limit("MAX_JOBS", 256, "jobs in a pipeline");
/** Legs one job's matrix expands to (GitHub's limit too). */
export const MAX_MATRIX_LEGS = limit("MAX_MATRIX_LEGS", 256, "legs per job");
/** Iterations of one loop (`loop.max`): each adds its jobs' steps to the run. */
export const MAX_LOOP_ITERATIONS = limit("MAX_LOOP_ITERATIONS", 100, "iterations of a loop");
/** How deep child pipelines nest: a pipeline that `uses:` one that `uses:` another is 2 deep. */
export const MAX_USES_DEPTH = limit("MAX_USES_DEPTH", 4, "levels of pipelines using pipelines");
/** Steps of one run: jobs without a matrix count one, a matrix job one per leg, a loop its jobs times `max` (and one). */
export const MAX_STEPS = limit("MAX_STEPS", 1_024, "steps in a run");
/** Characters of one expression (the text inside `${{ }}`, or an `if:`). */
export const MAX_EXPRESSION_LENGTH = limit("MAX_EXPRESSION_LENGTH", 4_096, "characters in an expression");
/** How deep an expression nests: parentheses, `!` and chains of `==`, `&&`, `||`. */
export const MAX_EXPRESSION_DEPTH = limit("MAX_EXPRESSION_DEPTH", 64, "levels of nesting in an expression");
/**
 * Any duration in a pipeline file (`timeout`, `every`, `within`), in ms. Timers can't wait longer
 * than 2^31 - 1 ms (24.8 days): past it they fire at once, so `timeout: 30d` would time a job out
 * as it starts.
 */
export const MAX_DURATION = limit("MAX_DURATION", 24 * 24 * 3_600_000, "ms", "24 days");
/** One input value given to a run, in bytes (UTF-8); an environment variable over 128 KiB can't even start a process. */
export const MAX_INPUT_BYTES = limit("MAX_INPUT_BYTES", 64 * 1024, "bytes in an input value");

/** A run's name (`--name`, `run-name:`, the API's `name`): it is in every log line and every list. */
export const MAX_RUN_NAME = limit("MAX_RUN_NAME", 200, "characters in a run name");

/** Where the limits are set, for messages. */
export const LIMITS_SOURCE = "a fixed limit: see Limits in docs/pipelines.md";

/** `… is over the limit of 256 legs per job (MAX_MATRIX_LEGS, a fixed limit: …)`: the tail of every limit message. */
export function overLimit(limit: Limit): string {
  const shown = limit.shown ?? `${limit.max.toLocaleString("en-US")} ${limit.unit}`;
  return `over the limit of ${shown} (${limit.name}, ${LIMITS_SOURCE})`;
}
