/**
 * How a foreground run shows its progress: a live table of jobs on a terminal, plain lines elsewhere
 * (logs, CI), one JSON event per line with `--json`.
 */
import type { RunEvent } from "../engine/events.js";
import { duration, table, time } from "../format.js";
import type { Io } from "./command.js";

export type ViewMode = "live" | "plain" | "json";

/** What the view needs of a run's plan (a `Plan` locally, its outline from a server). */
export interface StepLabels {
  steps: readonly { action: string; label: string; needs: readonly string[] }[];
}

export interface RunView {
  /** Every event of the run, progress included, in order. */
  event(event: RunEvent): void;
  /** Stops redrawing; leaves the final state on screen. */
  close(): void;
}

interface JobState {
  label: string;
  state: string;
  startedAt?: number;
  endedAt?: number;
  note: string;
}

export function createView(mode: ViewMode, io: Io, plans: ReadonlyMap<string, StepLabels>): RunView {
  if (mode === "json") return { event: (e) => io.out(`${JSON.stringify(e)}\n`), close() {} };
  const jobs = new Map<string, Map<string, JobState>>();
  const jobsOf = (runId: string) => {
    let map = jobs.get(runId);
    if (!map) {
      map = new Map();
      for (const step of plans.get(runId)?.steps ?? [])
        map.set(step.action, { label: step.label, state: "pending", note: waitingNote(step.needs) });
      jobs.set(runId, map);
    }
    return map;
  };
  const labelOf = (runId: string, action: string) => jobsOf(runId).get(action)?.label ?? action;

  const update = (e: RunEvent) => {
    if (e.action === null) return;
    const map = jobsOf(e.runId);
    const job = map.get(e.action) ?? { label: e.action, state: "pending", note: "" };
    map.set(e.action, job);
    const data = e.data ?? {};
    switch (e.type) {
      case "action:started":
        job.state = "running";
        job.startedAt ??= e.at;
        job.note = Number(data.attempt) > 1 ? `attempt ${String(data.attempt)}` : "";
        break;
      case "action:waiting":
        job.state = "waiting";
        job.startedAt ??= e.at;
        job.note = waitNote(data);
        break;
      case "action:completed":
        job.state = "done";
        job.endedAt = e.at;
        if (job.note.startsWith("skipped")) job.state = "skipped";
        else job.note = "";
        break;
      case "action:failed":
        job.state = data.final ? "failed" : "retrying";
        if (data.final) job.endedAt = e.at;
        job.note = String(data.error ?? "");
        break;
      case "undo:started":
        job.state = "undoing";
        job.note = "";
        break;
      case "undo:completed":
        job.state = "undone";
        break;
      case "undo:failed":
        job.state = data.final ? "undo failed" : "undoing";
        job.note = String(data.error ?? "");
        break;
      case "cleanup:started":
        job.state = "cleaning up";
        job.note = data.interrupted ? "after an interrupted attempt" : String(data.error ?? "");
        break;
      case "cleanup:completed":
        job.state = "cleaned up";
        break;
      case "cleanup:failed":
        job.state = "cleanup failed";
        job.note = String(data.error ?? "");
        break;
      case "action:progress":
        // A leg of a matrix decided at run time says its values when it starts.
        if (typeof data.leg === "string") job.label = `${e.action} (${data.leg})`;
        if (data.queued === true) job.state = "queued";
        else if (data.queued === false) job.state = "running";
        if (data.skipped) {
          job.note = String(data.message ?? "").slice(0, 120);
        } else if (typeof data.message === "string") job.note = data.message.slice(0, 80);
        break;
      default:
        break;
    }
  };

  if (mode === "plain") {
    return {
      event(e) {
        update(e);
        const line = plainLine(e, e.action === null ? "" : labelOf(e.runId, e.action));
        if (line !== undefined) io.out(`${time(e.at).slice(11, 19)} ${line}\n`);
      },
      close() {},
    };
  }

  // Live: redraw the table in place, at most every 100 ms, and every second for the clocks.
  let drawnLines = 0;
  let dirty = true;
  const draw = () => {
    if (!dirty && drawnLines > 0) return;
    dirty = false;
    const now = Date.now();
    const rows: string[][] = [["JOB", "STATE", "TIME", "NOTE"]];
    for (const map of jobs.values()) {
      for (const job of map.values()) {
        const elapsed = job.startedAt === undefined ? "" : duration((job.endedAt ?? now) - job.startedAt);
        rows.push([job.label, colour(job.state), elapsed, job.note]);
      }
    }
    const text = table(rows);
    const width = process.stdout.columns || 120;
    const lines = text
      .split("\n")
      .slice(0, -1)
      .map((line) => clip(line, width));
    io.out(
      `${drawnLines > 0 ? `\x1b[${drawnLines}F` : ""}${lines.map((l) => `${l}\x1b[K`).join("\n")}\n\x1b[J`,
    );
    drawnLines = lines.length;
  };
  let closed = false;
  const frame = setInterval(draw, 100);
  const clock = setInterval(() => {
    dirty = true;
  }, 1000);
  return {
    event(e) {
      update(e);
      dirty = true;
    },
    close() {
      if (closed) return;
      closed = true;
      clearInterval(frame);
      clearInterval(clock);
      dirty = true;
      draw();
    },
  };
}

function waitingNote(needs: readonly string[]): string {
  return needs.length > 0 ? `after ${needs.join(", ")}` : "";
}

/** What a waiting job waits for: a signal, a time, the next check of a poll, and until when. */
export function waitNote(data: Record<string, unknown>): string {
  if (typeof data.iteration === "number") return `iteration ${data.iteration}`;
  if (typeof data.items === "number") return `${data.items} items`;
  const until = typeof data.deadline === "number" ? ` (until ${time(data.deadline)})` : "";
  if (typeof data.signal === "string") return `waiting for signal "${data.signal}"${until}`;
  if (typeof data.child === "string") return `waiting for child run ${data.child}${until}`;
  if (typeof data.until === "number") return `sleeping until ${time(data.until)}`;
  if (typeof data.poll === "number" || typeof data.nextCheckAt === "number")
    return `polling every ${duration(Number(data.poll ?? 0))}${until}`;
  return "waiting";
}

function plainLine(e: RunEvent, label: string): string | undefined {
  const data = e.data ?? {};
  switch (e.type) {
    case "run:started":
      return "run started";
    case "run:resumed":
      return `run resumed (${String(data.reason ?? "")})`;
    case "action:started":
      return `${label}: started${Number(data.attempt) > 1 ? ` (attempt ${String(data.attempt)})` : ""}`;
    case "action:waiting":
      return `${label}: ${waitNote(data)}`;
    case "action:completed":
      return `${label}: done`;
    case "action:failed":
      return data.final
        ? `${label}: failed: ${String(data.error)}`
        : `${label}: attempt ${String(data.attempt)} failed, retrying: ${String(data.error)}`;
    case "action:progress": {
      const message = String(data.message ?? "");
      const who = data.phase === "cleanup" ? `${label} cleanup` : label;
      return data.stream ? `${who} | ${message}` : `${who}: ${message}`;
    }
    case "signal:received":
      return `${label}: signal "${String(data.signal)}" received`;
    case "loop:iteration":
      return `${label}: iteration ${String(data.iteration)}${data.after ? ` (${String(data.after)})` : ""}`;
    case "undo:started":
      return `${label}: undoing`;
    case "undo:completed":
      return `${label}: undone`;
    case "undo:failed":
      return `${label}: undo failed${data.final ? "" : ", retrying"}: ${String(data.error)}`;
    case "cleanup:started":
      return data.interrupted
        ? `${label}: cleaning up after an interrupted attempt`
        : `${label}: cleaning up after: ${String(data.error)}`;
    case "cleanup:completed":
      return `${label}: cleaned up`;
    case "cleanup:failed":
      return `${label}: cleanup failed: ${String(data.error)}`;
    case "run:compensating":
      return "rolling back: undoing completed jobs, dependents first";
    case "run:waiting":
      return undefined;
    default:
      return `run ${e.type.slice("run:".length)}`;
  }
}

const COLOURS: Record<string, number> = {
  running: 36,
  waiting: 33,
  retrying: 33,
  queued: 33,
  done: 32,
  failed: 31,
  "undo failed": 31,
  undoing: 35,
  undone: 35,
  "cleaning up": 35,
  "cleaned up": 35,
  "cleanup failed": 31,
  skipped: 90,
  pending: 90,
};

function colour(state: string): string {
  const code = COLOURS[state];
  return code === undefined ? state : `\x1b[${code}m${state}\x1b[0m`;
}

/** Cuts a line to the terminal's width, not counting colour codes, so the table never wraps. */
function clip(line: string, width: number): string {
  let visible = 0;
  let out = "";
  for (let i = 0; i < line.length; i++) {
    if (line[i] === "\x1b") {
      const end = line.indexOf("m", i);
      out += line.slice(i, end + 1);
      i = end;
      continue;
    }
    if (visible >= width - 1) break;
    out += line[i];
    visible++;
  }
  return out;
}
