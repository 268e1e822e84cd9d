/** Which executors are dead: silent past their lease, or their process gone from this host. */
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import type { ExecutorRecord, Storage } from "../storage/types.js";

/**
 * An executor silent this long is dead, unless configured otherwise: five heartbeats, so a run of a
 * dead worker is taken over within about 12 s (the lease and a recovery pass), on every backend.
 */
export const DEFAULT_LEASE_MS = 10_000;

/**
 * Ids of registered executors (other than `except`) that are provably dead at `now`. Within a lease
 * of the database coming back after it was unreachable, silence proves nothing (nobody could write a
 * heartbeat meanwhile): only a process gone from this host counts, until every executor has had its
 * lease to beat again.
 */
export async function findDeadExecutors(
  storage: Storage,
  leaseMs: number,
  except?: string,
  now: number = Date.now(),
  pidLiveness = true,
): Promise<string[]> {
  const host = pidLiveness ? hostname() : null;
  const health = storage.health?.();
  const silenceCounts =
    health?.since === undefined || (health.reachable && Date.now() - health.since > leaseMs);
  return (await storage.listExecutors())
    .filter(
      (e) =>
        e.id !== except &&
        (silenceCounts
          ? executorDead(e, leaseMs, now, host)
          : host !== null && e.host === host && !processAlive(e.pid)),
    )
    .map((e) => e.id);
}

/**
 * Whether a registered executor is provably dead at `now`: silent past its lease, or its process gone
 * from `host` (this one). `host` null: the lease alone decides (pids are not comparable here).
 */
export function executorDead(
  executor: ExecutorRecord,
  leaseMs: number,
  now: number,
  host: string | null = hostname(),
): boolean {
  return (
    now - executor.heartbeatAt > leaseMs ||
    (host !== null && executor.host === host && !processAlive(executor.pid))
  );
}

/** Whether a process runs; a zombie (killed, not yet reaped) counts as dead. */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
  try {
    // Linux: /proc/<pid>/stat is "pid (comm) state ..."; comm may hold spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return true;
  }
}
