/**
 * A run's job output as text, from its per-attempt log files, in the order the jobs started, each file
 * under a `==> step (attempt N) <==` header; following until the run ends. `slipway logs` prints it,
 * `GET /runs/{id}/logs` streams it.
 */
import { closeSync, openSync, readSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { NotFoundError } from "../errors.js";
import { type LogFile, listLogFiles } from "../shell/run-directory.js";
import { ACTIVE_STATUSES, type RunRecord, type Storage } from "../storage/types.js";

export interface LogRequest {
  storage: Storage;
  dataDir: string;
  record: RunRecord;
  /** A job name (all its legs) or a step name; every job when absent. */
  job?: string | undefined;
  /** Keep reading new lines until the run ends. */
  follow?: boolean | undefined;
  /** Only lines written at or after this time (epoch ms). */
  since?: number | undefined;
  /** Only lines written before this time (epoch ms). */
  until?: number | undefined;
  /** Only the last this many bytes of each file, from its first whole line; its header says where it starts. */
  tail?: number | undefined;
  /** Stops following (the reader went away). */
  signal?: AbortSignal | undefined;
  pollMs?: number;
}

/**
 * Checks the request (a job that never started is a NotFoundError, unless following: it may start),
 * then returns the text, chunk by chunk.
 */
export async function openLogs(request: LogRequest): Promise<AsyncGenerator<string>> {
  const { storage, record, job, follow } = request;
  const steps = (await storage.load(record.id))?.steps ?? [];
  if (job !== undefined && !follow && !steps.some((s) => matches(job, s.action)))
    throw new NotFoundError(`run ${record.id} has no job "${job}" that started`);
  return readLogs(request, new Map(steps.map((s) => [s.action, s.startedAt ?? Number.MAX_SAFE_INTEGER])));
}

async function* readLogs(request: LogRequest, started: Map<string, number>): AsyncGenerator<string> {
  const { storage, dataDir, record, job, follow, signal } = request;
  const offsets = new Map<string, number>();
  let current: string | undefined;
  // Files in the order their jobs started: the order things happened.
  function* drain(): Generator<string> {
    const files = listLogFiles(dataDir, record.id).filter((f) => matches(job, f.action));
    files.sort((a, b) => order(a, started) - order(b, started) || a.path.localeCompare(b.path));
    for (const file of files) {
      let cut = "";
      if (request.tail !== undefined && !offsets.has(file.path)) {
        const start = tailStart(file.path, request.tail);
        offsets.set(file.path, start);
        if (start > 0) cut = ` from byte ${start}`;
      }
      const read = readFrom(file.path, offsets.get(file.path) ?? 0);
      if (read.length === 0) continue;
      offsets.set(file.path, (offsets.get(file.path) ?? 0) + Buffer.byteLength(read));
      const text = inRange(read, request.since, request.until);
      if (text.length === 0) continue;
      if (current !== file.path) yield `==> ${header(file)}${cut} <==\n`;
      current = file.path;
      yield text;
    }
  }
  yield* drain();
  if (!follow) return;
  while (!signal?.aborted) {
    const now = await storage.getRun(record.id);
    const live = now !== undefined && ACTIVE_STATUSES.includes(now.status);
    for (const s of (await storage.load(record.id))?.steps ?? []) started.set(s.action, s.startedAt ?? 0);
    yield* drain();
    if (!live) return;
    await sleep(request.pollMs ?? 200, undefined, signal ? { signal } : {}).catch(() => {});
  }
}

/** The lines of `text` stamped within [since, until): each line starts with its ISO time. */
function inRange(text: string, since: number | undefined, until: number | undefined): string {
  if (since === undefined && until === undefined) return text;
  const kept = text.split("\n").filter((line) => {
    if (line === "") return false;
    const at = Date.parse(line.slice(0, line.indexOf(" ")));
    return !(since !== undefined && at < since) && !(until !== undefined && at >= until);
  });
  return kept.length === 0 ? "" : `${kept.join("\n")}\n`;
}

function matches(job: string | undefined, action: string): boolean {
  // `build.linux` is a leg of a matrix written out, `build#2.build` one of a matrix decided at run time.
  return job === undefined || action === job || action.startsWith(`${job}.`) || action.startsWith(`${job}#`);
}

function order(file: LogFile, started: Map<string, number>): number {
  // A cleanup right after the attempt it followed; undos after everything else.
  const phase = file.phase === "undo" ? 1e15 : file.phase === "cleanup" ? 0.5 : 0;
  return phase + (started.get(file.action) ?? Number.MAX_SAFE_INTEGER / 2) + file.attempt;
}

function header(file: LogFile): string {
  if (file.phase === "undo") return `${file.action} undo (attempt ${file.attempt})`;
  if (file.phase === "cleanup") return `${file.action} cleanup (after attempt ${file.attempt})`;
  if (file.phase === "poll") return `${file.action} checks`;
  return `${file.action} (attempt ${file.attempt})`;
}

/** Where the last `tail` bytes of a file begin, moved on to the start of a whole line. */
function tailStart(path: string, tail: number): number {
  let size: number;
  try {
    size = statSync(path).size;
  } catch {
    return 0;
  }
  if (size <= tail) return 0;
  const from = size - tail;
  // The byte before the cut, and a window after it, to find where the next line begins.
  const window = Buffer.alloc(Math.min(64 * 1024, size - from + 1));
  const fd = openSync(path, "r");
  try {
    readSync(fd, window, 0, window.length, from - 1);
  } finally {
    closeSync(fd);
  }
  const newline = window.indexOf(10);
  return newline === -1 ? size : from + newline;
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
