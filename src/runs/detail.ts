/**
 * One run as `show` gives it (the embedded service, `GET /api/v1/runs/{id}`, the CLI): its jobs and
 * their timings, the critical path, and why each job that is not running waits, in the queue's words.
 */
import { runSpecOf } from "../pipeline/run-spec.js";
import type { RunRecord, RunSnapshot } from "../storage/types.js";
import { criticalPathOf } from "./critical-path.js";
import { type AdmissionExplainer, admissionWhy, queueOf } from "./explain.js";
import { outlineOf, planOf, runSummary, stepSummary, withGroups } from "./records.js";
import type { RunDetail } from "./schemas.js";

/**
 * `admission` is the scheduler's word on a started job it holds back (only the hosting process has
 * it); `children`, the runs whose parent it is (`listRuns({ parent })`).
 */
export function runDetail(
  snapshot: Pick<RunSnapshot, "run" | "steps">,
  admission?: AdmissionExplainer,
  children: readonly RunRecord[] = [],
): RunDetail {
  const record = snapshot.run;
  const spec = runSpecOf(record);
  const summary = runSummary(record);
  const steps = withGroups(snapshot.steps.map(stepSummary));
  const plan = outlineOf(planOf(record));
  const waiting = queueOf(summary, steps, plan, admissionWhy(record.id, admission)).map((entry) => ({
    job: entry.job,
    label: entry.label,
    state: entry.state,
    reason: entry.reason,
    message: entry.message,
    until: entry.until,
  }));
  for (const entry of waiting) {
    const step = steps.find((s) => s.job === entry.job);
    if (step && entry.reason === "admission") step.queued = entry.message;
  }
  return {
    ...summary,
    steps,
    spec: spec
      ? {
          file: spec.file,
          inputs: spec.inputs,
          tiers: spec.tiers,
          ...(spec.event !== undefined && { event: spec.event }),
          ...(spec.workspace !== undefined && { workspace: spec.workspace }),
          ...(spec.startedBy !== undefined && { startedBy: spec.startedBy }),
        }
      : null,
    plan,
    criticalPath: criticalPathOf({ createdAt: summary.createdAt, steps, plan }),
    waiting,
    children: children.map((child) => ({
      id: child.id,
      step: child.parent?.step ?? "",
      pipeline: child.saga,
      status: child.status,
      createdAt: child.createdAt,
      endedAt: child.endedAt,
    })),
  };
}
