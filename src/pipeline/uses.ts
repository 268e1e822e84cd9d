/**
 * A `uses: ./other.yml` job at run time, as a saga child step: its child run's spec (the used
 * pipeline's kept text, `with:` rendered as its inputs), and the job's outputs from the child
 * pipeline's `outputs:` once the child run has completed.
 */
import { type ExpressionContext, evaluate, formatValue, renderTemplate } from "./expression-eval.js";
import { needsContext, waitSkip } from "./jobs.js";
import type { Pipeline, UsesJob } from "./model.js";
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
 * Adds a `uses:` job to the saga as a child step. `used` is the used pipeline, parsed from the text
 * this saga was built for (its version covers the texts a run keeps, so every run sharing it has it).
 */
export function addUses<B>(
  builder: ChildBuilder<B>,
  step: Step,
  context: (input: Values) => StepContext,
  childRun: ChildRunOf,
  used: () => Pipeline | undefined,
  reads: readonly string[],
  after: readonly string[],
): B {
  const job = step.job as UsesJob;
  const specOf = (input: Values): RunSpec => {
    const run = input.run as RunSpec;
    const file = usedFile(run.file, job);
    const source = run.pipelines?.[file];
    if (source === undefined) throw new Error(`job ${job.name}: the run did not keep ${job.uses}`);
    const scope = needsContext(context(input), step, input);
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
  return builder.child(step.action, {
    reads: [...reads, ...step.needs],
    after,
    produces: { [step.action]: stepResultSchema },
    // Skipped like any job: its `if` is false, or a job it needs was skipped.
    skip: (input: Values) => waitSkip(context(input), step, input),
    input: (input: Values) => ({ run: specOf(input) }),
    sagaOf: (input: Values) => {
      const spec = input.run as RunSpec;
      return childRun(spec.file, spec.source, spec).saga;
    },
    fromResult: (values: Values) => ({
      [step.action]: { status: "success", outputs: childOutputs(used(), values) } satisfies StepResult,
    }),
    ...(job.timeoutMs !== undefined && { timeoutMs: job.timeoutMs }),
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
