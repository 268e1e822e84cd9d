/**
 * A job whose matrix is decided at run time, as a saga fan-out: its legs are worked out when its needs
 * are done, and each runs the job as a step of its own (`build#1.build`, `build#2.build`), like a leg
 * of a matrix written out (env, working directory, undo, cleanup, admission, logs, `matrix.*`, `if:`).
 */
import type { ActionContext } from "../definition/types.js";
import type { Json } from "../json.js";
import { cleanupJob, needsContext, runJob, skippedNeed, undoJob } from "./jobs.js";
import { MAX_MATRIX_LEGS } from "./limits.js";
import type { MatrixValue, RunJob } from "./model.js";
import type { Step } from "./plan.js";
import { stepResultSchema } from "./run-spec.js";
import { legText, runTimeLegs } from "./runtime-matrix.js";
import type { StepContext } from "./step-context.js";

type Values = Record<string, unknown>;

/** The builder calls this needs (compile.ts erases the data-flow types: a pipeline's names are known at run time). */
export interface FanOutBuilder<B> {
  forEach(name: string, spec: Record<string, unknown>): B;
}

/**
 * Adds `step` (a job with a run-time matrix) to the saga as a fan-out named as the job. Its value,
 * under the job's name, is the list of its legs' values, each leg's result under the job's name too:
 * jobs that need it read the legs' outputs merged (jobs.ts resultsOf), as after a matrix written out.
 */
/**
 * The legs of `step`'s matrix decided at run time, read now from the JSON of the jobs it needs; none
 * when a job it needs was skipped (so neither is this one).
 */
export function runTimeItems(
  step: Step,
  context: (input: Values) => StepContext,
  input: Values,
): Record<string, MatrixValue>[] {
  const ctx = context(input);
  if (skippedNeed(ctx, step, input) !== undefined) return [];
  const matrix = step.job.runTimeMatrix!;
  return runTimeLegs(step.job.name, matrix, needsContext(ctx, step, input), ctx.plan.steps.length - 1);
}

export function addFanOut<B>(
  builder: FanOutBuilder<B>,
  step: Step,
  context: (input: Values) => StepContext,
  reads: readonly string[],
  after: readonly string[],
): B {
  const job = step.job as RunJob;
  // The body's one action has the job's name: its steps read `build#2.build`.
  const body = job.name;
  const leg = (input: Values, ctx: ActionContext): Step => {
    const values = input.item as Record<string, MatrixValue>;
    return { ...step, action: ctx.action, matrix: values, label: `${job.name} (${legText(values)})` };
  };
  return builder.forEach(step.action, {
    reads: [...reads, ...step.needs],
    after,
    items: (input: Values) => runTimeItems(step, context, input),
    // runTimeLegs refuses more first, naming the job and the limit.
    max: MAX_MATRIX_LEGS.max,
    body: (steps: { action(name: string, spec: Record<string, unknown>): unknown }) =>
      steps.action(body, {
        reads: [...reads, ...step.needs, "item", "index"],
        produces: { [body]: stepResultSchema },
        run: async (input: Values, ctx: ActionContext) => {
          const one = leg(input, ctx);
          // Says which leg this is: views show a leg's values beside its name (`build#1.build (libfoo)`).
          const axes = Object.entries(one.matrix!).map(([axis, value]) => `${axis}=${String(value)}`);
          ctx.progress(`matrix: ${axes.join(", ")}`, {
            leg: legText(one.matrix!),
            matrix: one.matrix! as Json,
          });
          const result = await runJob(context(input), one, input, ctx);
          return { [body]: result[one.action] };
        },
        ...(job.undo && {
          undo: (input: Values, output: Values, ctx: ActionContext) => {
            const one = leg(input, ctx);
            return undoJob(context(input), one, input, { [one.action]: output[body] }, ctx);
          },
        }),
        ...(job.cleanup && {
          cleanup: (input: Values, ctx: ActionContext) =>
            cleanupJob(context(input), leg(input, ctx), input, ctx),
        }),
        retry: { maxAttempts: job.retries + 1, initialDelayMs: 1_000, maxDelayMs: 60_000 },
        undoRetry: { maxAttempts: 3, initialDelayMs: 1_000 },
      }),
  });
}
