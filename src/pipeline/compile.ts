/**
 * A pipeline run as a saga: each step (job or matrix leg) becomes one action, `needs` becomes the
 * data flow between them. The run's request and the pipeline's source are the saga's input, so any
 * later process rebuilds the same saga from storage alone (resume after a crash, retry, cancel).
 */
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { type Saga, saga } from "../definition/saga.js";
import type { ActionContext } from "../definition/types.js";
import type { Json } from "../json.js";
import type { ExecutionRecord } from "../storage/types.js";
import { concurrencyCheck } from "./concurrency.js";
import { cleanupJob, pollCheck, readyJob, runJob, undoJob, waitSkip } from "./jobs.js";
import { parsePipeline } from "./parse.js";
import { type Plan, planRun, type RunRequest } from "./plan.js";
import { type RunSpec, runSpecOf, runSpecSchema, stepResultSchema } from "./run-spec.js";
import type { JobRuntime } from "./step-context.js";

export interface CompiledRun {
  plan: Plan;
  saga: Saga;
  spec: RunSpec;
}

/**
 * Parses, plans and compiles a run of the pipeline file `file` with text `source`; `workspace` is the
 * checkout its jobs run in, when a trigger made one.
 */
export function compileRun(
  file: string,
  source: string,
  request: RunRequest & { workspace?: string | undefined; untrusted?: boolean | undefined },
  runtime: JobRuntime,
): CompiledRun {
  const plan = planRun(parsePipeline(source, file), request);
  const spec: RunSpec = {
    file: resolve(file),
    source,
    inputs: { ...request.inputs },
    tiers: [...request.tiers],
    key: plan.key,
    ...(request.event !== undefined && { event: request.event }),
    ...(request.workspace !== undefined && { workspace: request.workspace }),
    ...(request.untrusted === true && { untrusted: true }),
  };
  return { plan, saga: buildSaga(plan, spec, runtime), spec };
}

/** Rebuilds the saga of a stored pipeline run. */
export function recompile(execution: ExecutionRecord, runtime: JobRuntime): CompiledRun {
  const spec = runSpecOf(execution);
  if (!spec) throw new Error(`run ${execution.id} is not a pipeline run`);
  return compileRun(spec.file, spec.source, spec, runtime);
}

/**
 * A saga version identifies the plan: the same file text, inputs and tiers give the same version in
 * every process; a different plan of the same pipeline is a different version.
 */
function planVersion(spec: RunSpec): number {
  const digest = createHash("sha256").update(JSON.stringify(spec)).digest();
  return digest.readUInt32BE(0) & 0x7fffffff || 1;
}

function buildSaga(plan: Plan, spec: RunSpec, runtime: JobRuntime): Saga {
  const { pipeline } = plan;
  const context = {
    plan,
    dir: dirname(spec.file),
    runtime,
    ...(spec.workspace !== undefined && { workspace: spec.workspace }),
    ...(spec.untrusted === true && { untrusted: true }),
  };
  let builder = saga(sagaName(pipeline.name), {
    version: planVersion(spec),
    input: { run: runSpecSchema },
    onFailure: pipeline.onFailure,
  }) as unknown as Builder;
  // `concurrency:` puts a durable gate before everything: it waits (holding nothing) for its turn.
  const gate = pipeline.concurrency ? [CONCURRENCY_GATE] : [];
  if (pipeline.concurrency)
    builder = builder.poll(CONCURRENCY_GATE, {
      everyMs: GATE_CHECK_MS,
      check: (_input: Values, ctx: ActionContext) => concurrencyCheck(context, ctx),
    });
  for (const step of plan.steps) {
    const produces = { [step.action]: stepResultSchema };
    const job = step.job;
    const after = step.needs.length === 0 && step.kind === "job" ? gate : [];
    if (job.kind === "wait") {
      builder = builder.waitForSignal(step.action, {
        signal: job.signal,
        reads: step.needs,
        produces,
        after,
        // Skipped like any job: its `if` is false, or a job it needs was skipped.
        skip: (input: Values) => waitSkip(context, step, input),
        // `slipway signal RUN approved '{"by":"ana"}'`: the payload's fields become the job's outputs.
        fromPayload: (payload: Json) => ({
          [step.action]: { status: "success", outputs: stringFields(payload) },
        }),
        ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
      });
    } else if (job.kind === "poll") {
      builder = builder.poll(step.action, {
        reads: step.needs,
        after,
        produces,
        everyMs: job.everyMs,
        check: (input: Values, ctx: ActionContext) => pollCheck(context, step, input, ctx),
        retry: { maxAttempts: job.retries + 1 },
        ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
      });
    } else if (step.kind === "ready") {
      builder = builder.action(step.action, {
        reads: [step.probes!, ...step.needs],
        produces,
        run: (input: Values, ctx: ActionContext) => readyJob(context, step, input, ctx),
      });
    } else {
      builder = builder.action(step.action, {
        reads: step.needs,
        after,
        produces,
        run: (input: Values, ctx: ActionContext) => runJob(context, step, input, ctx),
        ...(job.undo && {
          undo: (input: Values, output: Values, ctx: ActionContext) =>
            undoJob(context, step, input, output, ctx),
        }),
        ...(job.cleanup && {
          cleanup: (input: Values, ctx: ActionContext) => cleanupJob(context, step, input, ctx),
        }),
        retry: { maxAttempts: job.retries + 1, initialDelayMs: 1_000, maxDelayMs: 60_000 },
        undoRetry: { maxAttempts: 3, initialDelayMs: 1_000 },
      });
    }
  }
  return builder.build() as unknown as Saga;
}

type Values = Record<string, unknown>;

/** The gate's step: a leading dot, so no job or matrix leg can have its name. */
export const CONCURRENCY_GATE = ".concurrency";
/** How often a queued run looks whether its turn has come (it holds nothing in between). */
const GATE_CHECK_MS = 500;

/** The builder with its compile-time data-flow checks erased: a pipeline's names are only known at run time. */
type Builder = {
  action(name: string, spec: Record<string, unknown>): Builder;
  waitForSignal(name: string, spec: Record<string, unknown>): Builder;
  poll(name: string, spec: Record<string, unknown>): Builder;
  build(): unknown;
};

/** Saga names allow `[A-Za-z0-9_.:-]`; a pipeline name may be any text. */
function sagaName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.:-]+/g, "-") || "pipeline";
}

function stringFields(payload: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) return out;
  for (const [key, value] of Object.entries(payload))
    out[key] = typeof value === "string" ? value : JSON.stringify(value);
  return out;
}
