/**
 * `slipway ls` and `slipway show`: what runs there are and where each one stands, from the runs
 * service (the embedded database's, or a server's): both print the same shapes (`runs/schemas.ts`).
 */

import { duration, formatBytes, table, time } from "../../format.js";
import { skippedReason, stepResultOf } from "../../runs/records.js";
import type { RunDetail, RunSummary, StepSummary, WaitingJob } from "../../runs/schemas.js";
import { type Command, EXIT, type Io, parse, UsageError } from "../command.js";
import { connectionOptions, withRuns } from "../connect.js";
import { groupNote, iterationCells, unfold } from "./iterations.js";
import { criticalPathText, timingLines } from "./phases.js";

const options = { ...connectionOptions, json: { type: "boolean" } } as const;

export const ls: Command = {
  name: "ls",
  summary: "List runs, newest first",
  usage: "slipway ls [--json] [--db PATH | --server URL [--token-file F | --token T]]",
  async run(args, io) {
    const { values } = parse(args, options, 0);
    return withRuns(values, "read", io, async (runs) => printList(io, await runs.list(), values.json));
  },
};

export const show: Command = {
  name: "show",
  summary: "Show one run: its status, why it failed, and each job's state, attempts and time",
  usage:
    "slipway show RUN [--json] [--db PATH | --server URL [--token-file F | --token T]]\n\nRUN is a run id or run name.",
  async run(args, io) {
    const { values, positionals } = parse(args, options, 1);
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("show needs a run id or name");
    return withRuns(values, "read", io, async (runs) => printRun(io, await runs.show(ref), values.json));
  },
};

function printList(io: Io, runs: readonly RunSummary[], json: boolean | undefined): number {
  if (json) io.out(`${JSON.stringify(runs)}\n`);
  else if (runs.length === 0) io.out("no runs\n");
  else
    io.out(
      table([
        ["ID", "NAME", "PIPELINE", "STATUS", "STARTED", "DURATION"],
        ...runs.map((r) => [
          r.id,
          r.name ?? "-",
          r.pipeline,
          r.status,
          time(r.createdAt),
          duration((r.endedAt ?? Date.now()) - r.createdAt),
        ]),
      ]),
    );
  return EXIT.ok;
}

function printRun(io: Io, run: RunDetail, json: boolean | undefined): number {
  if (json) {
    io.out(`${JSON.stringify(run)}\n`);
    return EXIT.ok;
  }
  const lines = [
    `run       ${run.id}${run.name ? ` (${run.name})` : ""}`,
    `pipeline  ${pipelineLine(run)}`,
    `status    ${run.status}`,
    ...(run.spec?.event ? [`event     ${eventLine(run.spec.event)}`] : []),
    ...(run.spec?.workspace ? [`workspace ${run.spec.workspace}`] : []),
    `started   ${time(run.createdAt)}, ${duration((run.endedAt ?? Date.now()) - run.createdAt)}${run.endedAt ? "" : " so far"}`,
  ];
  if (run.cause?.kind === "failure") lines.push(`failed    ${run.cause.action}: ${run.cause.error.message}`);
  if (run.cause?.kind === "cancel") lines.push(`cancelled ${run.cause.reason}`);
  if (run.cause?.kind === "parent") lines.push(`undone    by its parent run ${run.cause.runId}`);
  if (run.error) lines.push(`attention ${run.error.message}`);
  if (run.parent) lines.push(`parent    ${run.parent.runId} (step ${run.parent.step})`);
  for (const child of run.children ?? [])
    lines.push(`child     ${child.id} ${child.status} (step ${child.step}, ${child.pipeline})`);
  const critical = criticalPathText(run);
  if (critical) lines.push(`critical  ${critical}`);
  io.out(`${lines.join("\n")}\n\n`);
  const waits = new Map(run.waiting.map((w) => [w.job, w]));
  io.out(
    table([
      ["JOB", "STATE", "ATTEMPTS", "TIME", "MEMORY", "NOTE"],
      ...unfold(run.steps).map((row, _, rows) => {
        if (row.kind === "iteration") {
          const { time, note } = iterationCells(row.steps);
          return [legHead(run, row.steps[0]) ?? row.name, "", "", time, "", note];
        }
        const s = row.step;
        const wait = waits.get(s.job);
        const what = note(s, wait, run) || groupNote(rows, s.job);
        return [row.name, state(s, wait), String(s.attempt), stepTime(s), memory(run, s), what];
      }),
      ...pending(run).map(([job, why]) => [
        job,
        "pending",
        "0",
        "-",
        memory(run, { job, output: null }),
        why,
      ]),
    ]),
  );
  const timings = timingLines(run);
  if (timings.length > 0) io.out(`\n${timings.join("\n")}\n`);
  return EXIT.ok;
}

/** Declared vs measured: `4 GiB / 1.2 GiB` (declared, then the peak of the job's process tree). */
function memory(run: RunDetail, s: Pick<StepSummary, "job" | "output">): string {
  const declared = run.plan?.steps.find((p) => p.action === s.job)?.memory;
  const result = stepResultOf(s);
  const peak = result?.peakRssBytes;
  const measured = typeof peak === "number" && peak > 0 ? formatBytes(peak) : undefined;
  if (declared === undefined && measured === undefined) return "-";
  const auto =
    typeof result?.admittedMemoryBytes === "number" ? ` ${formatBytes(result.admittedMemoryBytes)}` : "";
  const wanted = declared === undefined ? "-" : declared === "auto" ? `auto${auto}` : formatBytes(declared);
  return `${wanted} / ${measured ?? "-"}`;
}

function stepTime(s: StepSummary): string {
  if (s.startedAt === null) return "-";
  return duration((s.endedAt ?? Date.now()) - s.startedAt);
}

/** A pipeline run names its file, inputs and tiers; a saga run its version. */
function pipelineLine(run: RunDetail): string {
  const spec = run.spec;
  if (!spec) return `${run.pipeline} v${run.version}`;
  const inputs = Object.entries(spec.inputs).map(([k, v]) => `${k}=${String(v)}`);
  const extras = [
    ...(inputs.length ? [`inputs ${inputs.join(" ")}`] : []),
    ...spec.tiers.map((t) => `tier ${t}`),
  ];
  return `${run.pipeline} (${spec.file}${extras.length ? `; ${extras.join("; ")}` : ""})`;
}

/** `push main@1a2b3c4d (origin)`, `pull_request #12 opened 1a2b3c4d (origin)`, `schedule 0 3 * * *`. */
function eventLine(event: Record<string, unknown>): string {
  const text = (value: unknown) => (value === undefined || value === null ? "" : String(value));
  const sha = text(event.sha).slice(0, 12);
  const pr = event.pull_request as Record<string, unknown> | undefined;
  const comment = event.comment as Record<string, unknown> | undefined;
  const schedule = event.schedule as Record<string, unknown> | undefined;
  const source = event.source ? ` (${text(event.source)})` : "";
  switch (event.kind) {
    case "push":
      return `push ${text(event.branch ?? event.tag ?? event.ref)}@${sha}${source}`;
    case "pull_request":
      return `pull_request #${text(pr?.number)} ${text(event.action)} ${sha}${source}`;
    case "comment":
      return `comment by ${text(comment?.author)} on #${text(pr?.number)}: ${text(comment?.command)} ${sha}${source}`;
    case "schedule":
      return `schedule ${text(schedule?.cron)} ${text(schedule?.time_zone)}${source}`;
    default:
      return text(event.kind);
  }
}

/**
 * The head of a leg of a matrix decided at run time, under its job: `  leg 2 (libbar)`, with its
 * values as a leg of a matrix written out has them in its name; undefined for other groups.
 */
function legHead(run: RunDetail, first: StepSummary | undefined): string | undefined {
  if (!run.spec || first?.group === undefined || first.item === undefined) return undefined;
  const items = run.steps.find((step) => step.job === first.group)?.state?.items;
  const values = Array.isArray(items) ? items[first.item - 1] : undefined;
  if (values === null || typeof values !== "object" || Array.isArray(values)) return undefined;
  return `  leg ${first.item} (${Object.values(values).map(String).join(", ")})`;
}

/** A started job's state: admission holds it back (`queued`), or it completed without running. */
function state(s: StepSummary, wait: WaitingJob | undefined): string {
  if (wait?.state === "queued") return "queued";
  return skippedReason(s) === undefined ? s.status : "skipped";
}

/**
 * Planned steps that have not started, with what they wait for: the service's `waiting`, which is the
 * queue's own answer (a run rolling back or rolled back starts nothing more).
 */
function pending(run: RunDetail): [string, string][] {
  if (!run.plan) return [];
  const started = new Set(run.steps.map((s) => s.job));
  const why = new Map(run.waiting.map((w) => [w.job, w.message]));
  return run.plan.steps
    .filter((step) => !started.has(step.action))
    .map((step) => [step.action, why.get(step.action) ?? "not started: the run rolled back"]);
}

/** What a reader wants next to a job's state: what it waits for (as the queue says), or why it failed. */
function note(s: StepSummary, wait: WaitingJob | undefined, run: RunDetail): string {
  // A pipeline job whose matrix was decided at run time: how many legs it has (each leg says what it waits for).
  const items = s.state?.items;
  if (run.spec && Array.isArray(items) && (s.status === "waiting" || s.status === "completed"))
    return `${items.length} leg${items.length === 1 ? "" : "s"}`;
  if (wait) return wait.message;
  const skip = skippedReason(s);
  if (skip !== undefined) return skip;
  if (s.status === "failed" || s.status === "retrying") return s.error ?? "";
  if (s.status === "undo_failed") return `undo: ${s.undoError ?? ""}`;
  return "";
}
