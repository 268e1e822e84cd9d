/**
 * Turns observability on for a runtime: Prometheus metrics when asked (a server), OpenTelemetry
 * traces when the environment says where to send them. Each is loaded only when on, so a process
 * with neither pays nothing for them, not even their modules' load time.
 */
import type { Executor } from "../engine/executor.js";
import type { JobResources } from "../pipeline/resources.js";
import type { JobRuntime } from "../pipeline/step-context.js";
import type { SqlStorage } from "../storage/open.js";
import type { Metrics } from "./metrics.js";
import { tracingOptions } from "./trace-ids.js";
import type { Tracing } from "./tracing.js";

export interface ObserveOptions {
  /** Keep Prometheus metrics (`GET /metrics` of a server). Default false. */
  metrics?: boolean | undefined;
  /** Where `OTEL_*` variables are read; default this process's environment. */
  env?: NodeJS.ProcessEnv | undefined;
}

export interface Observability {
  metrics?: Metrics | undefined;
  tracing?: Tracing | undefined;
  /** What jobs get from it: `traceparent` when tracing is on. */
  jobs: Pick<JobRuntime, "traceparent">;
  close(): Promise<void>;
}

export async function observe(
  sources: { storage: SqlStorage; executor: Executor; resources?: JobResources | undefined },
  options: ObserveOptions = {},
): Promise<Observability> {
  const metrics = options.metrics ? new (await import("./metrics.js")).Metrics(sources) : undefined;
  const traced = tracingOptions(options.env ?? process.env);
  const tracing = traced ? new (await import("./tracing.js")).Tracing(sources, traced) : undefined;
  return {
    metrics,
    tracing,
    jobs: tracing ? { traceparent: (ctx, phase) => tracing.traceparent(ctx, phase) } : {},
    async close() {
      metrics?.close();
      await tracing?.close();
    },
  };
}
