/**
 * Errors of the HTTP API and the one mapping from anything thrown to a status and a JSON body
 * `{ error: { code, message, problems? } }`, used by the app's single `onError`.
 */
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { ZodError } from "zod";
import { type ErrorCode, SlipwayError } from "../errors.js";
import { PipelineError, PipelineInputError } from "../pipeline/problems.js";
import { formatProblem, schemaIssues } from "../problems.js";
import type { ErrorResponse } from "../runs/schemas.js";

/** An error that belongs to HTTP itself (auth, malformed or oversized requests, unknown routes). */
export class ApiError extends Error {
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly problems?: string[],
  ) {
    super(message);
    this.name = "ApiError";
  }
}

const STATUS_OF: Record<ErrorCode, ContentfulStatusCode> = {
  definition: 400,
  invalid_input: 400,
  not_found: 404,
  conflict: 409,
  idempotency_conflict: 409,
  cancelled: 409,
  not_registered: 409,
  timeout: 504,
  invalid_output: 500,
  storage: 503,
  job_failed: 500,
  child_failed: 500,
  isolated_failed: 500,
  gave_up: 500,
  // 507 Insufficient Storage: the server could not store what the request asked for; reads still work.
  disk_full: 507,
};

/** The status and body for anything a handler threw. */
export function toHttpError(error: unknown): { status: ContentfulStatusCode; body: ErrorResponse } {
  const body = (code: string, message: string, problems?: readonly string[]): ErrorResponse => ({
    error: { code, message, ...(problems && problems.length > 0 && { problems: [...problems] }) },
  });
  if (error instanceof ApiError)
    return { status: error.status, body: body(error.code, error.message, error.problems) };
  if (error instanceof PipelineError)
    return {
      status: 400,
      body: body(error.code, error.message.split("\n")[0]!, error.problems.map(formatProblem)),
    };
  if (error instanceof PipelineInputError)
    return { status: 400, body: body(error.code, "the run's inputs or tiers are invalid", error.problems) };
  if (error instanceof SlipwayError)
    return { status: STATUS_OF[error.code], body: body(error.code, error.message) };
  if (error instanceof ZodError) {
    const problems = schemaIssues(error.issues, "(body)");
    return { status: 400, body: body("invalid_input", "the request is invalid", problems) };
  }
  if (error instanceof HTTPException) return { status: error.status, body: body("http", error.message) };
  return { status: 500, body: body("internal", "internal error: see the server's log") };
}
