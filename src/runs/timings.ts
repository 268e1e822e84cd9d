/**
 * Every step's phases (queued, waiting by reason, running, probing, undoing, cleanup), per attempt,
 * derived from the run's persisted history: the engine's lifecycle events, and what each attempt
 * recorded of its admission on the event that ended it (`data.timing`, pipeline/timing.ts). Nothing
 * is stored for them alone. A wait under way comes from the process hosting the run, when it is this one.
 */
import type { JsonObject } from "../json.js";
import { type AdmissionTiming, attemptTimingSchema } from "../pipeline/timing.js";
import type { EventRecord } from "../storage/types.js";
import type { JobTimings, Phase, PhaseReason, StepSummary } from "./schemas.js";

/** What the phases are derived from. */
export interface TimingSource {
  run: { createdAt: number; endedAt: number | null };
  steps: readonly StepSummary[];
  /** The run's history, in seq order. */
  history: readonly EventRecord[];
  /** The pipeline's plan: labels, what each step needs, which steps probe which job, the concurrency key. */
  plan?: {
    steps: readonly { action: string; label: string; needs: readonly string[]; probes?: string }[];
    key: string;
  };
  /** What a step still waiting for admission in this process has waited for so far. */
  admission?: (action: string) => AdmissionTiming | undefined;
}

/** A phase under construction: its kind, and how the attempt that ends it ended. */
type Open = Omit<Phase, "endedAt"> & { endedAt: number | null };

/** The concurrency gate's step (pipeline/compile.ts CONCURRENCY_GATE). */
const GATE = ".concurrency";

export function timingsOf(source: TimingSource): JobTimings[] {
  const planned = new Map(source.plan?.steps.map((s) => [s.action, s]));
  const byJob = new Map(source.steps.map((s) => [s.job, s]));
  const events = new Map<string, EventRecord[]>();
  for (const event of source.history) {
    if (event.action === null) continue;
    const list = events.get(event.action);
    if (list) list.push(event);
    else events.set(event.action, [event]);
  }
  const gate = byJob.get(GATE);
  const rows: JobTimings[] = [];
  for (const step of source.steps) {
    const plan = planned.get(step.job);
    // When it was due: its needs ended (a root job: the gate, or the run's creation).
    let due: number | null = null;
    if (plan) {
      const needs = plan.needs.length > 0 ? plan.needs : gate ? [GATE] : [];
      const ends = needs.map((n) => endOf(events.get(n), byJob.get(n)));
      due =
        ends.length === 0
          ? source.run.createdAt
          : ends.includes(null)
            ? null
            : Math.max(...(ends as number[]));
    } else if (step.job === GATE) due = source.run.createdAt;
    const row: JobTimings = {
      job: step.job,
      label: plan?.label ?? step.job,
      ...(plan?.probes !== undefined && { probes: plan.probes }),
      phases: phasesOf(events.get(step.job) ?? [], {
        due,
        probe: plan?.probes !== undefined,
        gateKey: step.job === GATE ? source.plan?.key : undefined,
        end: source.run.endedAt ?? step.endedAt,
        live: source.run.endedAt === null ? source.admission?.(step.job) : undefined,
      }),
    };
    rows.push(row);
  }
  // A job's probe said it was up when the probe's step completed.
  for (const row of rows) {
    const step = byJob.get(row.job);
    if (row.probes === undefined || step?.status !== "completed" || step.endedAt === null) continue;
    const probed = rows.find((r) => r.job === row.probes);
    if (probed) probed.readyAt = step.endedAt;
  }
  return rows;
}

/** When a step ended, as its history says (its phases end there), else as its record says. */
function endOf(events: readonly EventRecord[] | undefined, step: StepSummary | undefined): number | null {
  if (step?.endedAt === null || step === undefined) return null;
  const last = events?.findLast((e) => e.type === "action:completed" || e.type === "action:failed");
  return last?.at ?? step.endedAt;
}

interface StepContext {
  due: number | null;
  probe: boolean;
  gateKey: string | undefined;
  /** When phases still open end: the run's end (or the step's), null while it goes on. */
  end: number | null;
  live: AdmissionTiming | undefined;
}

/** One step's phases from its events, oldest first. */
function phasesOf(events: readonly EventRecord[], context: StepContext): Phase[] {
  const phases: Open[] = [];
  let open: Open | undefined;
  const close = (at: number, data: JsonObject | null, failed: boolean) => {
    if (!open) return;
    const current = open;
    open = undefined;
    const admission = attemptTimingSchema.safeParse(data?.timing ?? {}).data?.admission;
    phases.push(...split(current, at, admission));
    if (failed) phases.at(-1)!.failed = true;
  };
  const begin = (phase: Open) => {
    // Its first phase: it was queued from when it was due (its needs ended) until the engine started it.
    if (phases.length === 0 && context.due !== null && context.due < phase.startedAt)
      phases.push({ phase: "queued", attempt: 1, startedAt: context.due, endedAt: phase.startedAt });
    open = phase;
  };
  for (const event of events) {
    const data = event.data;
    const attempt = typeof data?.attempt === "number" ? data.attempt : 1;
    switch (event.type) {
      case "action:started": {
        // A recovered attempt: the one before it was cut short by the crash.
        close(event.at, null, false);
        begin({ phase: context.probe ? "probing" : "running", attempt, startedAt: event.at, endedAt: null });
        break;
      }
      case "action:waiting":
        close(event.at, null, false);
        begin({
          phase: "waiting",
          attempt,
          startedAt: event.at,
          endedAt: null,
          reason: waitReason(data, context),
        });
        break;
      case "action:completed":
      case "cleanup:completed":
      case "undo:completed":
        close(event.at, data, false);
        break;
      case "action:failed":
      case "undo:failed":
        close(event.at, data, true);
        if (typeof data?.retryAt === "number")
          begin({
            phase: "waiting",
            attempt: attempt + 1,
            startedAt: event.at,
            endedAt: null,
            reason: { kind: "retry", ...(typeof data.error === "string" && { message: data.error }) },
          });
        break;
      case "cleanup:started":
        close(event.at, data, true);
        begin({ phase: "cleanup", attempt, startedAt: event.at, endedAt: null });
        break;
      case "cleanup:failed":
        close(event.at, data, true);
        break;
      case "undo:started":
        close(event.at, null, false);
        begin({ phase: "undoing", attempt, startedAt: event.at, endedAt: null });
        break;
    }
  }
  if (open !== undefined) {
    const current: Open = open;
    if (context.end !== null) close(Math.max(context.end, current.startedAt), null, false);
    else phases.push(...split(current, null, context.live));
  }
  // A stretch of an admission wait of no length is left out; anything else happened, however fast.
  const kept = phases.filter((p) => p.endedAt === null || p.endedAt > p.startedAt || !admitting(p));
  // Queued before the engine started it and queued before it asked for resources are one stretch.
  return kept.filter((p, i) => {
    const next = kept[i + 1];
    if (!next || p.phase !== "queued" || next.phase !== "queued" || p.endedAt !== next.startedAt) return true;
    next.startedAt = p.startedAt;
    return false;
  });
}

/**
 * A phase cut by what its attempt recorded of its admission: before it asked (queued, or the undo or
 * cleanup itself), each stretch of its wait by reason, then from the grant on. `end` null: under way.
 */
function split(phase: Open, end: number | null, admission: AdmissionTiming | undefined): Phase[] {
  const waits = admission?.waits ?? [];
  if (waits.length === 0) return [{ ...phase, endedAt: end }];
  const before = phase.phase === "running" || phase.phase === "probing" ? "queued" : phase.phase;
  const clamp = (at: number) => Math.max(phase.startedAt, end === null ? at : Math.min(at, end));
  const out: Phase[] = [];
  const asked = clamp(admission!.at);
  if (asked > phase.startedAt) out.push({ ...phase, phase: before, endedAt: asked, failed: undefined });
  waits.forEach((wait, i) => {
    const from = i === 0 ? asked : clamp(wait.at);
    const next = waits[i + 1];
    const to = next ? clamp(next.at) : admission!.grantedAt === null ? end : clamp(admission!.grantedAt);
    const reason: PhaseReason = { kind: wait.kind, message: wait.message };
    if (wait.resource !== undefined) reason.resource = wait.resource;
    if (wait.holder) reason.holder = wait.holder;
    if (wait.position !== undefined) reason.position = wait.position;
    if (wait.reserved) reason.reserved = true;
    out.push({ phase: "waiting", attempt: phase.attempt, startedAt: from, endedAt: to, reason });
  });
  if (admission!.grantedAt !== null)
    out.push({ ...phase, startedAt: clamp(admission!.grantedAt), endedAt: end });
  for (const p of out) if (p.failed === undefined) delete p.failed;
  return out;
}

/** A wait for admission (a lock or pool), as a split of its attempt. */
function admitting(phase: Phase): boolean {
  const kind = phase.reason?.kind;
  return kind === "lock" || kind === "pool" || kind === "admission";
}

/** Why a step that waits (`action:waiting`) waits, from the event's data. */
function waitReason(data: JsonObject | null, context: StepContext): PhaseReason {
  if (context.gateKey !== undefined) return { kind: "concurrency", resource: context.gateKey };
  if (typeof data?.child === "string") return { kind: "child", resource: data.child };
  if (typeof data?.iteration === "number") return { kind: "loop" };
  if (typeof data?.items === "number") return { kind: "fan-out" };
  if (typeof data?.signal === "string") return { kind: "signal", resource: data.signal };
  if (typeof data?.until === "number") return { kind: "sleep" };
  return { kind: "poll" };
}
