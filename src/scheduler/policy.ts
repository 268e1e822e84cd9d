/**
 * The admission policy's pass over the waiting requests (see admission.ts for the policy itself):
 * effective priority with aging, then weighted dominant-resource fairness across keys, then arrival
 * order, granting what fits and reserving for what does not. Pure: it only says who would be granted
 * and what the others are blocked on.
 */
import { MinHeap } from "./heap.js";
import { isLock, type Need, type ResolvedTicket, type Resource } from "./types.js";

/** Slack for fractional cpu, so 0.1 + 0.2 fits in 0.3. */
export const EPSILON = 1e-9;

/** A request as the policy sees it. */
export interface Request {
  seq: number;
  ticket: ResolvedTicket;
  need: Need;
  /** The need per resource, zero amounts left out. */
  dims: Array<[Resource, number]>;
  since: number;
}

/** One request's turn in a pass over the waiting list. */
export interface Visit<W extends Request> {
  waiter: W;
  effectivePriority: number;
  granted: boolean;
  /** What it could not get at its turn, and who reserved some of it before. */
  blocked: Array<{ resource: Resource; reservedBy: W[] }>;
}

interface KeyQueue<W extends Request> {
  key: string;
  items: W[];
  next: number;
  /** Fixed while queued in the heap: only this key's own grants change its share. */
  rank: number;
}

/** What a pass needs to know of the queue and the capacity. */
export interface PassInput<W extends Request> {
  now: number;
  waiting: Iterable<W>;
  holding: Iterable<Request>;
  capacity: ReadonlyMap<Resource, number>;
  /** What is free now; the pass takes from it as it grants and reserves (pass a copy). */
  free: Map<Resource, number>;
  agingMs: number;
  /** List every blocked request with its blockers; without it only grants, stopping once nothing is left. */
  full: boolean;
}

/**
 * One pass over the waiting list in policy order against what is free (taken from as it goes): who
 * would be granted and, with `full`, what each of the others is blocked on. Nothing is granted here.
 * Without `full` the pass lists only grants and stops once nothing is left to grant.
 */
export function policyPass<W extends Request>(input: PassInput<W>): Visit<W>[] {
  const { now, capacity: capacityOf, full } = input;
  const avail = input.free;
  const reservations = new Map<Resource, W[]>();
  const keyUse = new Map<string, Map<Resource, number>>();
  for (const holding of input.holding) addUse(keyUse, holding.ticket.key, holding.dims);
  const shares = new Map<string, number>();
  const share = (key: string): number => {
    let dominant = shares.get(key);
    if (dominant !== undefined) return dominant;
    dominant = 0;
    for (const [resource, amount] of keyUse.get(key) ?? []) {
      const capacity = capacityOf.get(resource) ?? 0;
      if (capacity > 0) dominant = Math.max(dominant, amount / capacity);
    }
    shares.set(key, dominant);
    return dominant;
  };

  // Effective priority, then key: each key's waiters stay in arrival order (the Map's order).
  // `open` counts the resources some waiter needs that still have something free: at 0 nobody
  // can be granted, so a pass that only grants can stop there instead of visiting every waiter.
  const levels = new Map<number, Map<string, W[]>>();
  const needed = new Set<Resource>();
  for (const waiter of input.waiting) {
    const level = waiter.ticket.priority + Math.floor(Math.max(0, now - waiter.since) / input.agingMs);
    let keys = levels.get(level);
    if (!keys) {
      keys = new Map();
      levels.set(level, keys);
    }
    const queue = keys.get(waiter.ticket.key);
    if (queue) queue.push(waiter);
    else keys.set(waiter.ticket.key, [waiter]);
    for (const [resource] of waiter.dims) needed.add(resource);
  }
  let open = 0;
  for (const resource of needed) if ((avail.get(resource) ?? 0) > EPSILON) open++;
  const take = (resource: Resource, amount: number) => {
    const left = avail.get(resource) ?? 0;
    const after = left - amount;
    avail.set(resource, after);
    if (left > EPSILON && after <= EPSILON && needed.has(resource)) open--;
  };

  const visits: Visit<W>[] = [];
  for (const level of [...levels.keys()].sort((a, b) => b - a)) {
    const heap = new MinHeap<KeyQueue<W>>(
      (a, b) => a.rank < b.rank || (a.rank === b.rank && a.items[a.next]!.seq < b.items[b.next]!.seq),
    );
    const enqueue = (queue: KeyQueue<W>) => {
      queue.rank = share(queue.key) / queue.items[queue.next]!.ticket.weight;
      heap.push(queue);
    };
    for (const [key, items] of levels.get(level)!) enqueue({ key, items, next: 0, rank: 0 });
    for (let queue = heap.pop(); queue !== undefined; queue = heap.pop()) {
      if (!full && open === 0) return visits;
      const waiter = queue.items[queue.next++]!;
      const fits = waiter.dims.every(([resource, amount]) => amount <= (avail.get(resource) ?? 0) + EPSILON);
      if (fits) {
        for (const [resource, amount] of waiter.dims) take(resource, amount);
        addUse(keyUse, waiter.ticket.key, waiter.dims);
        shares.delete(waiter.ticket.key);
        visits.push({ waiter, effectivePriority: level, granted: true, blocked: [] });
      } else {
        const blocked = waiter.dims.filter(
          ([resource, amount]) => amount > (avail.get(resource) ?? 0) + EPSILON,
        );
        if (full) {
          visits.push({
            waiter,
            effectivePriority: level,
            granted: false,
            blocked: blocked.map(([resource]) => ({
              resource,
              reservedBy: [...(reservations.get(resource) ?? [])],
            })),
          });
        }
        // Blocked on a held lock: reserve only locks (see admission.ts), so the pools stay
        // usable by others for however long the lock is held.
        const lockBlocked = blocked.some(([resource]) => isLock(resource));
        for (const [resource, amount] of waiter.dims) {
          if (lockBlocked && !isLock(resource)) continue;
          const reserved = Math.min(avail.get(resource) ?? 0, amount);
          if (reserved <= EPSILON) continue;
          take(resource, reserved);
          const list = reservations.get(resource);
          if (list) list.push(waiter);
          else reservations.set(resource, [waiter]);
        }
      }
      if (queue.next < queue.items.length) enqueue(queue);
    }
  }
  return visits;
}

function addUse(
  keyUse: Map<string, Map<Resource, number>>,
  key: string,
  dims: Array<[Resource, number]>,
): void {
  let use = keyUse.get(key);
  if (!use) {
    use = new Map();
    keyUse.set(key, use);
  }
  for (const [resource, amount] of dims) use.set(resource, (use.get(resource) ?? 0) + amount);
}
