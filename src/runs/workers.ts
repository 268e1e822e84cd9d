/**
 * `GET /workers`: the processes running runs from this database (a cluster's workers, a foreground
 * `slipway run`), their heartbeats, whether each looks alive, what each holds now (the runs it owns,
 * their running jobs) and the room it has left.
 */
import { hostname } from "node:os";
import { DEFAULT_LEASE_MS, processAlive } from "../engine/liveness.js";
import type { Storage } from "../storage/types.js";
import { planOf } from "./records.js";
import type { WorkerInfo, WorkersResponse } from "./schemas.js";

/** Every executor registered in storage, oldest first; `self` is the answering process's own. */
export async function loadWorkers(
  storage: Storage,
  self: string,
  now: number = Date.now(),
): Promise<WorkersResponse> {
  const host = hostname();
  const workers: WorkerInfo[] = [];
  for (const executor of await storage.listExecutors()) {
    const age = Math.max(0, now - executor.heartbeatAt);
    // As the engine judges a takeover (engine/liveness.ts): silent past the lease, or gone from this host.
    const alive = age <= DEFAULT_LEASE_MS && (executor.host !== host || processAlive(executor.pid));
    const runs: WorkerInfo["runs"] = [];
    for (const record of await storage.listRuns({ owner: executor.id })) {
      const snapshot = await storage.load(record.id);
      const plan = planOf(record);
      const label = (action: string) => plan?.steps.find((s) => s.action === action)?.label ?? action;
      runs.push({
        id: record.id,
        name: record.runName,
        pipeline: record.saga,
        status: record.status,
        jobs: (snapshot?.steps ?? [])
          .filter((s) => s.status === "running" || s.status === "undoing")
          .map((s) => label(s.action)),
      });
    }
    workers.push({
      id: executor.id,
      host: executor.host,
      pid: executor.pid,
      startedAt: executor.startedAt,
      heartbeatAt: executor.heartbeatAt,
      heartbeatAgeMs: age,
      alive,
      self: executor.id === self,
      maxRuns: executor.maxRuns,
      free: executor.maxRuns === null ? null : Math.max(0, executor.maxRuns - runs.length),
      runs,
    });
  }
  workers.sort((a, b) => a.startedAt - b.startedAt || a.id.localeCompare(b.id));
  return { workers, leaseMs: DEFAULT_LEASE_MS };
}
