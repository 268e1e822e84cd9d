/** Slipway's errors: one base class with a stable `code`, so callers branch on codes, not messages. */

export type ErrorCode =
  | "definition"
  | "invalid_input"
  | "invalid_output"
  | "not_found"
  | "conflict"
  /** The same idempotency key (for a start, the same run id) came with a different request than the first time. */
  | "idempotency_conflict"
  | "not_registered"
  | "timeout"
  | "cancelled"
  | "storage"
  /** A child run did not complete: it was undone, cancelled, or needs attention (or could not start). */
  | "child_failed"
  /** A pipeline job's command failed, timed out or crash-looped. */
  | "job_failed"
  /** An isolated action's thread or process ended before it answered: out of memory, `process.exit`, a crash. */
  | "isolated_failed"
  /** A loop reached its maximum of iterations without its condition holding; a fan-out had more items than its limit. */
  | "gave_up"
  /** A write failed because the volume under the database or the logs is full (SQLITE_FULL, ENOSPC). */
  | "disk_full";

export class SlipwayError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** A saga definition is inconsistent (missing producer, cycle...). Raised when the saga is built. */
export class SagaDefinitionError extends SlipwayError {
  readonly problems: string[];
  constructor(saga: string, problems: string[]) {
    super("definition", `saga "${saga}" is invalid:\n  - ${problems.join("\n  - ")}`);
    this.problems = problems;
  }
}

/** A value failed its schema or is not JSON-serializable. */
export class ValidationError extends SlipwayError {}

export class NotFoundError extends SlipwayError {
  constructor(message: string) {
    super("not_found", message);
  }
}

/**
 * A start named a run id that exists with a different saga or input. The same id with the
 * same saga and input is not an error: it returns the existing run.
 */
export class IdempotencyConflictError extends SlipwayError {
  constructor(message: string) {
    super("idempotency_conflict", message);
  }
}

export class TimeoutError extends SlipwayError {
  constructor(message: string) {
    super("timeout", message);
  }
}

export class CancelledError extends SlipwayError {
  constructor(message: string) {
    super("cancelled", message);
  }
}

/**
 * Whether `error` (or what caused it) says the disk is full: SQLite's SQLITE_FULL, the system's ENOSPC
 * or EDQUOT (a quota is as full as a full disk).
 */
export function isDiskFull(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    // 53100: PostgreSQL's disk_full.
    if (
      code === "disk_full" ||
      code === "SQLITE_FULL" ||
      code === "ENOSPC" ||
      code === "EDQUOT" ||
      code === "53100"
    )
      return true;
  }
  return false;
}

/**
 * A write that failed on a full disk, as the error a user reads: what could not be written and where
 * (`what`: "the database /srv/slipway.db"). Anything else is returned as it is.
 */
export function diskFullError(error: unknown, what: string): unknown {
  if (!isDiskFull(error) || (error instanceof SlipwayError && error.code === "disk_full")) return error;
  return new SlipwayError("disk_full", `the disk is full: cannot write ${what}`, { cause: error });
}

/** The plain, persistable shape of an error, as storage keeps it (a failed step, the cause of a rollback). */
export interface ErrorInfo {
  name: string;
  message: string;
  code?: string;
  stack?: string;
}

/** Converts anything thrown into the plain, persistable shape kept in storage. */
export function toErrorInfo(error: unknown): ErrorInfo {
  if (error instanceof Error) {
    const info: ErrorInfo = { name: error.name, message: error.message };
    const code = (error as { code?: unknown }).code;
    if (typeof code === "string") info.code = code;
    if (error.stack) info.stack = error.stack;
    return info;
  }
  return { name: "Error", message: typeof error === "string" ? error : safeString(error) };
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
