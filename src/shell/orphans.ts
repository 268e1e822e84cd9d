/** Finds process groups left by shell jobs of a process that died (pid files) and kills them (Linux /proc only). */
import { type Dirent, readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
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

/** For every pid file under dir (recursively, `*.pid`): kill the group if still ours, then delete the file. Returns what was found. */
export async function sweepOrphans(
  dir: string,
  graceMs = DEFAULT_GRACE_MS,
): Promise<Array<{ pidFile: string; identity: ProcessIdentity; killed: number }>> {
  const found: Array<{ pidFile: string; identity: ProcessIdentity; killed: number }> = [];
  for (const pidFile of pidFiles(dir)) {
    const identity = readIdentity(pidFile);
    // An unreadable file (a crash can't leave a partial one: it is renamed into place) names nothing to kill.
    const killed = identity ? await killProcessGroup(identity, graceMs) : 0;
    rmSync(pidFile, { force: true });
    if (identity) found.push({ pidFile, identity, killed });
  }
  return found;
}

function pidFiles(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return []; // no directory: nothing ever ran here
  }
  return entries.flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return pidFiles(path);
    return entry.isFile() && entry.name.endsWith(".pid") ? [path] : [];
  });
}

function readIdentity(path: string): ProcessIdentity | undefined {
  try {
    const value = JSON.parse(readFileSync(path, "utf8")) as Partial<ProcessIdentity>;
    if (typeof value.pgid !== "number" || typeof value.startTime !== "number") return undefined;
    return typeof value.bootId === "string"
      ? { pgid: value.pgid, startTime: value.startTime, bootId: value.bootId }
      : { pgid: value.pgid, startTime: value.startTime };
  } catch {
    return undefined;
  }
}
