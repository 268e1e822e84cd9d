/**
 * `slipway show`'s job table with a run's groups unfolded: the steps of each loop iteration (or
 * fan-out item), `attempts#2.fix`, listed under their group as `iteration 2`, then `fix`.
 */
import { duration } from "../../format.js";
import { stepResultOf } from "../../runs/records.js";
import type { StepSummary } from "../../runs/schemas.js";

/** One row of the table: a step (its job name shown as `name`, indented), or the head of an iteration. */
export type Row =
  | { kind: "step"; step: StepSummary; name: string }
  | { kind: "iteration"; name: string; steps: StepSummary[] };

/** The run's steps in order, each group's iterations (or items) right after the group's own step. */
export function unfold(steps: readonly StepSummary[]): Row[] {
  const instances = new Map<string, Map<number, StepSummary[]>>();
  const top: StepSummary[] = [];
  for (const step of steps) {
    const index = step.iteration ?? step.item;
    if (step.group === undefined || index === undefined) {
      top.push(step);
      continue;
    }
    const byIndex = instances.get(step.group) ?? new Map<number, StepSummary[]>();
    instances.set(step.group, byIndex);
    byIndex.set(index, [...(byIndex.get(index) ?? []), step]);
  }
  const rows: Row[] = [];
  for (const step of top) {
    rows.push({ kind: "step", step, name: step.job });
    for (const [index, inner] of [...(instances.get(step.job) ?? [])].sort(([a], [b]) => a - b)) {
      const word = inner[0]!.item === undefined ? "iteration" : "item";
      rows.push({ kind: "iteration", name: `  ${word} ${index}`, steps: inner });
      // `attempts#2.fix` reads as `fix` under its iteration.
      for (const s of inner)
        rows.push({ kind: "step", step: s, name: `    ${s.job.replace(/^[^#]+#\d+\./, "")}` });
    }
  }
  return rows;
}

/** What a group's step ran, for its note: `3 iterations`, `4 items`; empty for other steps. */
export function groupNote(rows: readonly Row[], group: string): string {
  const seen = new Set<number>();
  let word = "iteration";
  for (const row of rows) {
    if (row.kind !== "step" || row.step.group !== group) continue;
    if (row.step.item !== undefined) word = "item";
    seen.add(row.step.iteration ?? row.step.item ?? 0);
  }
  return seen.size === 0 ? "" : `${seen.size} ${word}${seen.size === 1 ? "" : "s"}`;
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
