/**
 * A `uses: ./other.yml` job at run time, as a saga child step: its child run's spec (the used
 * pipeline's kept text, `with:` rendered as its inputs), and the job's outputs from the child
 * pipeline's `outputs:` once the child run has completed.
 */
import { type ExpressionContext, evaluate, formatValue, renderTemplate } from "./expression-eval.js";
import { type FanOutBuilder, runTimeItems } from "./fan-out.js";
import { needsContext, waitSkip } from "./jobs.js";
import { MAX_MATRIX_LEGS } from "./limits.js";
import type { MatrixValue, Pipeline, UsesJob } from "./model.js";
import type { RunRequest, Step } from "./plan.js";
import { PipelineInputError } from "./problems.js";
import { type RunSpec, type StepResult, stepResultSchema } from "./run-spec.js";
import type { StepContext } from "./step-context.js";
import { type PipelineTexts, usedFile } from "./uses-tree.js";

type Values = Record<string, unknown>;

/** What compile.ts gives: a child run's spec and saga for a request, without building the saga. */
export type ChildRunOf = (
  file: string,
  source: string,
  request: RunRequest & ChildRequest,
) => { spec: RunSpec; saga: { name: string; version: number } };

interface ChildRequest {
  workspace?: string | undefined;
  untrusted?: boolean | undefined;
  pipelines?: PipelineTexts | undefined;
}

/** The builder calls this needs (compile.ts erases the data-flow types). */
export interface ChildBuilder<B> {
  child(name: string, spec: Record<string, unknown>): B;
}

/**
 * Adds a `uses:` job to the saga as a child step (a leg of a matrix written out is a step of its
 * own). `used` is the used pipeline, parsed from the text this saga was built for (its version covers
 * the texts a run keeps, so every run sharing it has it). `name` is the step's action: in a fan-out's
 * body (a matrix decided at run time), the job's name, and the leg's values are its item.
 */
export function addUses<B>(
  builder: ChildBuilder<B>,
  step: Step,
  context: (input: Values) => StepContext,
  childRun: ChildRunOf,
  used: () => Pipeline | undefined,
  reads: readonly string[],
  after: readonly string[],
  name = step.action,
): B {
  const job = step.job as UsesJob;
  const stepOf = (input: Values): Step =>
    job.runTimeMatrix ? { ...step, action: name, matrix: input.item as Record<string, MatrixValue> } : step;
  const specOf = (input: Values): RunSpec => {
    const run = input.run as RunSpec;
    const file = usedFile(run.file, job);
    const source = run.pipelines?.[file];
    if (source === undefined) throw new Error(`job ${job.name}: the run did not keep ${job.uses}`);
    const leg = stepOf(input);
    const scope = needsContext(context(input), leg, input);
    if (leg.matrix) scope.matrix = leg.matrix;
    const inputs: RunSpec["inputs"] = {};
    for (const [name, given] of Object.entries(job.with))
      inputs[name] = typeof given.value === "object" ? renderTemplate(given.value, scope) : given.value;
    const request = {
      inputs,
      tiers: [],
      ...(run.event !== undefined && { event: run.event }),
      ...(run.workspace !== undefined && { workspace: run.workspace }),
      ...(run.untrusted === true && { untrusted: true }),
      pipelines: run.pipelines,
    };
    try {
      return childRun(file, source, request).spec;
    } catch (error) {
      if (!(error instanceof PipelineInputError)) throw error;
      throw new PipelineInputError(error.problems.map((p) => `${job.uses}: ${p}`));
    }
  };
  return builder.child(name, {
    reads: [...reads, ...step.needs, ...(job.runTimeMatrix ? ["item", "index"] : [])],
    after,
    produces: { [name]: stepResultSchema },
    // Skipped like any job: its `if` is false, or a job it needs was skipped.
    skip: (input: Values) => waitSkip(context(input), stepOf(input), input),
    input: (input: Values) => ({ run: specOf(input) }),
    sagaOf: (input: Values) => {
      const spec = input.run as RunSpec;
      return childRun(spec.file, spec.source, spec).saga;
    },
    fromResult: (values: Values) => ({
      [name]: { status: "success", outputs: childOutputs(used(), values) } satisfies StepResult,
    }),
    ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
  });
}

/**
 * Adds a `uses:` job whose matrix is decided at run time: a fan-out with one child run per leg
 * (`release#1.release`, child run `<run>.release~1.release`). Jobs that need it read the legs'
 * outputs merged, as after any matrix job.
 */
export function addUsesFanOut<B>(
  builder: FanOutBuilder<B>,
  step: Step,
  context: (input: Values) => StepContext,
  childRun: ChildRunOf,
  used: () => Pipeline | undefined,
  reads: readonly string[],
  after: readonly string[],
): B {
  const name = step.job.name;
  return builder.forEach(step.action, {
    reads: [...reads, ...step.needs],
    after,
    items: (input: Values) => runTimeItems(step, context, input),
    // runTimeLegs refuses more first, naming the job and the limit.
    max: MAX_MATRIX_LEGS.max,
    body: (steps: ChildBuilder<unknown>) => addUses(steps, step, context, childRun, used, reads, [], name),
  });
}

/**
 * The used pipeline's `outputs:`, rendered over what its completed run's jobs output (a matrix job's
 * legs and a loop's iterations merged in order, later ones winning); an unset output reads as empty.
 * Without `outputs:`, none: a child pipeline says what it gives.
 */
export function childOutputs(used: Pipeline | undefined, values: Values): Record<string, string> {
  if (!used?.outputs) return {};
  const needs: Record<string, { outputs: Record<string, string> }> = {};
  for (const job of used.jobs) {
    const outputs: Record<string, string> = {};
    for (const [action, value] of Object.entries(values))
      if (action === job.name || action.startsWith(`${job.name}.`)) Object.assign(outputs, outputsIn(value));
    needs[job.name] = { outputs };
  }
  const ctx: ExpressionContext = { inputs: {}, needs };
  const rendered: Record<string, string> = {};
  for (const [name, template] of Object.entries(used.outputs))
    rendered[name] = template.parts
      .map((part) =>
        part.kind === "text" ? part.text : formatValue(evaluate(part.expr, ctx, { missing: "null" })),
      )
      .join("");
  return rendered;
}

/** The outputs a job's value holds: a step's result, a run-time matrix's legs, a loop's iterations. */
function outputsIn(value: unknown): Record<string, string> {
  if (value === null || typeof value !== "object") return {};
  if (Array.isArray(value)) return Object.assign({}, ...value.map(outputsIn));
  const result = value as Partial<StepResult>;
  if (typeof result.status === "string" && result.outputs && typeof result.outputs === "object")
    return result.status === "success" ? { ...result.outputs } : {};
  return Object.assign({}, ...Object.values(value).map(outputsIn));
}
