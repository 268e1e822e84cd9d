/**
 * One run as `show` gives it (the embedded service, `GET /api/v1/runs/{id}`, the CLI): its jobs and
 * their timings, the critical path, and why each job that is not running waits, in the queue's words.
 */
import { NotFoundError } from "../errors.js";
import type { JobResources } from "../pipeline/resources.js";
import { runSpecOf } from "../pipeline/run-spec.js";
import type { AdmissionTiming } from "../pipeline/timing.js";
import type { EventRecord, RunRecord, RunSnapshot, Storage } from "../storage/types.js";
import { criticalPathOf } from "./critical-path.js";
import { type AdmissionExplainer, admissionWhy, queueOf } from "./explain.js";
import { outlineOf, planOf, runSummary, stepSummary, withGroups } from "./records.js";
import type { RunDetail } from "./schemas.js";
import { timingsOf } from "./timings.js";

/** What `show` adds to a run's snapshot, when it has it. */
export interface DetailSources {
  /** The scheduler's word on a started job it holds back (only the hosting process has it). */
  admission?: AdmissionExplainer;
  /** What a job still waiting for admission here has waited for so far, by reason. */
  waited?: (runId: string, action: string) => AdmissionTiming | undefined;
  /** The runs whose parent it is (`listRuns({ parent })`). */
  children?: readonly RunRecord[];
  /** Its history: the phases come from it (without it, only the critical path's fallback). */
  history?: readonly EventRecord[];
}

/** A run's detail from storage, with the admission of this process (`LocalRuns.show`). */
export async function loadRunDetail(
  storage: Storage,
  record: RunRecord,
  resources?: JobResources,
): Promise<RunDetail> {
  const [snapshot, children, history] = await Promise.all([
    storage.load(record.id),
    storage.listRuns({ parent: record.id }),
    storage.history(record.id),
  ]);
  if (!snapshot) throw new NotFoundError(`no run "${record.id}"`);
  return runDetail(snapshot, {
    children,
    history,
    ...(resources && {
      admission: (run, action) => resources.explain(run, action),
      waited: (run, action) => resources.waiting(run, action),
    }),
  });
}

export function runDetail(
  snapshot: Pick<RunSnapshot, "run" | "steps">,
  sources: DetailSources = {},
): RunDetail {
  const { admission, children = [] } = sources;
  const record = snapshot.run;
  const spec = runSpecOf(record);
  const summary = runSummary(record);
  const steps = withGroups(snapshot.steps.map(stepSummary));
  const fullPlan = planOf(record);
  const plan = outlineOf(fullPlan);
  const timings = timingsOf({
    run: summary,
    steps,
    history: sources.history ?? [],
    ...(fullPlan && { plan: fullPlan }),
    ...(sources.waited && { admission: (action: string) => sources.waited!(record.id, action) }),
  });
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
    criticalPath: criticalPathOf({ createdAt: summary.createdAt, endedAt: summary.endedAt, timings, plan }),
    waiting,
    children: children.map((child) => ({
      id: child.id,
      step: child.parent?.step ?? "",
      pipeline: child.saga,
      status: child.status,
      createdAt: child.createdAt,
      endedAt: child.endedAt,
    })),
    timings,
  };
}
