/**
 * The run directory, `<dataDir>/logs/<run id>/`: the one module that knows its layout. Every path in
 * it is computed here and nowhere else.
 *
 *   <job>.<attempt>.log        output of attempt N of a job's command (its readiness probe included)
 *   <job>.undo.<attempt>.log   output of attempt N of its undo
 *   <job>.cleanup.<attempt>.log  output of the cleanup after attempt N of its command, which was cut short
 *   <job>.poll.log             every check of a poll job, appended (a six-hour poll every 30 s
 *                              would otherwise leave 720 files)
 *   <log>.pid                  the process group running that attempt (a ProcessIdentity as JSON),
 *                              from spawn until the group is gone; what the orphan sweep kills
 *   <log>.outputs              the attempt's $SLIPWAY_OUTPUT, deleted once parsed
 *   follower.json              pid and start time of a live process following the run (a
 *                              `slipway run` terminal, a server): such a run is left to it
 *
 * `<job>` is the step's action name (a job, or a matrix leg such as `build.linux`).
 */
import { type Dirent, readdirSync } from "node:fs";
import { join } from "node:path";
import { type OrphanFound, sweepOrphansOfTheDead, sweepPidFiles } from "./orphans.js";

/** Which command of a job wrote a log: its `run`, its `undo`, its `cleanup`, or the checks of a poll job. */
export type LogPhase = "run" | "undo" | "cleanup" | "poll";

/** `<dataDir>/logs/<run id>`: everything on disk that belongs to one run. */
export function runDirectory(dataDir: string, runId: string): string {
  return join(dataDir, "logs", runId);
}

/** The files of one attempt of a job's command. */
export interface AttemptFiles {
  /** Its output, appended to. */
  log: string;
  /** Names its process group while it runs. */
  pid: string;
  /** Its `$SLIPWAY_OUTPUT`. */
  outputs: string;
}

/** The files of attempt `attempt` of `action`'s `phase`: `build.2.log`, `build.undo.1.log`, `check.poll.log`. */
export function attemptFiles(
  dataDir: string,
  runId: string,
  action: string,
  phase: LogPhase,
  attempt: number,
): AttemptFiles {
  const name =
    phase === "poll"
      ? `${action}.poll.log`
      : phase === "undo" || phase === "cleanup"
        ? `${action}.${phase}.${attempt}.log`
        : `${action}.${attempt}.log`;
  const log = join(runDirectory(dataDir, runId), name);
  return { log, pid: `${log}${PID}`, outputs: `${log}.outputs` };
}

export interface LogFile {
  action: string;
  phase: LogPhase;
  attempt: number;
  path: string;
}

/** The log files of a run, for the given actions (all when omitted); none when nothing ran yet. */
export function listLogFiles(dataDir: string, runId: string, actions?: readonly string[]): LogFile[] {
  const dir = runDirectory(dataDir, runId);
  const files: LogFile[] = [];
  for (const { name } of entries(dir)) {
    const match = /^(.+?)\.(?:(undo|cleanup)\.(\d+)|(poll)|(\d+))\.log$/.exec(name);
    if (!match) continue;
    const action = match[1]!;
    if (actions && !actions.includes(action)) continue;
    const phase: LogPhase = match[2] ? (match[2] as "undo" | "cleanup") : match[4] ? "poll" : "run";
    const attempt = Number(match[3] ?? match[5] ?? 1);
    files.push({ action, phase, attempt, path: join(dir, name) });
  }
  return files;
}

/**
 * Kills what the run's dead process left running (each pid file's group, if still ours) and deletes
 * the pid files: before another process continues the run, so a job never runs twice at once.
 */
export async function sweepRunOrphans(
  dataDir: string,
  runId: string,
  graceMs?: number,
): Promise<OrphanFound[]> {
  const dir = runDirectory(dataDir, runId);
  const pidFiles = entries(dir)
    .filter((entry) => entry.isFile() && entry.name.endsWith(PID))
    .map((entry) => join(dir, entry.name));
  return sweepPidFiles(pidFiles, graceMs);
}

/**
 * Kills what dead Slipway processes left running in this data directory, whichever runs it belongs
 * to (orphans.ts `sweepOrphansOfTheDead`), and deletes those pid files. Returns what was found.
 */
export async function sweepDataDirOrphans(dataDir: string, graceMs?: number): Promise<OrphanFound[]> {
  const logs = join(dataDir, "logs");
  const pidFiles = entries(logs)
    .filter((run) => run.isDirectory())
    .flatMap((run) =>
      entries(join(logs, run.name))
        .filter((entry) => entry.isFile() && entry.name.endsWith(PID))
        .map((entry) => join(logs, run.name, entry.name)),
    );
  return sweepOrphansOfTheDead(pidFiles, graceMs);
}

/** The follower mark of a run. Not `*.pid`: the orphan sweep kills the process groups those name. */
export function followerFile(dataDir: string, runId: string): string {
  return join(runDirectory(dataDir, runId), "follower.json");
}

const PID = ".pid";

function entries(dir: string): Dirent[] {
  try {
    return readdirSync(dir, { withFileTypes: true });
  } catch {
    return []; // no directory: nothing ever ran here
  }
}
