/**
 * Following runs in the foreground: show their events, cancel them on the first interrupt, and
 * return the exit code that sums them up (the worst of them) once all have ended.
 */
import type { ExecutionResult } from "../engine/executor.js";
import { duration } from "../format.js";
import { type Plan, stepLabel } from "../pipeline/plan.js";
import { markFollowed } from "../server/liveness.js";
import { outlineOf, runDetail, skippedReason } from "../server/records.js";
import type { PlanOutline, RunDetail } from "../server/schemas.js";
import type { Io } from "./command.js";
import { exitCodeOf, onInterrupt, type Session } from "./session.js";
import { createView, type ViewMode } from "./view.js";

export interface Followed {
  id: string;
  plan: Plan;
}

/** How output is shown: `--json` wins; a terminal gets the live table; anything else plain lines. */
export function viewMode(json: boolean | undefined): ViewMode {
  if (json) return "json";
  return process.stdout.isTTY ? "live" : "plain";
}

/**
 * Follows the runs until every one has ended, while `begin` starts or continues them (events are
 * listened to first, so none is missed). Returns the worst exit code.
 */
export async function follow(
  session: Session,
  runs: readonly Followed[],
  mode: ViewMode,
  io: Io,
  begin: () => Promise<void>,
): Promise<number> {
  const { executor } = session;
  const view = createView(mode, io, new Map(runs.map((r) => [r.id, r.plan])));
  const stops = runs.map((run) => executor.on((event) => view.event(event), run.id));
  const unmark = markFollowed(
    session.dataDir,
    runs.map((run) => run.id),
  );
  let interrupted = false;
  const uninstall = onInterrupt((signal) => {
    interrupted = true;
    for (const run of runs) void executor.cancel(run.id, `interrupted (${signal})`).catch(() => {});
  }, io);
  try {
    await begin();
    const results = await Promise.all(runs.map((run) => executor.result(run.id)));
    view.close();
    let worst = 0;
    for (const result of results) {
      const run = runs.find((r) => r.id === result.id)!;
      if (mode !== "json") io.out(await summary(session, result, run.plan));
      worst = Math.max(worst, exitCodeOf(result.status, interrupted));
    }
    return worst;
  } finally {
    view.close();
    unmark();
    uninstall();
    for (const stop of stops) stop();
  }
}

/** The closing lines of a run: how it ended, why, and what to do next. */
async function summary(session: Session, result: ExecutionResult, plan: Plan): Promise<string> {
  const info = await session.executor.get(result.id);
  if (!info) return `run ${result.id} ${result.status}\n`;
  return summaryText({ ...runDetail(info), status: result.status }, outlineOf(plan)!);
}

/** The closing lines of a run, from what the API shows of it (embedded or from a server alike). */
export function summaryText(
  run: Pick<RunDetail, "id" | "status" | "createdAt" | "endedAt" | "cause" | "error" | "steps">,
  plan: Pick<PlanOutline, "steps" | "excluded">,
): string {
  const labelOf = (action: string) => stepLabel(plan, action);
  const lines = [`run ${run.id} ${run.status} in ${duration((run.endedAt ?? Date.now()) - run.createdAt)}`];
  const cause = run.cause;
  if (cause?.kind === "failure") lines.push(`  ${labelOf(cause.action)} failed: ${cause.error.message}`);
  if (cause?.kind === "cancel") lines.push(`  cancelled: ${cause.reason}`);
  const undone = run.steps.filter((s) => s.status === "undone").map((s) => labelOf(s.job));
  if (undone.length > 0) lines.push(`  undone: ${undone.join(", ")}`);
  const skipped = run.steps.filter((s) => skippedReason(s) !== undefined).map((s) => labelOf(s.job));
  if (skipped.length > 0) lines.push(`  skipped: ${skipped.join(", ")}`);
  for (const { job, reason } of plan.excluded) lines.push(`  not run: ${job} (${reason})`);
  if (run.status === "needs_attention")
    lines.push(
      `  ${run.error?.message ?? "an undo failed"}`,
      `  fix the cause, then: slipway resume ${run.id}`,
    );
  if (run.status === "failed")
    lines.push(`  held (on_failure: hold): fix the cause, then: slipway retry ${run.id}`);
  if (run.status === "waiting" || run.status === "running")
    lines.push(`  continue with: slipway resume ${run.id}`);
  return `${lines.join("\n")}\n`;
}
