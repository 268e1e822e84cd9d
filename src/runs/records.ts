/**
 * Runs as the API (and the CLI's `--json`) shows them: built from storage records in one place, so
 * `slipway show` embedded, `slipway show --server` and `GET /api/v1/runs/{id}` print the same thing.
 */

import { parseStepName } from "../engine/run-plan.js";
import { type CompiledRun, pipelineOf } from "../pipeline/compile.js";
import { type Plan, planRun } from "../pipeline/plan.js";
import { type RunSpec, runSpecOf, type StepResult } from "../pipeline/run-spec.js";
import type { RunRecord, StepRecord, Storage } from "../storage/types.js";
import type { PlanOutline, RunSummary, StepSummary } from "./schemas.js";

/** A pipeline run's stored spec, read without validating it: only to show or filter by. */
function specFields(r: RunRecord): { key?: unknown; event?: { kind?: unknown } } | undefined {
  const input = r.input as { run?: { key?: unknown; event?: { kind?: unknown } } } | null;
  return typeof input?.run === "object" && input.run !== null ? input.run : undefined;
}

/** A pipeline run's concurrency key; null for a run of a saga. */
export function concurrencyKeyOf(r: RunRecord): string | null {
  const key = specFields(r)?.key;
  return typeof key === "string" ? key : null;
}

/** What started a pipeline run: its event's kind, `manual` without one; null for a run of a saga. */
export function triggerOf(r: RunRecord): string | null {
  const spec = specFields(r);
  if (!spec) return null;
  return typeof spec.event?.kind === "string" ? spec.event.kind : "manual";
}

export function runSummary(r: RunRecord): RunSummary {
  return {
    id: r.id,
    name: r.runName,
    pipeline: r.saga,
    version: r.version,
    status: r.status,
    createdAt: r.createdAt,
    endedAt: r.endedAt,
    cause: r.cause,
    error: r.error,
    parent: r.parent,
    trigger: triggerOf(r),
    concurrencyKey: concurrencyKeyOf(r),
  };
}

export function stepSummary(s: StepRecord): StepSummary {
  return {
    job: s.action,
    status: s.status,
    attempt: s.attempt,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    output: s.output,
    error: s.error?.message ?? null,
    undoError: s.undoError?.message ?? null,
    state: s.state,
  };
}

/**
 * Says which steps belong to a loop's iteration or a fan-out's item, from their names and their
 * group's step (whose state counts iterations or items).
 */
export function withGroups(steps: StepSummary[]): StepSummary[] {
  const byName = new Map(steps.map((s) => [s.job, s]));
  for (const step of steps) {
    const parsed = parseStepName(step.job);
    const group = parsed && byName.get(parsed.group);
    if (!parsed || !group) continue;
    step.group = parsed.group;
    if (Array.isArray(group.state?.items)) step.item = parsed.index;
    else step.iteration = parsed.index;
  }
  return steps;
}

/** A pipeline step's own result (status, outputs, measured memory...) in its output, when it has one. */
export function stepResultOf(step: Pick<StepSummary, "job" | "output">): Partial<StepResult> | undefined {
  // A loop iteration's step (`attempts#2.fix`) or a leg of a matrix decided at run time
  // (`build#2.build`) keeps its result under its job's name (`fix`, `build`).
  const key =
    step.output && !Object.hasOwn(step.output, step.job) ? step.job.replace(/^[^#]+#\d+\./, "") : step.job;
  return step.output?.[key] as Partial<StepResult> | undefined;
}

/** Why a pipeline step completed without running, or undefined when it ran (or has not ended). */
export function skippedReason(step: Pick<StepSummary, "job" | "status" | "output">): string | undefined {
  const result = stepResultOf(step);
  return step.status === "completed" && result?.status === "skipped" ? (result.reason ?? "") : undefined;
}

/** The plan of a stored pipeline run (undefined for other sagas' runs). */
export function planOf(record: RunRecord): Plan | undefined {
  const spec = runSpecOf(record);
  if (!spec) return undefined;
  try {
    return planRun(pipelineOf(spec.source, spec.file), spec);
  } catch {
    // The text was valid when the run started; a parser that changed since must not break `show`.
    return undefined;
  }
}

export function outlineOf(plan: Plan | undefined): PlanOutline | null {
  if (!plan) return null;
  return {
    steps: plan.steps.map((s) => {
      const memory = s.kind === "job" ? s.job.resources?.memoryBytes : undefined;
      return {
        action: s.action,
        label: s.label,
        // What the step waits for: a readiness probe waits for its own job, which waits for the needs.
        needs: s.probes === undefined ? [...s.needs] : [s.probes],
        ...(memory !== undefined && { memory: memory === "auto" ? ("auto" as const) : memory }),
      };
    }),
    excluded: plan.excluded.map((e) => ({ ...e })),
  };
}

/** A run by id, or the newest run with that run name. */
export async function findRun(storage: Storage, ref: string): Promise<RunRecord | undefined> {
  const byId = await storage.getRun(ref);
  if (byId) return byId;
  return (await storage.listRuns({})).filter((r) => r.runName === ref).at(-1);
}

/** Whether a stored run was started with the same pipeline, inputs and tiers as `compiled` asks for. */
export function sameRun(existing: RunRecord, compiled: CompiledRun): boolean {
  const spec = runSpecOf(existing);
  if (!spec || `${existing.saga}@${existing.version}` !== `${compiled.saga.name}@${compiled.saga.version}`)
    return false;
  const sorted = (inputs: RunSpec["inputs"]) => JSON.stringify(Object.entries(inputs).sort());
  return sorted(spec.inputs) === sorted(compiled.spec.inputs);
}
