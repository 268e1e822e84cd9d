/**
 * Following runs in the foreground: show their events, cancel them on the first interrupt, and
 * return the exit code that sums them up (the worst of them) once all have stopped. The same for runs
 * hosted by this process and runs on a server: both come through the runs service.
 */

import { duration } from "../format.js";
import { stepLabel } from "../pipeline/plan.js";
import { skippedReason } from "../runs/records.js";
import type { PlanOutline, RunDetail } from "../runs/schemas.js";
import type { RunService } from "../runs/service.js";
import type { RunStatus } from "../storage/types.js";
import { EXIT, type Io } from "./command.js";
import { createView, type ViewMode } from "./view.js";

/** A run to follow, after the event seq `after` (0: from its start). */
export interface Followed {
  id: string;
  after: number;
}

/** How output is shown: `--json` wins; a terminal gets the live table; anything else plain lines. */
export function viewMode(json: boolean | undefined): ViewMode {
  if (json) return "json";
  return process.stdout.isTTY ? "live" : "plain";
}

/**
 * Shows the runs' events until every one has stopped (ended, held, or needing attention), then each
 * one's summary; the first interrupt cancels them (their undos run), a second exits at once. Returns
 * the worst exit code.
 */
export async function follow(
  runs: RunService,
  followed: readonly Followed[],
  mode: ViewMode,
  io: Io,
  interrupts: Interrupts = new Interrupts(runs, io),
): Promise<number> {
  for (const run of followed) interrupts.cancels(run.id);
  try {
    // Listening starts before anything else is read: a job's first lines are live progress, told
    // only to those listening when it prints them (reading the plans first could miss a quick job's).
    const streams = await Promise.all(
      followed.map(async (run) => (await runs.events(run.id, { after: run.after }))[Symbol.asyncIterator]()),
    );
    const firsts = streams.map((stream) => stream.next());
    const plans = new Map<string, PlanOutline>();
    for (const run of followed)
      plans.set(run.id, (await runs.show(run.id)).plan ?? { steps: [], excluded: [] });
    const view = createView(mode, io, plans);
    try {
      await Promise.all(
        streams.map(async (stream, i) => {
          for (let next = await firsts[i]!; !next.done; next = await stream.next()) view.event(next.value);
        }),
      );
      view.close();
      let worst: number = EXIT.ok;
      for (const run of followed) {
        const final = await runs.show(run.id);
        if (mode !== "json") io.out(summaryText(final, plans.get(run.id)!));
        worst = Math.max(worst, exitCodeOf(final.status, interrupts.interrupted));
      }
      return worst;
    } finally {
      view.close();
    }
  } finally {
    interrupts.uninstall();
  }
}

/** The closing lines of a run: how it ended, why, and what to do next. */
export function summaryText(
  run: Pick<RunDetail, "id" | "status" | "createdAt" | "endedAt" | "cause" | "error" | "steps">,
  plan: Pick<PlanOutline, "steps" | "excluded">,
): string {
  const labelOf = (action: string) => stepLabel(plan, action);
  const lines = [`run ${run.id} ${run.status} in ${duration((run.endedAt ?? Date.now()) - run.createdAt)}`];
  const cause = run.cause;
  if (cause?.kind === "failure") lines.push(`  ${labelOf(cause.action)} failed: ${cause.error.message}`);
  if (cause?.kind === "cancel") lines.push(`  cancelled: ${cause.reason}`);
  if (cause?.kind === "parent") lines.push(`  undone by its parent run ${cause.runId}`);
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

/** 0 completed; 1 failed (undone or held); 3 an undo failed; 130 cancelled after an interrupt. */
export function exitCodeOf(status: RunStatus, interrupted: boolean): number {
  switch (status) {
    case "completed":
      return EXIT.ok;
    case "needs_attention":
      return EXIT.attention;
    default:
      return interrupted ? EXIT.interrupted : EXIT.failed;
  }
}

/**
 * The first SIGINT or SIGTERM calls `cancel` (nothing new starts, running jobs are stopped, undos
 * run); a second one exits at once, leaving the runs for `slipway resume`. Returns the uninstaller.
 */
/**
 * The foreground's Ctrl-C, installed before a run is submitted (a signal in between would otherwise
 * kill the process and leave its jobs running): the first interrupt cancels the runs it was told of,
 * and any told of later at once (their undos run); a second exits at once.
 */
export class Interrupts {
  interrupted = false;
  #signal: NodeJS.Signals = "SIGINT";
  readonly #ids = new Set<string>();
  readonly #runs: RunService;
  readonly #uninstall: () => void;

  constructor(runs: RunService, io: { err(text: string): void }) {
    this.#runs = runs;
    this.#uninstall = onInterrupt((signal) => {
      this.interrupted = true;
      this.#signal = signal;
      for (const id of this.#ids) this.#cancel(id);
    }, io);
  }

  /** A run the first interrupt cancels (at once, when it came already). */
  cancels(id: string): void {
    if (this.#ids.has(id)) return;
    this.#ids.add(id);
    if (this.interrupted) this.#cancel(id);
  }

  uninstall(): void {
    this.#uninstall();
  }

  #cancel(id: string): void {
    void this.#runs.cancel(id, `interrupted (${this.#signal})`).catch(() => {});
  }
}

export function onInterrupt(
  cancel: (signal: NodeJS.Signals) => void,
  io: { err(text: string): void },
): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      io.err(
        `\n${signal}: cancelling (undoing what was done); press Ctrl-C again to stop at once and resume later\n`,
      );
      cancel(signal);
    } else {
      io.err(`\n${signal} again: stopping now; run "slipway resume" to continue\n`);
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
