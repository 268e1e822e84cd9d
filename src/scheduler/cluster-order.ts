/**
 * The fair order of a cluster's lock queue (the waiters of every worker, read from the database), as
 * admission orders its own queue (see admission.ts): effective priority (priority plus one per
 * `agingMs` waited), then the key whose held share of the locks (the largest fraction of a lock's
 * capacity its holders take), divided by its weight, is lowest, then arrival. Walking that order
 * against the free slots, a request whose locks all have a free slot would be granted; one that does
 * not reserves the free slots of its other locks, so nobody behind it takes them (as a lock-blocked
 * request reserves its locks in admission). One order for every lock, so two requests cannot each
 * hold back the other. Pure: who takes is the caller's business.
 */
import type { LockView, LockWaiterRecord } from "../storage/locks.js";
import { waitReason } from "./explanations.js";
import type { Blocker, Explanation, Holder, ResolvedTicket } from "./types.js";

/** One request of the queue: a holder's waiter rows folded together. */
export interface ClusterRequest {
  holder: string;
  owner: string;
  action: string;
  ticket: ResolvedTicket & { worker: string };
  locks: string[];
  since: number;
}

export interface ClusterPass {
  /** Requests that would be granted now, in order (each worker takes its own). */
  granted: ClusterRequest[];
  /** Why each other request waits, by holder, in queue order. */
  waiting: Map<string, { request: ClusterRequest; explanation: Explanation }>;
}

export function clusterPass(
  view: LockView,
  capacity: Readonly<Record<string, number>>,
  now: number,
  agingMs: number,
): ClusterPass {
  const capacityOf = (lock: string) => (Object.hasOwn(capacity, lock) ? capacity[lock]! : undefined);
  const holders = new Map<string, Holder[]>();
  const keyUse = new Map<string, Map<string, number>>();
  const use = (key: string, lock: string, by: number) => {
    const locks = keyUse.get(key) ?? new Map<string, number>();
    keyUse.set(key, locks);
    locks.set(lock, (locks.get(lock) ?? 0) + by);
  };
  for (const slot of view.slots) {
    const list = holders.get(slot.lock) ?? [];
    list.push({
      runId: slot.runId,
      runName: slot.runName,
      pipeline: slot.pipeline,
      job: slot.job,
      since: slot.since,
      amount: 1,
      worker: slot.owner,
    });
    holders.set(slot.lock, list);
    use(slot.key, slot.lock, 1);
  }
  // Free before anyone waiting is considered; a lock this worker's config does not declare is not
  // judged here (its holders' workers judge it): never short.
  const freeNow = (lock: string) => {
    const cap = capacityOf(lock);
    return cap === undefined ? Number.POSITIVE_INFINITY : Math.max(0, cap - (holders.get(lock)?.length ?? 0));
  };
  const avail = new Map<string, number>();
  const availOf = (lock: string) => avail.get(lock) ?? freeNow(lock);
  const share = (key: string) => {
    let dominant = 0;
    for (const [lock, held] of keyUse.get(key) ?? []) {
      const cap = capacityOf(lock);
      if (cap !== undefined && cap > 0) dominant = Math.max(dominant, held / cap);
    }
    return dominant;
  };

  const requests = foldWaiters(view.waiters);
  const level = (r: ClusterRequest) => r.ticket.priority + Math.floor(Math.max(0, now - r.since) / agingMs);
  const granted: ClusterRequest[] = [];
  const waiting: ClusterPass["waiting"] = new Map();
  const reservations = new Map<string, ClusterRequest[]>();
  const positions = new Map<string, number>();
  const remaining = new Set(requests);
  let position = 0;
  while (remaining.size > 0) {
    // The next request: highest level, then lowest share of its key per weight, then arrival.
    let next: ClusterRequest | undefined;
    let nextRank = 0;
    for (const r of remaining) {
      const rank = share(r.ticket.key) / r.ticket.weight;
      if (
        next === undefined ||
        level(r) > level(next) ||
        (level(r) === level(next) &&
          (rank < nextRank ||
            (rank === nextRank &&
              (r.since < next.since || (r.since === next.since && r.holder < next.holder)))))
      ) {
        next = r;
        nextRank = rank;
      }
    }
    const request = next!;
    remaining.delete(request);
    position++;
    const short = request.locks.filter((lock) => availOf(lock) < 1);
    if (short.length === 0) {
      for (const lock of request.locks) {
        avail.set(lock, availOf(lock) - 1);
        use(request.ticket.key, lock, 1);
      }
      granted.push(request);
      continue;
    }
    const blockers: Blocker[] = short.map((lock) => {
      const place = (positions.get(lock) ?? 0) + 1;
      positions.set(lock, place);
      const reservedBy = reservations.get(lock) ?? [];
      return {
        resource: `lock:${lock}`,
        need: 1,
        free: freeNow(lock),
        capacity: capacityOf(lock) ?? 0,
        holders: holders.get(lock) ?? [],
        position: place,
        ...(reservedBy.length > 0 && { reservedBy: reservedBy.map((r) => r.ticket) }),
      };
    });
    const reason = blockers
      .map((blocker) =>
        waitReason(blocker, {
          short: blocker.free < 1,
          used: blocker.holders.length,
          firstReservedNeed: 1,
        }),
      )
      .join("; also ");
    // Blocked: it keeps the free slots of its other locks from those behind it.
    for (const lock of request.locks) {
      if (availOf(lock) < 1) continue;
      avail.set(lock, availOf(lock) - 1);
      const list = reservations.get(lock) ?? [];
      list.push(request);
      reservations.set(lock, list);
    }
    waiting.set(request.holder, {
      request,
      explanation: {
        ticket: request.ticket,
        need: { memoryBytes: 0, cpu: 0, diskBytes: 0, locks: request.locks },
        since: request.since,
        effectivePriority: level(request),
        position,
        blockers,
        reason,
      },
    });
  }
  return { granted, waiting };
}

/** Waiter rows (one per lock) as requests (one per holder), in the view's order. */
function foldWaiters(waiters: readonly LockWaiterRecord[]): ClusterRequest[] {
  const byHolder = new Map<string, ClusterRequest>();
  for (const w of waiters) {
    const known = byHolder.get(w.holder);
    if (known) {
      known.locks.push(w.lock);
      known.since = Math.min(known.since, w.since);
      continue;
    }
    byHolder.set(w.holder, {
      holder: w.holder,
      owner: w.owner,
      action: w.action,
      ticket: {
        runId: w.runId,
        runName: w.runName,
        pipeline: w.pipeline,
        job: w.job,
        key: w.key,
        weight: w.weight,
        priority: w.priority,
        worker: w.owner,
      },
      locks: [w.lock],
      since: w.since,
    });
  }
  return [...byHolder.values()];
}
