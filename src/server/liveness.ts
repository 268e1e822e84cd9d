/**
 * Whether a live process runs a pipeline run: its owning executor (alive by heartbeat and pid), or
 * a process following it (a waiting run has no owner, but a `slipway run` terminal or a server may
 * still be on it). A run nobody alive runs may be taken over, after its orphaned jobs are killed.
 */

import { liveFollower } from "../cli/session.js";
import { DEFAULT_LEASE_MS, findDeadExecutors } from "../engine/liveness.js";
import type { ExecutionRecord, Storage } from "../storage/types.js";

/**
 * Looks up which executors are dead once, and returns a check for each run: a sentence naming the
 * live process that runs it (and which is left to it), or undefined when nobody alive does.
 */
export async function runnerCheck(
  storage: Storage,
  dataDir: string,
): Promise<(record: ExecutionRecord) => string | undefined> {
  const dead = new Set(await findDeadExecutors(storage, DEFAULT_LEASE_MS));
  return (record) => {
    if (record.owner !== null && !dead.has(record.owner))
      return `run ${record.id} is being run by a live process (${record.owner}): left to it`;
    const follower = liveFollower(dataDir, record.id);
    if (follower !== undefined)
      return `run ${record.id} is being followed by a live process (pid ${follower}): left to it`;
    return undefined;
  };
}
