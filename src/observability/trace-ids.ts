/**
 * What tracing needs without loading OpenTelemetry: whether it is on (the standard `OTEL_*`
 * variables), and span ids derived from the run, so a run resumed by another process, or after a
 * restart, continues the same trace, and a job's `TRACEPARENT` names its span before it exists.
 */
import { createHash } from "node:crypto";

/** Where spans go, from the environment. */
export interface TracingOptions {
  /** The OTLP/HTTP traces URL (`…/v1/traces`). */
  url: string;
  /** `service.name` of the spans. */
  serviceName: string;
  /** Between exports of ended spans, ms (`OTEL_BSP_SCHEDULE_DELAY`); default the SDK's 5 s. */
  delayMs?: number;
  /**
   * How long one export may take, retries included, ms (`OTEL_EXPORTER_OTLP_TRACES_TIMEOUT`,
   * `OTEL_EXPORTER_OTLP_TIMEOUT`). Default 3 s, not the SDK's 10: the last export holds up a process's exit.
   */
  timeoutMs: number;
}

const DEFAULT_TIMEOUT_MS = 3_000;

/**
 * Tracing is on when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (the full URL) or `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (a base: `/v1/traces` is added) is set, unless `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`.
 */
export function tracingOptions(env: NodeJS.ProcessEnv): TracingOptions | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true") return undefined;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === "none") return undefined;
  const full = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim();
  const url = full || (base ? `${base.replace(/\/+$/, "")}/v1/traces` : undefined);
  if (!url) return undefined;
  const delayMs = Number(env.OTEL_BSP_SCHEDULE_DELAY);
  const timeoutMs = Number(env.OTEL_EXPORTER_OTLP_TRACES_TIMEOUT || env.OTEL_EXPORTER_OTLP_TIMEOUT);
  return {
    url,
    serviceName: env.OTEL_SERVICE_NAME?.trim() || "slipway",
    ...(delayMs > 0 && { delayMs }),
    timeoutMs: timeoutMs > 0 ? timeoutMs : DEFAULT_TIMEOUT_MS,
  };
}

function hex(bytes: number, ...parts: (string | number)[]): string {
  const id = createHash("sha256")
    .update(parts.join("\u0000"))
    .digest("hex")
    .slice(0, bytes * 2);
  // An all-zero id is invalid; a hash gives one with a chance of 2^-64 at most, but never let it through.
  return /^0+$/.test(id) ? `${id.slice(0, -1)}1` : id;
}

/**
 * The run's trace id: the same in every process that runs it, and its parent's for a child run (whose
 * id is `<parent>.<step>`: the trace is that of the run before the first `.`), so a pipeline's child
 * runs are in its trace.
 */
export function traceIdOf(runId: string): string {
  const dot = runId.indexOf(".");
  return hex(16, "trace", dot === -1 ? runId : runId.slice(0, dot));
}

/** A span's id: the run's span (`run`), an attempt, undo or cleanup of a step (with its attempt). */
export function spanIdOf(
  runId: string,
  kind: "run" | "attempt" | "undo" | "cleanup",
  action = "",
  attempt = 0,
): string {
  return hex(8, kind, runId, action, attempt);
}

/** The W3C `traceparent` of a span of the run, sampled. */
export function traceparentOf(runId: string, spanId: string): string {
  return `00-${traceIdOf(runId)}-${spanId}-01`;
}
