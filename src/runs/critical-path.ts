/** Where a run's time went: the chain of jobs its end waited on (story 2: "what each minute of the critical path was spent on"). */
import { stepResultOf } from "./records.js";
import type { CriticalPath, PlanOutline, StepSummary } from "./schemas.js";

/**
 * The chain of completed steps that ended last, each after the step it waited for that ended last;
 * null while no step has completed. A step's time includes its wait for admission, given apart.
 */
export function criticalPathOf(run: {
  createdAt: number;
  steps: readonly StepSummary[];
  plan: PlanOutline | null;
}): CriticalPath | null {
  const byJob = new Map(run.steps.map((s) => [s.job, s]));
  const ended = run.steps.filter(
    (s) => s.startedAt !== null && s.endedAt !== null && s.status === "completed",
  );
  if (ended.length === 0) return null;
  const gates = run.steps.filter((s) => !run.plan?.steps.some((p) => p.action === s.job)).map((s) => s.job);
  // A root step runs after the concurrency gate, when there is one.
  const before = (job: string): string[] => {
    const needs = run.plan?.steps.find((p) => p.action === job)?.needs ?? [];
    return needs.length > 0 ? needs : gates.filter((g) => g !== job);
  };
  const chain: StepSummary[] = [];
  let step: StepSummary | undefined = ended.reduce((a, b) => (b.endedAt! > a.endedAt! ? b : a));
  while (step) {
    chain.unshift(step);
    // The step it waited for ended before it started (a millisecond of slack for the clock's grain).
    step = before(step.job)
      .map((job) => byJob.get(job))
      .filter((s): s is StepSummary => s?.endedAt != null && s.endedAt <= chain[0]!.startedAt! + 1)
      .reduce<StepSummary | undefined>(
        (a, b) => (a === undefined || b.endedAt! > a.endedAt! ? b : a),
        undefined,
      );
  }
  return {
    totalMs: chain.at(-1)!.endedAt! - run.createdAt,
    steps: chain.map((s) => {
      const queued = stepResultOf(s)?.queuedMs;
      return {
        job: s.job,
        ms: s.endedAt! - s.startedAt!,
        ...(typeof queued === "number" && { queuedMs: queued }),
      };
    }),
  };
}
