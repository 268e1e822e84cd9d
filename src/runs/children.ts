/** Child runs of pipeline runs (`uses:` jobs), as the runs service sees them. */
import { ACTIVE_STATUSES, type RunRecord, type Storage } from "../storage/types.js";

/** The child runs under way of a run, and theirs, parents first. */
export async function liveChildren(storage: Storage, runId: string): Promise<RunRecord[]> {
  const found: RunRecord[] = [];
  for (const child of await storage.listRuns({ parent: runId, statuses: ACTIVE_STATUSES })) {
    found.push(child, ...(await liveChildren(storage, child.id)));
  }
  return found;
}
