/**
 * Where a run's time went (story 2: "what each minute of the critical path was spent on"): from the
 * steps' phases, the chain back from the run's end through the step each one waited for, covering the
 * whole run, a failed one's failing job and rollback included.
 */
import type { CriticalPath, JobTimings, Phase, PlanOutline } from "./schemas.js";

/** A step's phases that follow one another without a gap: one link of the chain. */
interface Block {
  job: string;
  phases: Phase[];
  startedAt: number;
  endedAt: number;
}

/** Waits that hold a job back (queueing): not those that are its work, a child run, a signal, a loop's steps. */
const HELD_BACK: ReadonlySet<string> = new Set(["lock", "pool", "admission", "concurrency", "retry"]);

/** Two times this close count as the same moment (the clock's grain between two writes). */
const SLACK_MS = 1;

/**
 * Back from the run's end (a run under way: the last phase that ended), each link is the block of
 * phases that ended last before the next one began, a job it needs first among those ending then.
 * A stretch no block accounts for (the engine between a failure and the first undo, say) is a
 * `queued` segment of no job, so the segments add up to the whole time. Null until a phase has ended.
 */
export function criticalPathOf(run: {
  createdAt: number;
  endedAt: number | null;
  timings: readonly JobTimings[];
  plan: PlanOutline | null;
}): CriticalPath | null {
  const blocks = run.timings.flatMap(blocksOf);
  if (blocks.length === 0) return null;
  const end = run.endedAt ?? Math.max(...blocks.map((b) => b.endedAt));
  const needs = new Map(run.plan?.steps.map((s) => [s.action, new Set(s.needs)]));
  const chain: Block[] = [];
  // Latest end first; the cursor only moves back, so one pass over them finds every link.
  const byEnd = [...blocks].sort((a, b) => b.endedAt - a.endedAt);
  let first = 0;
  let cursor = end;
  while (cursor > run.createdAt) {
    while (first < byEnd.length && byEnd[first]!.endedAt > cursor + SLACK_MS) first++;
    // Those that ended last before the cursor (within the clock's grain of each other).
    const tied: Block[] = [];
    for (let i = first; i < byEnd.length; i++) {
      const block = byEnd[i]!;
      if (tied.length > 0 && block.endedAt < tied[0]!.endedAt - SLACK_MS) break;
      if (block.startedAt < cursor) tied.push(block);
    }
    if (tied.length === 0) break;
    const wanted = chain[0] && needs.get(chain[0].job);
    const next = tied.find((b) => wanted?.has(b.job)) ?? tied[0]!;
    chain.unshift(next);
    cursor = Math.min(cursor, next.startedAt);
  }
  // Segments, clipped so that none overlaps the next and the gaps between them are filled.
  const segments: CriticalPath["segments"] = [];
  let at = run.createdAt;
  const gap = (to: number) => {
    if (to > at) segments.push({ job: null, phase: "queued", attempt: 1, startedAt: at, endedAt: to });
    at = Math.max(at, to);
  };
  const steps: CriticalPath["steps"] = [];
  for (const [i, block] of chain.entries()) {
    const limit = chain[i + 1]?.startedAt ?? end;
    gap(Math.min(block.startedAt, limit));
    let ms = 0;
    let waited = 0;
    for (const p of block.phases) {
      const from = Math.max(at, p.startedAt);
      const to = Math.min(p.endedAt!, limit);
      if (to <= from) continue;
      segments.push({ ...p, job: block.job, startedAt: from, endedAt: to });
      ms += to - from;
      if (p.phase === "waiting" && p.reason !== undefined && HELD_BACK.has(p.reason.kind))
        waited += to - from;
      at = to;
    }
    const kind = block.phases.find((p) => p.phase === "undoing" || p.phase === "cleanup")?.phase;
    steps.push({
      job: block.job,
      ms,
      ...(waited > 0 && { queuedMs: waited }),
      ...(kind !== undefined && { phase: kind === "undoing" ? ("undo" as const) : ("cleanup" as const) }),
      ...(block.phases.at(-1)?.failed && { failed: true }),
    });
  }
  gap(end);
  return { totalMs: end - run.createdAt, steps, segments };
}

/** A step's ended phases, cut where one does not begin as the one before it ends, and where its rollback begins. */
function blocksOf(row: JobTimings): Block[] {
  const blocks: Block[] = [];
  // A link still under way (its last phase open, with the phases leading up to it) is not on the path yet.
  let cut = row.phases.findIndex((p) => p.endedAt === null);
  if (cut === -1) cut = row.phases.length;
  else while (cut > 0 && row.phases[cut - 1]!.endedAt! >= row.phases[cut]!.startedAt - SLACK_MS) cut--;
  const ended = row.phases.slice(0, cut);
  // An undo or cleanup (with the wait for admission before it) is a link of its own: the rollback
  // waited for something else than the job's run.
  const rollback = ended.map((p) => p.phase === "undoing" || p.phase === "cleanup");
  for (let i = ended.length - 2; i >= 0; i--)
    if (ended[i]!.phase === "waiting" && rollback[i + 1] && ended[i]!.attempt === ended[i + 1]!.attempt)
      rollback[i] = true;
  let lastRollback = false;
  for (const [i, p] of ended.entries()) {
    const last = blocks.at(-1);
    if (last && p.startedAt <= last.endedAt + SLACK_MS && (rollback[i] === lastRollback || !rollback[i])) {
      last.phases.push(p);
      last.endedAt = Math.max(last.endedAt, p.endedAt!);
    } else {
      blocks.push({ job: row.job, phases: [p], startedAt: p.startedAt, endedAt: p.endedAt! });
      lastRollback = rollback[i]!;
    }
  }
  return blocks;
}
