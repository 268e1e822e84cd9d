/**
 * Why a job is not running, from what storage knows of it: the signal, time or check it waits for
 * (and until when), the retry it is due for, the jobs it needs. `slipway show`, `GET /queue` and the
 * scheduler's own explanations (admission, locks: `LocalRuns.queue` and `show`) all go through here.
 */
import { time } from "../format.js";
import { stepLabel } from "../pipeline/plan.js";
import { runSpecOf } from "../pipeline/run-spec.js";
import { ACTIVE_STATUSES, type Storage } from "../storage/types.js";
import { outlineOf, planOf, runSummary, stepSummary } from "./records.js";
import type { PlanOutline, QueueEntry, RunSummary, StepSummary } from "./schemas.js";

export interface Why {
  reason: string;
  message: string;
  until: number | null;
}

/** What a waiting or retrying step waits for, from its durable state; undefined for other states. */
export function stepWait(step: Pick<StepSummary, "status" | "state" | "error">): Why | undefined {
  const state = step.state ?? {};
  const num = (key: string) => (typeof state[key] === "number" ? (state[key] as number) : null);
  const deadline = num("deadline");
  const until = deadline === null ? "" : ` until ${time(deadline)}`;
  if (step.status === "retrying") {
    const at = num("retryAt");
    return {
      reason: "retry",
      message: `retrying${at ? ` at ${time(at)}` : ""} after: ${step.error ?? "a failed attempt"}`,
      until: at,
    };
  }
  if (step.status !== "waiting") return undefined;
  const sleepUntil = num("until");
  if (sleepUntil !== null)
    return { reason: "sleep", message: `sleeping until ${time(sleepUntil)}`, until: sleepUntil };
  const nextCheck = num("nextCheckAt");
  if (nextCheck !== null) {
    // What the last check said ("waits for concurrency key ...", "build 7 still running") says most.
    const said = typeof state.message === "string" ? `${state.message}; ` : "polling, ";
    return { reason: "poll", message: `${said}next check ${time(nextCheck)}${until}`, until: deadline };
  }
  // A loop or fan-out waits for its own steps (each of which says what it waits for).
  if (typeof state.iteration === "number")
    return { reason: "group", message: "its iteration under way", until: null };
  if (Array.isArray(state.items))
    return { reason: "group", message: `${state.items.length} items under way`, until: null };
  // A child step waits for its child run, which is in the queue as a run of its own.
  if (typeof state.child === "string")
    return { reason: "child", message: `waiting for child run ${state.child}${until}`, until: deadline };
  return {
    reason: "signal",
    message: `waiting for signal "${String(state.signal)}"${until}`,
    until: deadline,
  };
}

/**
 * Every job of an unfinished run that is not running, and why. `extra` is the scheduler's word on a
 * job (which resource or lock it waits for, behind whom); when it has one, it wins.
 */
export function queueOf(
  record: Pick<RunSummary, "id" | "name" | "pipeline" | "status">,
  steps: readonly StepSummary[],
  plan: PlanOutline | null,
  extra?: (job: string) => Why | undefined,
): QueueEntry[] {
  const byAction = new Map(steps.map((s) => [s.job, s]));
  const labelOf = (action: string) => (plan ? stepLabel(plan, action) : action);
  const done = (action: string) => byAction.get(action)?.status === "completed";
  const entries: QueueEntry[] = [];
  // Steps the plan doesn't list (the concurrency gate) come first: everything else is after them.
  const planned = new Set(plan?.steps.map((s) => s.action));
  const unplanned = steps.map((s) => s.job).filter((action) => !planned.has(action));
  const actions = plan ? [...unplanned, ...plan.steps.map((s) => s.action)] : steps.map((s) => s.job);
  // A loop iteration's steps (`attempts#2.fix`) and a fan-out's (`build#2.build`) are not gates:
  // they run inside their group's step.
  const gates = unplanned.filter((action) => !done(action) && !action.includes("#"));
  for (const action of actions) {
    const step = byAction.get(action);
    let why: Why | undefined = extra?.(action);
    if (!why && step) {
      why = stepWait(step);
      // A loop's own row is not rewritten per iteration: its steps say which one is under way.
      if (why?.reason === "group" && typeof step.state?.iteration === "number")
        why = { ...why, message: `iteration ${lastIteration(steps, action)} under way` };
      if (!why && step.status === "failed" && record.status === "failed")
        why = {
          reason: "held",
          message: `held after failing: ${step.error ?? ""}; retry or cancel the run`,
          until: null,
        };
    }
    // A step not started waits for something only while the run goes forward (or is held).
    if (
      !why &&
      !step &&
      (record.status === "running" || record.status === "waiting" || record.status === "failed")
    ) {
      const needs = plan?.steps.find((s) => s.action === action)?.needs ?? [];
      const waitingFor = needs.length === 0 ? gates : needs.filter((n) => !done(n));
      why =
        record.status === "failed"
          ? { reason: "held", message: "not started: the run is held", until: null }
          : {
              reason: "needs",
              message: waitingFor.length ? `after ${waitingFor.map(labelOf).join(", ")}` : "ready to start",
              until: null,
            };
    }
    if (!why) continue;
    entries.push({
      run: record.id,
      runName: record.name,
      pipeline: record.pipeline,
      job: action,
      label: labelOf(action),
      // Started but held back by admission: queued, as `slipway show` says.
      state: why.reason === "admission" ? "queued" : (step?.status ?? "pending"),
      ...why,
    });
  }
  return entries;
}

/** The latest iteration of loop `group` that has a step. */
function lastIteration(steps: readonly StepSummary[], group: string): number {
  let last = 1;
  for (const s of steps)
    if (s.group === group && s.iteration !== undefined) last = Math.max(last, s.iteration);
  return last;
}

/** Why admission holds a started step back, if it does (only the process running the step knows). */
export type AdmissionExplainer = (runId: string, action: string) => string | undefined;

/** Admission's word on a job of the run, as a wait (`reason: "admission"`), for `queueOf`'s `extra`. */
export function admissionWhy(
  runId: string,
  admission: AdmissionExplainer | undefined,
): ((job: string) => Why | undefined) | undefined {
  if (!admission) return undefined;
  return (job) => {
    const message = admission(runId, job);
    return message === undefined ? undefined : { reason: "admission", message, until: null };
  };
}

/** Every job of every unfinished pipeline run that is not running, and why. */
export async function queueFromStorage(
  storage: Storage,
  admission?: AdmissionExplainer,
): Promise<QueueEntry[]> {
  const records = await storage.listRuns({ statuses: [...ACTIVE_STATUSES, "failed"] });
  const entries: QueueEntry[] = [];
  for (const record of records) {
    const snapshot = await storage.load(record.id);
    if (!snapshot || !runSpecOf(record)) continue;
    const steps = snapshot.steps.map(stepSummary);
    entries.push(
      ...queueOf(runSummary(record), steps, outlineOf(planOf(record)), admissionWhy(record.id, admission)),
    );
  }
  return entries;
}
