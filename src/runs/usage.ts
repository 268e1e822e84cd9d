/** `GET /resources`: the pools and locks with their holders, the jobs running now, and declared against measured per job. */
import type { Step } from "../pipeline/plan.js";
import type { JobResources } from "../pipeline/resources.js";
import type { PeakStore, RunRecord, Storage } from "../storage/types.js";
import { planOf } from "./records.js";
import type { JobUsage, ResourcesResponse } from "./schemas.js";

/** Runs read for the pipelines run lately (beside every pipeline with a measured job). */
const RECENT_RUNS = 200;
/** Peaks a job's figures are computed from: every one storage keeps (SQLite keeps the newest 100). */
const SAMPLES = 100;

export async function loadResources(
  storage: Storage,
  resources: JobResources | undefined,
  peaks: PeakStore | undefined,
): Promise<ResourcesResponse> {
  const running: ResourcesResponse["running"] = [];
  for (const record of await storage.listRuns({ statuses: ["running", "compensating"] })) {
    const snapshot = await storage.load(record.id);
    const plan = planOf(record);
    for (const step of snapshot?.steps ?? []) {
      if (step.status !== "running" && step.status !== "undoing") continue;
      // A started step still waiting for admission is queued, not running: `/queue` lists it.
      if (resources?.explain(record.id, step.action) !== undefined) continue;
      const planned = plan?.steps.find((s) => s.action === step.action);
      running.push({
        run: record.id,
        job: step.action,
        label: planned?.label ?? step.action,
        since: step.startedAt,
        declared: JSON.parse(JSON.stringify(planned?.job.resources ?? {})) as Record<string, unknown>,
      });
    }
  }
  return {
    pools: resources?.pools() ?? [],
    running,
    jobs: await jobUsage(storage, resources, peaks),
  };
}

/**
 * Per pipeline and job: what it declares in the pipeline's newest run, what admission would ask for
 * it now, and its measured peaks. Pipelines: those run lately, and every one with a measured job.
 */
async function jobUsage(
  storage: Storage,
  resources: JobResources | undefined,
  peaks: PeakStore | undefined,
): Promise<JobUsage[]> {
  const measured = peaks?.measuredJobs() ?? [];
  // The newest run of each pipeline: from the recent runs, else looked up (a pipeline measured long ago).
  const newestOf = new Map<string, RunRecord | undefined>();
  for (const record of await storage.listRuns({ newestFirst: true, limit: RECENT_RUNS }))
    if (!newestOf.has(record.saga)) newestOf.set(record.saga, record);
  for (const { pipeline } of measured)
    if (!newestOf.has(pipeline))
      newestOf.set(pipeline, (await storage.listRuns({ sagas: [pipeline], newestFirst: true, limit: 1 }))[0]);
  const usage: JobUsage[] = [];
  for (const pipeline of [...newestOf.keys()].sort()) {
    const newest = newestOf.get(pipeline);
    const plan = newest && planOf(newest);
    // A saga's runs (not a pipeline's) declare nothing and are never measured.
    if (!plan && !measured.some((m) => m.pipeline === pipeline)) continue;
    const jobs = new Map<string, Step>();
    for (const step of flatten(plan?.steps ?? []))
      if (step.kind === "job" && !jobs.has(step.job.name)) jobs.set(step.job.name, step);
    const names = [...jobs.keys()];
    for (const m of measured) if (m.pipeline === pipeline && !jobs.has(m.job)) names.push(m.job);
    for (const job of names) {
      const step = jobs.get(job);
      const declared = step?.job.resources;
      const memory = step && resources ? resources.need(pipeline, step).memoryBytes : declared?.memoryBytes;
      usage.push({
        pipeline,
        job,
        declared: step
          ? {
              ...(declared?.memoryBytes !== undefined && { memory: declared.memoryBytes }),
              ...(declared?.cpu !== undefined && { cpu: declared.cpu }),
              ...(declared?.diskBytes !== undefined && { disk: declared.diskBytes }),
              locks: [...(declared?.locks ?? [])],
            }
          : null,
        requestMemory: typeof memory === "number" && memory > 0 ? memory : null,
        run: step && newest ? newest.id : null,
        measured: figures(peaks?.recentPeaks(pipeline, job, SAMPLES) ?? []),
      });
    }
  }
  return usage;
}

/** A plan's steps with every loop's body. */
function* flatten(steps: readonly Step[]): Generator<Step> {
  for (const step of steps) {
    yield step;
    if (step.body) yield* flatten(step.body);
  }
}

/** Count, nearest-rank p95, max and newest of peaks given newest first; null for none. */
function figures(newestFirst: readonly number[]): JobUsage["measured"] {
  if (newestFirst.length === 0) return null;
  const sorted = [...newestFirst].sort((a, b) => a - b);
  return {
    samples: sorted.length,
    p95: sorted[Math.ceil(0.95 * sorted.length) - 1]!,
    max: sorted.at(-1)!,
    last: newestFirst[0]!,
  };
}
