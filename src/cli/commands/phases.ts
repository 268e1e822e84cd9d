/**
 * `slipway show`'s words for where a run's time went: the critical path on one line, and each job's
 * phases (`queued 0.2s · waited 10.5s for lock swarm (held by run r-12 job deploy) · ran 3.1s · undo 0.4s`).
 */
import { duration, ordinal } from "../../format.js";
import type { JobTimings, Phase, PhaseReason, RunDetail } from "../../runs/schemas.js";

/** Where the run's time went, e.g. `4m 10s: build 1m 2s, 40s queued -> publish 3m (failed) -> build undo 2s`. */
export function criticalPathText(run: RunDetail): string | undefined {
  const path = run.criticalPath;
  if (!path) return undefined;
  const parts = path.steps.map((s) => {
    const wait = s.queuedMs === undefined ? "" : `, ${duration(s.queuedMs)} queued`;
    const what = s.phase === undefined ? "" : ` ${s.phase}`;
    return `${s.job}${what} ${duration(s.ms)}${wait}${s.failed ? " (failed)" : ""}`;
  });
  return `${duration(path.totalMs)}: ${parts.join(" -> ")}`;
}

/** One line per step that has phases, indented under a `timings` heading; none when no step has any. */
export function timingLines(run: RunDetail, now = Date.now()): string[] {
  const rows = (run.timings ?? []).filter((row) => row.phases.length > 0);
  if (rows.length === 0) return [];
  const width = Math.max(...rows.map((row) => row.job.length));
  return ["timings", ...rows.map((row) => `  ${row.job.padEnd(width)}  ${phasesText(row, now)}`)];
}

function phasesText(row: JobTimings, now: number): string {
  const parts: string[] = [];
  let last: { key: string; ms: number; open: boolean; phase: Phase } | undefined;
  const flush = () => {
    if (last) parts.push(words(last.phase, last.ms, last.open));
  };
  for (const phase of row.phases) {
    const open = phase.endedAt === null;
    const ms = (phase.endedAt ?? now) - phase.startedAt;
    // Stretches of the same kind for the same reason in a row (a wait whose place in line changed) read as one.
    const key = `${phase.phase}|${phase.attempt}|${reasonText(phase.reason)}`;
    if (last && last.key === key && !phase.failed) {
      last.ms += ms;
      last.open = open;
      continue;
    }
    flush();
    last = { key, ms, open, phase };
  }
  flush();
  return parts.join(" · ");
}

const VERBS: Record<Phase["phase"], string> = {
  queued: "queued",
  waiting: "waited",
  running: "ran",
  probing: "probed",
  undoing: "undo",
  cleanup: "cleanup",
};

function words(phase: Phase, ms: number, open: boolean): string {
  const verb = open && phase.phase === "waiting" ? "waiting" : VERBS[phase.phase];
  const time = `${duration(ms)}${open ? " so far" : ""}`;
  const reason = phase.reason === undefined ? "" : ` for ${reasonText(phase.reason)}`;
  const attempt = phase.attempt > 1 && phase.phase === "running" ? ` (attempt ${phase.attempt})` : "";
  return `${verb} ${time}${reason}${attempt}${phase.failed ? " (failed)" : ""}`;
}

/** `lock swarm (held by run r-12 job deploy; 2nd in line)`, `a retry`, `signal go`, `child run c1`. */
function reasonText(reason: PhaseReason | undefined): string {
  if (!reason) return "";
  const holder = reason.holder
    ? `held by run ${reason.holder.runName ?? reason.holder.run} job ${reason.holder.job}`
    : undefined;
  const line = reason.position === undefined ? undefined : `${ordinal(reason.position)} in line`;
  const details = [reason.reserved ? "reserved ahead of it" : undefined, holder, line].filter(Boolean);
  const more = details.length > 0 ? ` (${details.join("; ")})` : "";
  switch (reason.kind) {
    case "lock":
      return `lock ${reason.resource}${more}`;
    case "pool":
      return `${reason.resource}${more}`;
    case "admission":
      return "admission";
    case "concurrency":
      return `concurrency key ${reason.resource}`;
    case "retry":
      return "a retry";
    case "signal":
      return `signal ${reason.resource}`;
    case "child":
      return `child run ${reason.resource}`;
    case "loop":
      return "its iterations";
    case "fan-out":
      return "its items";
    default:
      return reason.kind;
  }
}
