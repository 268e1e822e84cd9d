/** Kills process groups left by shell jobs of a process that died, as their pid files name them (Linux /proc only). */
import { readFileSync, rmSync } from "node:fs";
import { bootId, groupMembers, readProcStat, terminateGroup } from "./proc.js";
import type { ProcessIdentity } from "./process.js";

const DEFAULT_GRACE_MS = 5_000;

/** Reads /proc/<pid>/stat; undefined if the process is gone. */
export function processStartTime(pid: number): number | undefined {
  return readProcStat(pid)?.startTime;
}

/**
 * Kills what is left of a recorded process group, if it is still ours: leader alive with the same start
 * time, or leader gone and members remain whose start time >= the recorded one (a pgid can't be reused
 * while members of the old group exist). SIGTERM, then SIGKILL after graceMs. Returns how many processes
 * were signalled.
 */
export async function killProcessGroup(
  identity: ProcessIdentity,
  graceMs = DEFAULT_GRACE_MS,
): Promise<number> {
  // Pids and start times restart at every boot: a group recorded before a reboot died with it.
  if (identity.bootId !== undefined && identity.bootId !== bootId()) return 0;
  if (!Number.isInteger(identity.pgid) || identity.pgid <= 1) return 0;
  const members = groupMembers(identity.pgid);
  if (members.length === 0) return 0;
  const leader = readProcStat(identity.pgid);
  // A leader, even a zombie, holds the pid: its start time tells whether it is the one recorded.
  const ours = leader
    ? leader.startTime === identity.startTime
    : // Members descend from the leader, so none can predate it; an older one belongs to some other group.
      members.every((member) => member.startTime >= identity.startTime);
  if (!ours) return 0;
  await terminateGroup(identity.pgid, graceMs);
  return members.length;
}

/** A pid file the sweep found, the group it names and how many of its processes were signalled. */
export interface OrphanFound {
  pidFile: string;
  identity: ProcessIdentity;
  killed: number;
}

/**
 * For each pid file: kill the group it names if still ours, then delete the file. Returns what was
 * found. Which pid files belong to a run is the run directory's to say (run-directory.ts).
 */
export async function sweepPidFiles(
  pidFiles: readonly string[],
  graceMs = DEFAULT_GRACE_MS,
): Promise<OrphanFound[]> {
  const found: OrphanFound[] = [];
  for (const pidFile of pidFiles) {
    const identity = readIdentity(pidFile);
    // An unreadable file (a crash can't leave a partial one: it is renamed into place) names nothing to kill.
    const killed = identity ? await killProcessGroup(identity, graceMs) : 0;
    rmSync(pidFile, { force: true });
    if (identity) found.push({ pidFile, identity, killed });
  }
  return found;
}

/**
 * For each pid file whose recorded runner (the Slipway process that started the job) is gone: kill the
 * group it names if still ours, then delete the file. Pid files of live runners, or without a runner
 * recorded, are left alone. What a worker does when it starts again on a machine where it died: its
 * runs may be continued elsewhere by now, but what it left running here is still running.
 */
export async function sweepOrphansOfTheDead(
  pidFiles: readonly string[],
  graceMs = DEFAULT_GRACE_MS,
): Promise<OrphanFound[]> {
  const dead = pidFiles.filter((file) => {
    const identity = readIdentity(file);
    const runner = identity?.runner;
    if (!runner || runner.pid === process.pid) return false;
    // Recorded before a reboot: the runner and its jobs died with the machine (the sweep kills nothing).
    if (identity.bootId !== undefined && identity.bootId !== bootId()) return true;
    const stat = readProcStat(runner.pid);
    return !stat || stat.state === "Z" || stat.startTime !== runner.startTime;
  });
  return sweepPidFiles(dead, graceMs);
}

function readIdentity(path: string): ProcessIdentity | undefined {
  try {
    const value = JSON.parse(readFileSync(path, "utf8")) as Partial<ProcessIdentity>;
    if (typeof value.pgid !== "number" || typeof value.startTime !== "number") return undefined;
    const identity: ProcessIdentity = { pgid: value.pgid, startTime: value.startTime };
    if (typeof value.bootId === "string") identity.bootId = value.bootId;
    const runner = value.runner;
    if (runner && typeof runner.pid === "number" && typeof runner.startTime === "number")
      identity.runner = { pid: runner.pid, startTime: runner.startTime };
    return identity;
  } catch {
    return undefined;
  }
}
