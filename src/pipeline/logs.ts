/** Where a run's job logs live: one file per attempt, under the data directory, named so they sort. */
import { readdirSync } from "node:fs";
import { join } from "node:path";

export type LogPhase = "run" | "undo" | "poll";

/** `<dataDir>/logs/<run id>`: the run's logs, and the pid files of its running processes. */
export function runLogDir(dataDir: string, executionId: string): string {
  return join(dataDir, "logs", executionId);
}

/**
 * `build.2.log` (attempt 2 of build), `build.undo.1.log`, `check.poll.log` (every check of a poll,
 * appended: a six-hour poll every 30 s would otherwise leave 720 files).
 */
export function logFileName(action: string, phase: LogPhase, attempt: number): string {
  if (phase === "poll") return `${action}.poll.log`;
  return phase === "undo" ? `${action}.undo.${attempt}.log` : `${action}.${attempt}.log`;
}

export interface LogFile {
  action: string;
  phase: LogPhase;
  attempt: number;
  path: string;
}

/** The log files of a run, for the given actions (all when omitted). */
export function listLogFiles(dataDir: string, executionId: string, actions?: readonly string[]): LogFile[] {
  const dir = runLogDir(dataDir, executionId);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const files: LogFile[] = [];
  for (const name of names) {
    const match = /^(.+?)\.(?:(undo)\.(\d+)|(poll)|(\d+))\.log$/.exec(name);
    if (!match) continue;
    const action = match[1]!;
    if (actions && !actions.includes(action)) continue;
    const phase: LogPhase = match[2] ? "undo" : match[4] ? "poll" : "run";
    const attempt = Number(match[3] ?? match[5] ?? 1);
    files.push({ action, phase, attempt, path: join(dir, name) });
  }
  return files;
}
