/**
 * A pipeline run as a saga: each step (job or matrix leg) becomes one action, `needs` becomes the
 * data flow between them. The run's request and the pipeline's source are the saga's input, so any
 * later process rebuilds the same saga from storage alone (resume after a crash, retry, cancel).
 * A saga is compiled once per pipeline text and plan shape: runs that differ only in their inputs
 * share it, and each of its actions reads the run's own inputs from the saga input when it runs.
 */
import { createHash } from "node:crypto";
import { dirname, resolve } from "node:path";
import { type Saga, saga } from "../definition/saga.js";
import type { ActionContext } from "../definition/types.js";
import type { Json } from "../json.js";
import type { RunRecord } from "../storage/types.js";
import { concurrencyCheck } from "./concurrency.js";
import { renderTemplate } from "./expression-eval.js";
import { addFanOut } from "./fan-out.js";
import { cleanupJob, pollCheck, readyJob, runJob, undoJob, waitSkip } from "./jobs.js";
import { MAX_RUN_NAME, overLimit } from "./limits.js";
import { LOOP_VALUES, loopVerdict } from "./loops.js";
import type { Pipeline } from "./model.js";
import { parsePipeline } from "./parse.js";
import { type Plan, planRun, type RunRequest, type Step } from "./plan.js";
import { PipelineInputError } from "./problems.js";
import { type AttemptPattern, isNamePattern, resolveNamePattern } from "./run-name.js";
import { type RunSpec, runSpecOf, runSpecSchema, stepResultSchema } from "./run-spec.js";
import type { JobRuntime, StepContext } from "./step-context.js";
import { addUses, addUsesFanOut } from "./uses.js";
import { type PipelineTexts, usedFile, usedPipelines } from "./uses-tree.js";

export interface CompiledRun {
  plan: Plan;
  saga: Saga;
  spec: RunSpec;
}

/** A saga already built for this name and version, to share instead of building another. */
export type KnownSaga = (name: string, version: number) => Saga | undefined;

/**
 * Parses, plans and compiles a run of the pipeline file `file` with text `source`. `known` returns a
 * saga built before for the same name and version (the same text and plan shape), which this run then
 * shares; `version`, when given, is the version to build (a stored run keeps the one it started with).
 * `request.workspace` is the checkout its jobs run in, when a trigger made one.
 */
export function compileRun(
  file: string,
  source: string,
  request: RunRequest & {
    workspace?: string | undefined;
    untrusted?: boolean | undefined;
    pipelines?: PipelineTexts | undefined;
    startedBy?: string | undefined;
  },
  runtime: JobRuntime,
  options: { known?: KnownSaga; version?: number } = {},
): CompiledRun {
  const { plan, spec, saga } = childRun(file, source, request);
  const version = options.version ?? saga.version;
  const known = options.known?.(saga.name, version);
  return { plan, saga: known ?? buildSaga(plan, spec, runtime, saga.name, version), spec };
}

/**
 * Plans a run of `file` and says which saga it runs, without building it: compileRun's first half,
 * and how a `uses:` job works out its child run (uses.ts). The texts of the pipelines it uses are
 * `request.pipelines` when given (a stored run's), else read from disk now, and checked either way.
 */
function childRun(
  file: string,
  source: string,
  request: RunRequest & {
    workspace?: string | undefined;
    untrusted?: boolean | undefined;
    pipelines?: PipelineTexts | undefined;
    startedBy?: string | undefined;
  },
): { plan: Plan; spec: RunSpec; saga: { name: string; version: number } } {
  const pipeline = pipelineOf(source, file);
  const pipelines = usedPipelines(pipeline, pipelineOf, request.pipelines);
  const plan = planRun(pipeline, request);
  const spec: RunSpec = {
    file: resolve(file),
    source,
    inputs: { ...request.inputs },
    tiers: [...request.tiers],
    key: plan.key,
    ...(request.event !== undefined && { event: request.event }),
    ...(request.workspace !== undefined && { workspace: request.workspace }),
    ...(request.untrusted === true && { untrusted: true }),
    ...(pipelines !== undefined && { pipelines }),
    ...(request.startedBy !== undefined && { startedBy: request.startedBy }),
  };
  return { plan, spec, saga: { name: sagaName(pipeline.name), version: planVersion(spec, plan) } };
}

/** Rebuilds the saga of a stored pipeline run, with the version it was started with. */
export function recompile(run: RunRecord, runtime: JobRuntime, known?: KnownSaga): CompiledRun {
  const spec = runSpecOf(run);
  if (!spec) throw new Error(`run ${run.id} is not a pipeline run`);
  return compileRun(spec.file, spec.source, spec, runtime, {
    version: run.version,
    ...(known && { known }),
  });
}

/** Parsed pipelines by file and text, most recently used last: a burst of one pipeline parses once. */
const parsed = new Map<string, Pipeline>();
const PARSED_CACHE_SIZE = 32;

/** parsePipeline, memoized by file and text (problems still throw every time: they are not kept). */
export function pipelineOf(source: string, file: string): Pipeline {
  const key = `${file}\0${source}`;
  const known = parsed.get(key);
  if (known) {
    parsed.delete(key);
    parsed.set(key, known);
    return known;
  }
  const pipeline = parsePipeline(source, file);
  parsed.set(key, pipeline);
  if (parsed.size > PARSED_CACHE_SIZE) parsed.delete(parsed.keys().next().value!);
  return pipeline;
}

/**
 * A saga version identifies what the saga's structure follows from: the file, its text, the tiers and
 * the steps planned (a matrix `include` may depend on inputs), the same in every process. Inputs
 * themselves are not in it: runs that differ only in their inputs share one saga.
 */
function planVersion(spec: RunSpec, plan: Plan): number {
  const shape = plan.steps.map((s) => [
    s.action,
    s.kind,
    s.needs,
    s.matrix ?? null,
    s.probes ?? null,
    s.body?.map((b) => [b.action, b.needs]) ?? null,
  ]);
  // The texts of the pipelines it uses count too, only when there are some (older versions stay as they were).
  const what = [spec.file, spec.source, spec.tiers, shape, ...(spec.pipelines ? [spec.pipelines] : [])];
  const digest = createHash("sha256").update(JSON.stringify(what)).digest();
  return digest.readUInt32BE(0) & 0x7fffffff || 1;
}

function buildSaga(plan: Plan, spec: RunSpec, runtime: JobRuntime, name: string, version: number): Saga {
  const { pipeline } = plan;
  const dir = dirname(spec.file);
  // Each action reads the saga input `run` and plans that run's own values (inputs, concurrency key,
  // event, workspace) when it runs: the saga holds no run's values, so runs with different ones share it.
  const context = (input: Values): StepContext => {
    const run = input.run as RunSpec;
    return {
      plan: run === spec ? plan : planRun(pipeline, run),
      dir,
      runtime,
      ...(run.workspace !== undefined && { workspace: run.workspace }),
      ...(run.untrusted === true && { untrusted: true }),
    };
  };
  let builder = saga(name, {
    version,
    input: { run: runSpecSchema },
    onFailure: pipeline.onFailure,
  }) as unknown as Builder;
  // `concurrency:` puts a durable gate before everything: it waits (holding nothing) for its turn.
  const gate = pipeline.concurrency ? [CONCURRENCY_GATE] : [];
  if (pipeline.concurrency)
    builder = builder.poll(CONCURRENCY_GATE, {
      reads: [RUN],
      everyMs: GATE_CHECK_MS,
      check: (input: Values, ctx: ActionContext) => concurrencyCheck(context(input), ctx),
    });
  for (const step of plan.steps) {
    const after = step.needs.length === 0 && step.kind === "job" ? gate : [];
    if (step.job.kind === "loop") {
      const body = step.body!;
      builder = builder.loop(step.action, {
        max: step.job.loop.max,
        after,
        // Each iteration's jobs read the run, what the loop needs, and their iteration.
        body: (steps: Builder) =>
          body.reduce((inner, bodyStep) => addStep(inner, bodyStep, context, [], LOOP_VALUES), steps),
        until: (values: Values, iteration: number) => loopVerdict(step, values, iteration),
      });
    } else if (step.job.kind === "uses") {
      const job = step.job;
      const used = spec.pipelines?.[usedFile(spec.file, job)];
      let parsedUsed: Pipeline | undefined;
      const usedPipeline = () => {
        if (used !== undefined) parsedUsed ??= pipelineOf(used, usedFile(spec.file, job));
        return parsedUsed;
      };
      builder = job.runTimeMatrix
        ? addUsesFanOut(builder, step, context, childRun, usedPipeline, [RUN], after)
        : addUses(builder, step, context, childRun, usedPipeline, [RUN], after);
    } else if (step.job.runTimeMatrix) {
      builder = addFanOut(builder, step, context, [RUN], after);
    } else builder = addStep(builder, step, context, after, []);
  }
  return builder.build() as unknown as Saga;
}

/** Adds a job's step (or a probe, or a job of a loop's body) to the saga as its action. */
function addStep(
  builder: Builder,
  step: Step,
  context: (input: Values) => StepContext,
  after: readonly string[],
  scope: readonly string[],
): Builder {
  const produces = { [step.action]: stepResultSchema };
  const job = step.job;
  const reads = [RUN, ...step.needs, ...scope];
  if (job.kind === "wait") {
    return builder.waitForSignal(step.action, {
      signal: job.signal,
      reads,
      produces,
      after,
      // Skipped like any job: its `if` is false, or a job it needs was skipped.
      skip: (input: Values) => waitSkip(context(input), step, input),
      // `slipway signal RUN approved '{"by":"ana"}'`: the payload's fields become the job's outputs.
      fromPayload: (payload: Json) => ({
        [step.action]: { status: "success", outputs: stringFields(payload) },
      }),
      ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
    });
  }
  if (job.kind === "poll") {
    return builder.poll(step.action, {
      reads,
      after,
      produces,
      everyMs: job.everyMs,
      check: (input: Values, ctx: ActionContext) => pollCheck(context(input), step, input, ctx),
      retry: { maxAttempts: job.retries + 1 },
      ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
    });
  }
  if (job.kind === "loop" || job.kind === "uses")
    throw new Error(`job ${job.name}: a ${job.kind} job is not a plain step`);
  if (step.kind === "ready") {
    return builder.action(step.action, {
      reads: [RUN, step.probes!, ...step.needs],
      produces,
      run: (input: Values, ctx: ActionContext) => readyJob(context(input), step, input, ctx),
    });
  }
  return builder.action(step.action, {
    reads,
    after,
    produces,
    run: (input: Values, ctx: ActionContext) => runJob(context(input), step, input, ctx),
    ...(job.undo && {
      undo: (input: Values, output: Values, ctx: ActionContext) =>
        undoJob(context(input), step, input, output, ctx),
    }),
    ...(job.cleanup && {
      cleanup: (input: Values, ctx: ActionContext) => cleanupJob(context(input), step, input, ctx),
    }),
    retry: { maxAttempts: job.retries + 1, initialDelayMs: 1_000, maxDelayMs: 60_000 },
    undoRetry: { maxAttempts: 3, initialDelayMs: 1_000 },
  });
}

type Values = Record<string, unknown>;

/** The saga input every action reads: the run's spec (its inputs among it). */
const RUN = "run";

/** The gate's step: a leading dot, so no job or matrix leg can have its name. */
export const CONCURRENCY_GATE = ".concurrency";
/** How often a queued run looks whether its turn has come (it holds nothing in between). */
const GATE_CHECK_MS = 500;

/** The builder with its compile-time data-flow checks erased: a pipeline's names are only known at run time. */
type Builder = {
  action(name: string, spec: Record<string, unknown>): Builder;
  waitForSignal(name: string, spec: Record<string, unknown>): Builder;
  poll(name: string, spec: Record<string, unknown>): Builder;
  forEach(name: string, spec: Record<string, unknown>): Builder;
  loop(name: string, spec: Record<string, unknown>): Builder;
  child(name: string, spec: Record<string, unknown>): Builder;
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

/**
 * The run's name: the one given (`--name`, the API's `name`; a pattern such as
 * `{ticket}-{branch}-{attempt}` is resolved, run-name.ts, with `nextAttempt` saying which attempt comes
 * next), else the pipeline's `run-name:` rendered for this run, if any; refused past MAX_RUN_NAME.
 */
export function runNameOf(
  compiled: CompiledRun,
  given?: string,
  nextAttempt: (pattern: AttemptPattern) => number = () => 1,
): string | undefined {
  const template = compiled.plan.pipeline.runName;
  const values = { inputs: compiled.plan.inputs, event: compiled.plan.event };
  let resolved = given;
  if (given !== undefined && isNamePattern(given)) {
    const pattern = resolveNamePattern(given, values);
    resolved =
      typeof pattern === "string" ? pattern : `${pattern.before}${nextAttempt(pattern)}${pattern.after}`;
  }
  const rendered = resolved ?? (template && renderTemplate(template, values).trim());
  const name = rendered === "" ? undefined : rendered;
  if (name !== undefined && name.length > MAX_RUN_NAME.max)
    throw new PipelineInputError([
      `the run name is ${name.length.toLocaleString("en-US")} characters, ${overLimit(MAX_RUN_NAME)}`,
    ]);
  return name;
}
