/**
 * Whether a live process runs a pipeline run: its owning executor (alive by heartbeat and pid), or
 * a process following it (a waiting run has no owner, but a `slipway run` terminal or a server may
 * still be on it). A run nobody alive runs may be taken over, after its orphaned jobs are killed.
 */

import { readFileSync, rmSync } from "node:fs";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import { DEFAULT_LEASE_MS, findDeadExecutors } from "../engine/liveness.js";
import { readProcStat } from "../shell/proc.js";
import { followerFile } from "../shell/run-directory.js";
import type { RunRecord, Storage } from "../storage/types.js";

/**
 * Looks up which executors are dead once, and returns a check for each run: a sentence naming the
 * live process that runs it (and which is left to it), or undefined when nobody alive does. This
 * process (its executor `self`, its own follower mark) is nobody else.
 */
export async function runnerCheck(
  storage: Storage,
  dataDir: string,
  self?: string,
): Promise<(record: RunRecord) => string | undefined> {
  const dead = new Set(await findDeadExecutors(storage, DEFAULT_LEASE_MS));
  return (record) => {
    if (record.owner !== null && record.owner !== self && !dead.has(record.owner))
      return `run ${record.id} is being run by a live process (${record.owner}): left to it`;
    const follower = liveFollower(dataDir, record.id);
    if (follower !== undefined && follower !== process.pid)
      return `run ${record.id} is being followed by a live process (pid ${follower}): left to it`;
    return undefined;
  };
}

/**
 * A waiting run has no owner in storage (waits hold nothing), so storage alone can't tell a run some
 * terminal still follows from one whose process died. Each foreground process marks the runs it
 * follows with its pid and start time (which survive pid reuse); `slipway resume` leaves those alone.
 * Returns the remover.
 */
export function markFollowed(dataDir: string, ids: readonly string[]): () => void {
  me ??= `${JSON.stringify({ pid: process.pid, startTime: readProcStat(process.pid)?.startTime ?? 0 })}\n`;
  const mark = me;
  const files = ids.map((id) => followerFile(dataDir, id));
  // Written off the main thread: a run only needs the mark once it is parked (owned by nobody), long
  // after its start, and a server starts many runs a second.
  const written = Promise.all(
    files.map((file) =>
      mkdir(dirname(file), { recursive: true })
        // Whole or not at all: a reader (`slipway resume`) must never see the mark half written.
        .then(() => writeFile(`${file}.${process.pid}.tmp`, mark))
        .then(() => rename(`${file}.${process.pid}.tmp`, file))
        .catch(() => undefined),
    ),
  );
  return () => {
    void written.then(() => {
      for (const file of files) {
        // Only our own mark: a later process may have taken the run over after we were presumed dead.
        if (readFollower(file)?.pid === process.pid) rmSync(file, { force: true });
      }
    });
  };
}

/** This process's follower mark: its pid and start time never change. */
let me: string | undefined;

/** The pid of the live process following the run, if there is one. */
export function liveFollower(dataDir: string, id: string): number | undefined {
  const follower = readFollower(followerFile(dataDir, id));
  if (!follower || follower.pid === process.pid) return undefined;
  const stat = readProcStat(follower.pid);
  return stat && stat.state !== "Z" && stat.startTime === follower.startTime ? follower.pid : undefined;
}

function readFollower(file: string): { pid: number; startTime: number } | undefined {
  try {
    const value = JSON.parse(readFileSync(file, "utf8")) as { pid?: unknown; startTime?: unknown };
    return typeof value.pid === "number" && typeof value.startTime === "number"
      ? { pid: value.pid, startTime: value.startTime }
      : undefined;
  } catch {
    return undefined;
  }
}
