/** `slipway logs`: a run's job output, from the per-attempt log files; `-f` follows until the run ends. */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { type LogFile, listLogFiles } from "../../pipeline/logs.js";
import { ACTIVE_STATUSES } from "../../storage/types.js";
import { type Command, EXIT, parse, UsageError } from "../command.js";
import { dataDir, dbOption, dbPath, openStorage } from "../state.js";
import { findRun } from "./runs.js";

export const logs: Command = {
  name: "logs",
  summary: "Print a run's job output (every attempt, undos included); -f follows it live",
  usage: [
    "slipway logs RUN [JOB] [-f] [--db PATH]",
    "",
    "Each line is `<time> <out|err> <text>`; a header names the job, the attempt and the phase.",
    "JOB is a job name (all legs of a matrix job) or one leg's step name.",
  ].join("\n"),
  async run(args, io) {
    const { values, positionals } = parse(args, { ...dbOption, follow: { type: "boolean", short: "f" } }, 2);
    const [ref, job] = positionals;
    if (ref === undefined) throw new UsageError("logs needs a run id or name");
    const db = dbPath(values.db);
    const storage = await openStorage(db);
    try {
      const record = await findRun(storage, ref);
      if (!record) {
        io.err(`slipway: no run "${ref}"\n`);
        return EXIT.failed;
      }
      const steps = (await storage.load(record.id))?.steps ?? [];
      const matches = (action: string) => job === undefined || action === job || action.startsWith(`${job}.`);
      if (job !== undefined && !steps.some((s) => matches(s.action)) && !values.follow) {
        io.err(`slipway: run ${record.id} has no job "${job}" that started\n`);
        return EXIT.failed;
      }
      const offsets = new Map<string, number>();
      let current: string | undefined;
      // Files in the order their jobs started: the order things happened.
      const started = new Map(steps.map((s) => [s.action, s.startedAt ?? Number.MAX_SAFE_INTEGER]));
      const drain = () => {
        const files = listLogFiles(dataDir(db), record.id).filter((f) => matches(f.action));
        files.sort((a, b) => order(a, started) - order(b, started) || a.path.localeCompare(b.path));
        for (const file of files) {
          const text = readFrom(file.path, offsets.get(file.path) ?? 0);
          if (text.length === 0) continue;
          offsets.set(file.path, (offsets.get(file.path) ?? 0) + Buffer.byteLength(text));
          if (current !== file.path) io.out(`==> ${header(file)} <==\n`);
          current = file.path;
          io.out(text);
        }
      };
      drain();
      if (!values.follow) return EXIT.ok;
      for (;;) {
        const now = await storage.getExecution(record.id);
        const live = now !== undefined && ACTIVE_STATUSES.includes(now.status);
        for (const s of (await storage.load(record.id))?.steps ?? []) started.set(s.action, s.startedAt ?? 0);
        drain();
        if (!live) return EXIT.ok;
        await sleep(200);
      }
    } finally {
      await storage.close();
    }
  },
};

function order(file: LogFile, started: Map<string, number>): number {
  const phase = file.phase === "undo" ? 1e15 : 0;
  return phase + (started.get(file.action) ?? Number.MAX_SAFE_INTEGER / 2) + file.attempt;
}

function header(file: LogFile): string {
  if (file.phase === "undo") return `${file.action} undo (attempt ${file.attempt})`;
  if (file.phase === "poll") return `${file.action} checks`;
  return `${file.action} (attempt ${file.attempt})`;
}

/** Whole lines appended since `offset` (a line still being written waits for its newline). */
function readFrom(path: string, offset: number): string {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return "";
  }
  if (size <= offset) return "";
  const buffer = Buffer.alloc(size - offset);
  const fd = openSync(path, "r");
  try {
    readSync(fd, buffer, 0, buffer.length, offset);
  } finally {
    closeSync(fd);
  }
  const text = buffer.toString("utf8");
  const end = text.lastIndexOf("\n");
  return end === -1 ? "" : text.slice(0, end + 1);
}
