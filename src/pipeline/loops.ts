/**
 * A loop job at run time: what its jobs read of their iteration, whether an iteration ends the loop
 * (its `until`, and its `reason` when it does not), and the outputs the jobs after it read.
 */
import { type ExpressionContext, evaluate, formatValue, isTruthy } from "./expression-eval.js";
import type { Template } from "./model.js";
import type { Step } from "./plan.js";
import type { StepResult } from "./run-spec.js";

/** What a loop's jobs read besides the run's values: the engine's names for their iteration. */
export const LOOP_VALUES = ["iteration", "previous"] as const;

type Values = Record<string, unknown>;
type Needs = Record<string, { outputs: Record<string, string> }>;

/** An iteration's job results (`{ fix: {status, outputs}, ... }`) as `needs` reads them. */
function asNeeds(values: Values): Needs {
  const needs: Needs = {};
  for (const [job, result] of Object.entries(values))
    needs[job] = { outputs: { ...(result as StepResult | undefined)?.outputs } };
  return needs;
}

/** `loop` in a loop job's expressions: its iteration, and the previous one's jobs (null in the first). */
export function loopContext(input: Values): ExpressionContext["loop"] | undefined {
  if (typeof input.iteration !== "number") return undefined;
  const previous = input.previous as Values | null | undefined;
  return { iteration: input.iteration, previous: previous ? asNeeds(previous) : null };
}

/**
 * After an iteration: true ends the loop; otherwise its rendered `reason` (or false without one) asks
 * for another. An iteration whose jobs were all skipped (a job the loop needs was skipped) ends it too:
 * another would do nothing else.
 */
export function loopVerdict(step: Step, values: Values, iteration: number): boolean | string {
  const job = step.job;
  if (job.kind !== "loop") throw new Error(`job ${job.name} is not a loop`);
  if (loopSkipped(step, values)) return true;
  const ctx: ExpressionContext = { inputs: {}, needs: asNeeds(values), loop: { iteration, previous: null } };
  if (isTruthy(evaluate(job.loop.until.expr, ctx, { missing: "null" }))) return true;
  return job.loop.reason ? render(job.loop.reason, ctx).trim() || false : false;
}

/** A template with unset values read as empty: a reason must not fail the loop for want of an output. */
function render(template: Template, ctx: ExpressionContext): string {
  return template.parts
    .map((part) =>
      part.kind === "text" ? part.text : formatValue(evaluate(part.expr, ctx, { missing: "null" })),
    )
    .join("");
}

/** A loop job's outputs, as the jobs after it read them: its last iteration's jobs' outputs, merged in file order. */
export function loopOutputs(step: Step, value: Values | undefined): Record<string, string> {
  const outputs: Record<string, string> = {};
  for (const inner of step.body ?? [])
    Object.assign(outputs, (value?.[inner.action] as StepResult | undefined)?.outputs);
  return outputs;
}

/** Whether every job of a loop's iteration (its last, for the jobs after it) was skipped. */
export function loopSkipped(step: Step, values: Values | undefined): boolean {
  const body = step.body ?? [];
  return (
    body.length > 0 &&
    body.every((inner) => (values?.[inner.action] as StepResult | undefined)?.status === "skipped")
  );
}
