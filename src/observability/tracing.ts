/**
 * OpenTelemetry traces of runs, exported over OTLP/HTTP: a span per run, per job attempt, per
 * admission wait and per undo or cleanup, with the CI/CD semantic-convention attributes. Made from the
 * engine's run events and admission's grants, never on the engine's path: with tracing off (see
 * trace-ids.ts) this module is not even loaded. Ids come from the run (trace-ids.ts), so the spans of a
 * run resumed after a restart join the same trace, and a job's `TRACEPARENT` names its attempt's span.
 * The run's span is made when the run ends, from its creation time in storage.
 */
import {
  type Attributes,
  type Context,
  ROOT_CONTEXT,
  type Span,
  SpanKind,
  SpanStatusCode,
  TraceFlags,
  type Tracer,
  trace,
} from "@opentelemetry/api";
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http";
import { defaultResource, resourceFromAttributes } from "@opentelemetry/resources";
import {
  BasicTracerProvider,
  BatchSpanProcessor,
  type IdGenerator,
  RandomIdGenerator,
  type SpanExporter,
} from "@opentelemetry/sdk-trace-base";
import type { ActionContext } from "../definition/types.js";
import { ENDING_EVENTS, type RunEvent } from "../engine/events.js";
import type { Executor } from "../engine/executor.js";
import type { Admitted, JobResources } from "../pipeline/resources.js";
import type { LogPhase } from "../shell/run-directory.js";
import type { Storage } from "../storage/types.js";
import { jobOf, runResult } from "./names.js";
import { spanIdOf, type TracingOptions, traceIdOf, traceparentOf } from "./trace-ids.js";

export interface TracingSources {
  storage: Storage;
  executor: Executor;
  resources?: JobResources | undefined;
}

/** Most reasons told to a waiting job that its wait span keeps as events. */
const MAX_WAIT_EVENTS = 20;

/** Hands the SDK the ids this module decided (one span at a time), random ones otherwise. */
class ChosenIds implements IdGenerator {
  traceId: string | undefined;
  spanId: string | undefined;
  readonly #random = new RandomIdGenerator();

  generateTraceId(): string {
    const id = this.traceId ?? this.#random.generateTraceId();
    this.traceId = undefined;
    return id;
  }

  generateSpanId(): string {
    const id = this.spanId ?? this.#random.generateSpanId();
    this.spanId = undefined;
    return id;
  }
}

export class Tracing {
  readonly #provider: BasicTracerProvider;
  readonly #tracer: Tracer;
  readonly #ids = new ChosenIds();
  readonly #sources: TracingSources;
  readonly #closeWaitMs: number;
  readonly #stop: (() => void)[] = [];
  /** Spans open now, by run, then `kind NUL action`. */
  readonly #open = new Map<string, Map<string, Span>>();
  /** Why each waiting step waits, as admission told it, by `run NUL action`. */
  readonly #reasons = new Map<string, { at: number; reason: string }[]>();

  /** `exporter`: where spans go instead of OTLP/HTTP at `options.url` (tests). */
  constructor(sources: TracingSources, options: TracingOptions, exporter?: SpanExporter) {
    this.#sources = sources;
    this.#closeWaitMs = options.timeoutMs + 500;
    this.#provider = new BasicTracerProvider({
      resource: defaultResource().merge(
        resourceFromAttributes({
          "service.name": options.serviceName,
          // Which executor sent it, when several share a database.
          "service.instance.id": sources.executor.owner,
        }),
      ),
      idGenerator: this.#ids,
      spanProcessors: [
        new BatchSpanProcessor(
          exporter ?? new OTLPTraceExporter({ url: options.url, timeoutMillis: options.timeoutMs }),
          options.delayMs === undefined ? {} : { scheduledDelayMillis: options.delayMs },
        ),
      ],
    });
    this.#tracer = this.#provider.getTracer("slipway");
    this.#stop.push(sources.executor.on((event) => this.#event(event)));
    if (sources.resources) this.#stop.push(sources.resources.onAdmitted((a) => this.#admitted(a)));
  }

  /** The `traceparent` a job's process gets: its attempt's span (undo, cleanup: theirs; a poll: the run's). */
  traceparent(ctx: ActionContext, phase: LogPhase): string {
    const { runId, action, attempt } = ctx;
    const spanId =
      phase === "poll"
        ? spanIdOf(runId, "run")
        : spanIdOf(runId, phase === "run" ? "attempt" : phase, action, attempt);
    return traceparentOf(runId, spanId);
  }

  /**
   * Stops listening and exports what ended, waiting for the collector about one export's timeout at
   * most (one that does not answer must not hold up a server's stop or a `slipway run`'s exit). Spans
   * still open stay unexported: their run continues elsewhere, in the same trace.
   */
  async close(): Promise<void> {
    for (const stop of this.#stop.splice(0)) stop();
    this.#open.clear();
    this.#reasons.clear();
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#closeWaitMs);
      timer.unref();
    });
    await Promise.race([this.#provider.shutdown().catch(() => {}), late]);
    clearTimeout(timer);
  }

  /** Exports every span ended so far. */
  flush(): Promise<void> {
    return this.#provider.forceFlush();
  }

  /** A span with the ids this module chose; `parent` is a span of the same run. */
  #start(
    runId: string,
    name: string,
    spanId: string | undefined,
    parent: string | undefined,
    start: number,
    attributes: Attributes,
    kind = SpanKind.INTERNAL,
  ): Span {
    const traceId = traceIdOf(runId);
    const context: Context = parent
      ? trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId: parent, traceFlags: TraceFlags.SAMPLED })
      : ROOT_CONTEXT;
    this.#ids.traceId = parent ? undefined : traceId;
    this.#ids.spanId = spanId;
    try {
      return this.#tracer.startSpan(name, { kind, startTime: start, attributes }, context);
    } finally {
      this.#ids.traceId = undefined;
      this.#ids.spanId = undefined;
    }
  }

  #event(event: RunEvent): void {
    const { runId, action } = event;
    if (ENDING_EVENTS.has(event.type)) {
      this.#ended(event);
      return;
    }
    if (action === null) return;
    const attempt = typeof event.data?.attempt === "number" ? event.data.attempt : 0;
    switch (event.type) {
      case "action:started":
        this.#open.get(runId)?.get(`attempt\u0000${action}`)?.end(event.at);
        this.#opened(runId, `attempt\u0000${action}`, this.#step(event, "attempt", jobOf(action), attempt));
        return;
      case "undo:started":
        this.#opened(
          runId,
          `undo\u0000${action}`,
          this.#step(event, "undo", `undo ${jobOf(action)}`, attempt),
        );
        return;
      case "cleanup:started":
        this.#opened(
          runId,
          `cleanup\u0000${action}`,
          this.#step(event, "cleanup", `cleanup ${jobOf(action)}`, attempt),
        );
        return;
      case "action:completed":
        return this.#close(event, "attempt", undefined);
      case "action:failed":
        return this.#close(event, "attempt", String(event.data?.error ?? "failed"));
      case "undo:completed":
        return this.#close(event, "undo", undefined);
      case "undo:failed":
        return this.#close(event, "undo", String(event.data?.error ?? "failed"));
      case "cleanup:completed":
        return this.#close(event, "cleanup", undefined);
      case "cleanup:failed":
        return this.#close(event, "cleanup", String(event.data?.error ?? "failed"));
      case "action:progress":
        if (event.data?.queued === true) {
          const key = `${runId}\u0000${action}`;
          const told = this.#reasons.get(key) ?? [];
          const reason = String(event.data.message ?? "").replace(/^queued: /, "");
          if (told.length < MAX_WAIT_EVENTS) told.push({ at: event.at, reason });
          this.#reasons.set(key, told);
        }
        return;
      default:
        return;
    }
  }

  #step(event: RunEvent, kind: "attempt" | "undo" | "cleanup", name: string, attempt: number): Span {
    const action = event.action!;
    // A cleanup belongs to the attempt it cleans up after; an attempt and an undo to the run.
    const parent =
      kind === "cleanup" ? spanIdOf(event.runId, "attempt", action, attempt) : spanIdOf(event.runId, "run");
    return this.#start(event.runId, name, spanIdOf(event.runId, kind, action, attempt), parent, event.at, {
      "cicd.pipeline.name": event.saga,
      "cicd.pipeline.run.id": event.runId,
      "cicd.pipeline.task.name": jobOf(action),
      "cicd.pipeline.task.run.id": `${action}/${kind === "attempt" ? "" : `${kind}/`}${attempt}`,
      "slipway.step": action,
      "slipway.phase": kind === "attempt" ? "run" : kind,
      "slipway.attempt": attempt,
      ...(event.data?.recovered === true && { "slipway.recovered": true }),
    });
  }

  #opened(runId: string, key: string, span: Span): void {
    let spans = this.#open.get(runId);
    if (!spans) {
      spans = new Map();
      this.#open.set(runId, spans);
    }
    spans.set(key, span);
  }

  #close(event: RunEvent, kind: "attempt" | "undo" | "cleanup", error: string | undefined): void {
    const spans = this.#open.get(event.runId);
    const key = `${kind}\u0000${event.action}`;
    const span = spans?.get(key);
    if (!span) return;
    spans!.delete(key);
    if (kind === "attempt")
      span.setAttribute("cicd.pipeline.task.run.result", error === undefined ? "success" : "failure");
    if (error !== undefined) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error });
      span.setAttribute("error.type", `${kind === "attempt" ? "job" : kind}_failed`);
    }
    if (event.data?.retryAt !== undefined) span.setAttribute("slipway.retry_at", Number(event.data.retryAt));
    span.end(event.at);
  }

  /** A wait for admission, as a span under the attempt (or undo, cleanup) that waited. */
  #admitted({ runId, action, attempt, pipeline, grant }: Admitted): void {
    const key = `${runId}\u0000${action}`;
    const told = this.#reasons.get(key) ?? [];
    this.#reasons.delete(key);
    // Only a request that queued waited (a grant within `acquire` may read a clock's tick of 1 ms).
    if (grant.waitedFor.length === 0 || grant.waitedMs <= 0) return;
    const open = this.#open.get(runId);
    const within = open?.get(`undo\u0000${action}`)
      ? spanIdOf(runId, "undo", action, attempt)
      : open?.get(`cleanup\u0000${action}`)
        ? spanIdOf(runId, "cleanup", action, attempt)
        : spanIdOf(runId, "attempt", action, attempt);
    const waitedFor = grant.waitedFor.map(String);
    const span = this.#start(
      runId,
      `wait for ${waitedFor.join(" and ") || "admission"}`,
      undefined,
      within,
      grant.since - grant.waitedMs,
      {
        "cicd.pipeline.name": pipeline,
        "cicd.pipeline.run.id": runId,
        "cicd.pipeline.task.name": jobOf(action),
        "slipway.step": action,
        "slipway.wait.resources": waitedFor,
        ...(told.length > 0 && { "slipway.wait.reason": told.at(-1)!.reason }),
      },
    );
    for (const { at, reason } of told) span.addEvent("queued", { "slipway.wait.reason": reason }, at);
    span.end(grant.since);
  }

  /** The run's span, now that it ended, from its creation; what is still open in it ends with it. */
  #ended(event: RunEvent): void {
    const { runId } = event;
    const open = this.#open.get(runId);
    this.#open.delete(runId);
    for (const [key, span] of open ?? []) {
      if (key.startsWith("attempt\u0000")) span.setAttribute("cicd.pipeline.task.run.result", "cancellation");
      span.setAttribute("slipway.ended_with_run", true);
      span.end(event.at);
    }
    for (const key of this.#reasons.keys()) if (key.startsWith(`${runId}\u0000`)) this.#reasons.delete(key);
    const result = runResult(event.type)!;
    this.#sources.storage.getRun(runId).then(
      (record) => {
        const attributes: Attributes = {
          "cicd.pipeline.name": event.saga,
          "cicd.pipeline.run.id": runId,
          "cicd.pipeline.action.name": "RUN",
          "cicd.pipeline.result": result,
          "slipway.run.status": event.type.slice("run:".length),
          ...(event.runName !== null && { "slipway.run.name": event.runName }),
          ...(record?.parent && {
            "slipway.parent.run.id": record.parent.runId,
            "slipway.parent.step": record.parent.step,
          }),
        };
        // A child run's span is under its parent run's, in the same trace (trace-ids.ts).
        const parent = record?.parent ? spanIdOf(record.parent.runId, "run") : undefined;
        const span = this.#start(
          runId,
          `RUN ${event.saga}`,
          spanIdOf(runId, "run"),
          parent,
          record?.createdAt ?? event.at,
          attributes,
          SpanKind.SERVER,
        );
        if (result === "failure" || result === "error") {
          const message = typeof event.data?.error === "string" ? event.data.error : result;
          span.setStatus({ code: SpanStatusCode.ERROR, message });
          span.setAttribute("error.type", result === "error" ? "needs_attention" : "job_failed");
        }
        span.end(event.at);
      },
      () => {},
    );
  }
}
