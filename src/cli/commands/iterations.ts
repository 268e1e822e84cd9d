/**
 * `slipway show`'s job table with a run's groups unfolded: the steps of each loop iteration (or
 * fan-out item), `attempts#2.fix`, listed under their group as `iteration 2`, then `fix`.
 */
import { duration } from "../../format.js";
import { stepResultOf } from "../../runs/records.js";
import type { StepSummary } from "../../runs/schemas.js";

/** `attempts#2.fix`: group `attempts`, iteration or item 2, job `fix`. */
const INSTANCE = /^([^#]+)#(\d+)\.(.+)$/;

/** One row of the table: a step (its job name shown as `name`, indented), or the head of an iteration. */
export type Row =
  | { kind: "step"; step: StepSummary; name: string }
  | { kind: "iteration"; name: string; steps: StepSummary[] };

/** The run's steps in order, each group's instances right after the group's own step, in order. */
export function unfold(steps: readonly StepSummary[]): Row[] {
  const groups = new Set(steps.map((s) => s.job));
  const instances = new Map<string, Map<number, StepSummary[]>>();
  const top: StepSummary[] = [];
  for (const step of steps) {
    const match = INSTANCE.exec(step.job);
    if (!match || !groups.has(match[1]!)) {
      top.push(step);
      continue;
    }
    const byIndex = instances.get(match[1]!) ?? new Map<number, StepSummary[]>();
    instances.set(match[1]!, byIndex);
    const index = Number(match[2]);
    byIndex.set(index, [...(byIndex.get(index) ?? []), step]);
  }
  const rows: Row[] = [];
  for (const step of top) {
    const byIndex = instances.get(step.job);
    const word = Array.isArray(step.state?.items) ? "item" : "iteration";
    rows.push({ kind: "step", step, name: step.job });
    for (const [index, inner] of [...(byIndex ?? [])].sort(([a], [b]) => a - b)) {
      rows.push({ kind: "iteration", name: `  ${word} ${index}`, steps: inner });
      for (const s of inner) rows.push({ kind: "step", step: s, name: `    ${INSTANCE.exec(s.job)![3]}` });
    }
  }
  return rows;
}

/** How many iterations (or items) a group's step ran, for its note. */
export function instanceCount(rows: readonly Row[], group: string): number {
  const prefix = `${group}#`;
  const seen = new Set<string>();
  for (const row of rows)
    if (row.kind === "step" && row.step.job.startsWith(prefix)) seen.add(row.step.job.split(".")[0]!);
  return seen.size;
}

/** An iteration's head: from its first step's start to its last one's end, and what its last job output. */
export function iterationCells(steps: readonly StepSummary[]): { time: string; note: string } {
  const starts = steps.flatMap((s) => (s.startedAt === null ? [] : [s.startedAt]));
  const ended = steps.every((s) => s.endedAt !== null);
  const end = ended ? Math.max(...steps.map((s) => s.endedAt!)) : Date.now();
  const time = starts.length === 0 ? "-" : duration(end - Math.min(...starts));
  // What the iteration came to: the outputs of its last job (a build's result, say), once it completed.
  const last = steps.at(-1);
  const outputs = last?.status === "completed" ? (stepResultOf(last)?.outputs ?? {}) : {};
  const note = Object.entries(outputs)
    .map(([key, value]) => `${key}=${value}`)
    .join(" ");
  return { time, note: note.length > 160 ? `${note.slice(0, 159)}…` : note };
}
