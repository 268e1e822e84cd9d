/** `slipway ls` and `slipway show`: what runs there are and where each one stands, from storage alone. */
import { runSpecOf } from "../../pipeline/compile.js";
import type { ExecutionRecord, StepRecord } from "../../storage/types.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { duration, table, time } from "../format.js";
import { dbOption, dbPath, openStorage } from "../state.js";

export const ls: Command = {
  name: "ls",
  summary: "List runs, newest first",
  usage: "slipway ls [--db PATH] [--json]",
  async run(args, io) {
    const { values } = parse(args, { ...dbOption, json: { type: "boolean" } }, 0);
    const storage = await openStorage(dbPath(values.db));
    try {
      const runs = (await storage.listExecutions({})).reverse();
      if (values.json) {
        io.out(`${JSON.stringify(runs.map(summary))}\n`);
        return EXIT.ok;
      }
      if (runs.length === 0) {
        io.out("no runs\n");
        return EXIT.ok;
      }
      io.out(
        table([
          ["ID", "NAME", "PIPELINE", "STATUS", "STARTED", "DURATION"],
          ...runs.map((r) => [
            r.id,
            r.runName ?? "-",
            r.saga,
            r.status,
            time(r.createdAt),
            duration((r.endedAt ?? Date.now()) - r.createdAt),
          ]),
        ]),
      );
      return EXIT.ok;
    } finally {
      await storage.close();
    }
  },
};

export const show: Command = {
  name: "show",
  summary: "Show one run: its status, why it failed, and each job's state, attempts and time",
  usage: "slipway show RUN [--db PATH] [--json]\n\nRUN is a run id or run name.",
  async run(args, io) {
    const { values, positionals } = parse(args, { ...dbOption, json: { type: "boolean" } }, 1);
    const ref = positionals[0];
    if (ref === undefined) throw new UsageError("show needs a run id or name");
    const storage = await openStorage(dbPath(values.db));
    try {
      const record = await findRun(storage, ref);
      if (!record) {
        io.err(`slipway: no run "${ref}"\n`);
        return EXIT.failed;
      }
      const snapshot = (await storage.load(record.id))!;
      if (values.json) {
        io.out(
          `${JSON.stringify({ ...summary(snapshot.execution), steps: snapshot.steps.map(stepSummary) })}\n`,
        );
        return EXIT.ok;
      }
      const e = snapshot.execution;
      const lines = [
        `run       ${e.id}${e.runName ? ` (${e.runName})` : ""}`,
        `pipeline  ${pipelineLine(e)}`,
        `status    ${e.status}`,
        `started   ${time(e.createdAt)}, ${duration((e.endedAt ?? Date.now()) - e.createdAt)}${e.endedAt ? "" : " so far"}`,
      ];
      if (e.cause?.kind === "failure") lines.push(`failed    ${e.cause.action}: ${e.cause.error.message}`);
      if (e.cause?.kind === "cancel") lines.push(`cancelled ${e.cause.reason}`);
      if (e.error) lines.push(`attention ${e.error.message}`);
      io.out(`${lines.join("\n")}\n\n`);
      io.out(
        table([
          ["JOB", "STATE", "ATTEMPTS", "TIME", "NOTE"],
          ...snapshot.steps.map((s) => [s.action, state(s), String(s.attempt), stepTime(s), note(s)]),
        ]),
      );
      return EXIT.ok;
    } finally {
      await storage.close();
    }
  },
};

/** A run by id, or the newest run with that run name. */
export async function findRun(
  storage: Awaited<ReturnType<typeof openStorage>>,
  ref: string,
): Promise<ExecutionRecord | undefined> {
  const byId = await storage.getExecution(ref);
  if (byId) return byId;
  return (await storage.listExecutions({})).filter((r) => r.runName === ref).at(-1);
}

function summary(r: ExecutionRecord) {
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
  };
}

function stepSummary(s: StepRecord) {
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

function stepTime(s: StepRecord): string {
  if (s.startedAt === null) return "-";
  return duration((s.endedAt ?? Date.now()) - s.startedAt);
}

/** What a reader wants next to a job's state: why it failed, or what it waits for. */
/** A pipeline run names its file, inputs and tiers; a saga run its version. */
function pipelineLine(e: ExecutionRecord): string {
  const spec = runSpecOf(e);
  if (!spec) return `${e.saga} v${e.version}`;
  const inputs = Object.entries(spec.inputs).map(([k, v]) => `${k}=${String(v)}`);
  const extras = [
    ...(inputs.length ? [`inputs ${inputs.join(" ")}`] : []),
    ...spec.tiers.map((t) => `tier ${t}`),
  ];
  return `${e.saga} (${spec.file}${extras.length ? `; ${extras.join("; ")}` : ""})`;
}

/** A pipeline step that completed without running says so. */
function skipped(s: StepRecord): string | undefined {
  const value = s.output?.[s.action] as { status?: unknown; reason?: unknown } | undefined;
  return s.status === "completed" && value?.status === "skipped" ? String(value.reason ?? "") : undefined;
}

function state(s: StepRecord): string {
  return skipped(s) === undefined ? s.status : "skipped";
}

function note(s: StepRecord): string {
  const skip = skipped(s);
  if (skip !== undefined) return skip;
  if (s.status === "failed" || s.status === "retrying") return s.error?.message ?? "";
  if (s.status === "undo_failed") return `undo: ${s.undoError?.message ?? ""}`;
  if (s.status === "waiting" && s.state) {
    const until = typeof s.state.deadline === "number" ? ` until ${time(s.state.deadline)}` : "";
    if (typeof s.state.until === "number") return `sleeping until ${time(s.state.until)}`;
    if (typeof s.state.nextCheckAt === "number")
      return `polling, next check ${time(s.state.nextCheckAt)}${until}`;
    return `waiting for signal "${String(s.state.signal)}"${until}`;
  }
  return "";
}
