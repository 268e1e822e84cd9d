/**
 * In-process admission control: a job starts only when everything it needs can be granted at once,
 * capacity is shared fairly across concurrency keys, and every waiting request can say why it waits.
 *
 * ## Policy
 *
 * Waiting requests are ordered by (1) effective priority, the request's priority plus one for every
 * `agingMs` it has waited; (2) weighted dominant-resource fairness across keys: the key whose
 * granted dominant share (the largest of memory, cpu, disk and each lock, as a fraction of capacity)
 * divided by its weight is lowest goes first; (3) arrival order within a key. Admission then walks
 * that order against a copy of what is free, **conservative backfilling with reservations**: a
 * request that fits is granted; one that does not reserves what it needs (its need is taken from the
 * copy, floored at 0), so a request further back may start ahead of it only with capacity it does not
 * need. One exception: a request blocked on a lock that running jobs hold reserves only its locks,
 * not memory, cpu or disk. A lock can be held for a long time (a 20-minute deploy), and idling the
 * pools for the request queued behind it would bring back the head-of-line blocking of story 3;
 * once the lock is obtainable the request reserves everything, so it waits at most for the jobs
 * already running to end.
 *
 * Why reservations rather than aging alone: aging only reorders the queue. It eventually puts a
 * large request first, but being first does not free capacity: while a stream of small requests
 * keeps taking every gigabyte as it is released, the large one never sees enough free at once.
 * A reservation stops new small requests from taking what the large one needs, so it starts as soon
 * as the requests already running release it. Aging is kept for the ordering itself (a low-priority
 * or high-share key still reaches the front), and reservations make reaching the front sufficient.
 *
 * Disk is checked against the work volume's real free space minus the disk granted to running jobs
 * (they may not have written it yet), so a job that would fill the volume waits instead of dying
 * halfway; when even freeing every granted job's disk could not make room, it fails at once.
 *
 * The order is re-evaluated on every acquire, release, abort, {@link Admission.poke} and recheck
 * tick; aging takes effect at the next of those.
 */
import { SlipwayError } from "../errors.js";
import { clockTime, formatBytes, formatCpu, ordinal } from "../format.js";
import { closest, listOr } from "../problems.js";
import { MinHeap } from "./heap.js";
import type {
  Amounts,
  Blocker,
  Capacity,
  Explanation,
  Holder,
  Need,
  ResolvedTicket,
  Resource,
  Snapshot,
  Ticket,
} from "./types.js";

/** Why a request was refused without waiting (or stopped waiting). */
export type AdmissionErrorReason = "too_large" | "unknown_lock" | "disk_full" | "invalid" | "shutting_down";

/** A request that can never be granted as asked, or one cut short by {@link Admission.close}. */
export class AdmissionError extends SlipwayError {
  readonly reason: AdmissionErrorReason;
  constructor(reason: AdmissionErrorReason, message: string) {
    super(reason === "shutting_down" ? "cancelled" : "invalid_input", message);
    this.reason = reason;
  }
}

export interface AdmissionOptions {
  capacity: Capacity;
  /** Bytes free on the work volume now (e.g. from `statfs`). Without it disk is only a pool. */
  freeDisk?: () => number;
  /** Clock in ms since the epoch; injectable for tests. */
  now?: () => number;
  /** Waiting this long raises a request's priority by one. Default 60 s; `Infinity` turns aging off. */
  agingMs?: number;
  /** Weight per concurrency key (the server config's `keys`); a ticket's own `weight` wins. Default 1. */
  weights?: Record<string, number>;
  /** Re-evaluate this often, for free disk space changed by others and for aging. Unref'd. */
  recheckMs?: number;
  /**
   * A lock no config declares: `reject` it (a server, where a typo must not silently serialize
   * nothing), or treat it as `exclusive` (one holder; the CLI without a config). Default `reject`.
   */
  undeclaredLocks?: "reject" | "exclusive";
}

/** Resources granted to one request; `release()` gives them back (more calls do nothing). */
export interface Grant {
  readonly ticket: ResolvedTicket;
  readonly need: Need;
  /** When it was granted, ms since the epoch. */
  readonly since: number;
  readonly waitedMs: number;
  release(): void;
}

/** Slack for fractional cpu, so 0.1 + 0.2 fits in 0.3. */
const EPSILON = 1e-9;
const DEFAULT_AGING_MS = 60_000;

interface Request {
  seq: number;
  ticket: ResolvedTicket;
  need: Need;
  /** The need per resource, zero amounts left out. */
  dims: Array<[Resource, number]>;
  since: number;
}

interface Waiter extends Request {
  resolve(grant: Grant): void;
  reject(error: unknown): void;
  /** Detaches the abort listener. */
  detach(): void;
}

interface Holding extends Request {
  grantedAt: number;
}

/** One request's turn in a pass over the waiting list. */
interface Visit {
  waiter: Waiter;
  effectivePriority: number;
  granted: boolean;
  /** What it could not get at its turn, and who reserved some of it before. */
  blocked: Array<{ resource: Resource; reservedBy: Waiter[] }>;
}

interface KeyQueue {
  key: string;
  items: Waiter[];
  next: number;
  /** Fixed while queued in the heap: only this key's own grants change its share. */
  rank: number;
}

export class Admission {
  private readonly capacity: Capacity;
  private readonly capacityOf = new Map<Resource, number>();
  private readonly used = new Map<Resource, number>();
  private readonly waiting = new Map<number, Waiter>();
  private readonly holding = new Map<number, Holding>();
  private readonly freeDisk: (() => number) | undefined;
  private readonly now: () => number;
  private readonly agingMs: number;
  private readonly weights: Record<string, number>;
  private readonly undeclaredLocks: "reject" | "exclusive";
  private readonly timer: NodeJS.Timeout | undefined;
  private seq = 0;
  private closed = false;

  constructor(options: AdmissionOptions) {
    const { capacity } = options;
    const problems: string[] = [];
    const pool = (resource: "memory" | "cpu" | "disk", value: number) => {
      if (!Number.isFinite(value) || value < 0)
        problems.push(`${resource} capacity must be 0 or more, got ${value}`);
      this.capacityOf.set(resource, value);
    };
    pool("memory", capacity.memoryBytes);
    pool("cpu", capacity.cpu);
    pool("disk", capacity.diskBytes);
    for (const [name, slots] of Object.entries(capacity.locks)) {
      if (!Number.isSafeInteger(slots) || slots < 0) {
        problems.push(`lock ${name} capacity must be a whole number 0 or more, got ${slots}`);
      }
      this.capacityOf.set(`lock:${name}`, slots);
    }
    const agingMs = options.agingMs ?? DEFAULT_AGING_MS;
    if (!(agingMs > 0)) problems.push(`agingMs must be greater than 0, got ${agingMs}`);
    if (options.recheckMs !== undefined && !(options.recheckMs > 0 && Number.isFinite(options.recheckMs))) {
      problems.push(`recheckMs must be greater than 0, got ${options.recheckMs}`);
    }
    for (const [key, weight] of Object.entries(options.weights ?? {})) {
      if (!(weight > 0 && Number.isFinite(weight)))
        problems.push(`weight of key ${key} must be greater than 0`);
    }
    if (problems.length > 0) throw new AdmissionError("invalid", `admission: ${problems.join("; ")}`);

    this.capacity = { ...capacity, locks: { ...capacity.locks } };
    this.undeclaredLocks = options.undeclaredLocks ?? "reject";
    this.freeDisk = options.freeDisk;
    this.now = options.now ?? Date.now;
    this.agingMs = agingMs;
    this.weights = { ...options.weights };
    if (options.recheckMs !== undefined) {
      this.timer = setInterval(() => this.poke(), options.recheckMs);
      this.timer.unref();
    }
  }

  /**
   * Resolves when all of `need` is granted at once. Rejects at once with an {@link AdmissionError}
   * when it can never be granted (more than the capacity, an unknown lock, disk that nothing running
   * could free), with the signal's reason when `signal` aborts while waiting, and with a
   * `shutting_down` error on {@link close}. A need of nothing is granted at once without queueing.
   */
  acquire(ticket: Ticket, need: Need, signal?: AbortSignal): Promise<Grant> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    let request: Request;
    try {
      const resolved = this.resolveTicket(ticket);
      if (this.closed) throw shuttingDown(resolved);
      request = this.check(resolved, need);
    } catch (error) {
      return Promise.reject(error);
    }
    if (request.dims.length === 0) return Promise.resolve(this.grant(request, request.since, false));

    return new Promise<Grant>((resolve, reject) => {
      const waiter: Waiter = { ...request, resolve, reject, detach: () => {} };
      if (signal) {
        const onAbort = () => {
          if (!this.waiting.delete(waiter.seq)) return;
          reject(signal.reason);
          // Its reservation is gone: someone behind it may fit now.
          this.evaluate();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiter.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.waiting.set(waiter.seq, waiter);
      // A newcomer only takes or reserves capacity, so unless it fits in what is free nothing can
      // change: skipping the pass keeps a burst of 10,000 waiting requests linear.
      const volumeFree = this.readFreeDisk();
      if (this.fitsFree(waiter.dims, volumeFree)) this.evaluate(volumeFree);
    });
  }

  /** Re-evaluates the waiting list now; call it when free disk space may have changed. */
  poke(): void {
    this.evaluate();
  }

  /**
   * Why each waiting request waits, in admission order. Re-evaluates first, so it never reports a
   * wait that could be granted now (e.g. after free disk space grew).
   */
  explain(): Explanation[] {
    const volumeFree = this.readFreeDisk();
    this.evaluate(volumeFree);
    const visits = this.plan(this.now(), volumeFree, true);
    const positions = new Map<Resource, number>();
    const free = this.freeAmounts(volumeFree);
    return visits.map((visit, index) => {
      const { waiter } = visit;
      const blockers: Blocker[] = visit.blocked.map(({ resource, reservedBy }) => {
        const position = (positions.get(resource) ?? 0) + 1;
        positions.set(resource, position);
        const blocker: Blocker = {
          resource,
          need: waiter.dims.find(([r]) => r === resource)?.[1] ?? 0,
          free: free.get(resource) ?? 0,
          capacity: this.capacityOf.get(resource) ?? 0,
          holders: this.holdersOf(resource),
          position,
        };
        if (reservedBy.length > 0) blocker.reservedBy = reservedBy.map((w) => w.ticket);
        if (resource === "disk" && volumeFree !== undefined) blocker.volumeFree = volumeFree;
        return blocker;
      });
      const reasons = visit.blocked.map((b, i) => this.reason(blockers[i]!, b.reservedBy));
      return {
        ticket: waiter.ticket,
        need: waiter.need,
        since: waiter.since,
        effectivePriority: visit.effectivePriority,
        position: index + 1,
        blockers,
        reason: reasons.join("; also "),
      };
    });
  }

  /** Capacity, use, free amounts and holders now: what the API's `/resources` shows. */
  snapshot(): Snapshot {
    const volumeFree = this.readFreeDisk();
    const free = this.freeAmounts(volumeFree);
    const amounts = (of: (resource: Resource) => number): Amounts => ({
      memoryBytes: of("memory"),
      cpu: of("cpu"),
      diskBytes: of("disk"),
      locks: Object.fromEntries(Object.keys(this.capacity.locks).map((name) => [name, of(`lock:${name}`)])),
    });
    return {
      capacity: { ...this.capacity, locks: { ...this.capacity.locks } },
      inUse: amounts((r) => this.usedOf(r)),
      free: amounts((r) => free.get(r) ?? 0),
      volumeFreeBytes: volumeFree ?? null,
      holders: {
        memory: this.holdersOf("memory"),
        cpu: this.holdersOf("cpu"),
        disk: this.holdersOf("disk"),
        locks: Object.fromEntries(
          Object.keys(this.capacity.locks).map((name) => [name, this.holdersOf(`lock:${name}`)]),
        ),
      },
      granted: this.holding.size,
      waiting: this.waiting.size,
    };
  }

  /** Rejects every waiting request with a `shutting_down` error and stops the recheck timer. Grants stay releasable. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    const waiters = [...this.waiting.values()];
    this.waiting.clear();
    for (const waiter of waiters) {
      waiter.detach();
      waiter.reject(shuttingDown(waiter.ticket));
    }
  }

  private resolveTicket(ticket: Ticket): ResolvedTicket {
    const key = ticket.key ?? ticket.pipeline;
    const weight = ticket.weight ?? this.weights[key] ?? 1;
    const priority = ticket.priority ?? 0;
    if (!(weight > 0 && Number.isFinite(weight))) {
      throw new AdmissionError(
        "invalid",
        `${describeJob(ticket)}: weight must be greater than 0, got ${weight}`,
      );
    }
    if (!Number.isFinite(priority)) {
      throw new AdmissionError(
        "invalid",
        `${describeJob(ticket)}: priority must be a number, got ${priority}`,
      );
    }
    return {
      runId: ticket.runId,
      runName: ticket.runName,
      pipeline: ticket.pipeline,
      job: ticket.job,
      key,
      weight,
      priority,
    };
  }

  /** Validates a need against the capacity; throws when it could never be granted. */
  private check(ticket: ResolvedTicket, need: Need): Request {
    const who = describeJob(ticket);
    const problems: string[] = [];
    const reasons = new Set<AdmissionErrorReason>();
    const dims: Array<[Resource, number]> = [];
    const pool = (resource: "memory" | "cpu" | "disk", amount: number, setting: string) => {
      if (!Number.isFinite(amount) || amount < 0) {
        problems.push(`\`resources.${setting}\` must be 0 or more, got ${amount}`);
        reasons.add("invalid");
        return;
      }
      const capacity = this.capacityOf.get(resource)!;
      if (amount > capacity + EPSILON) {
        problems.push(
          `needs ${amountText(resource, amount)}${resource === "cpu" ? "" : ` of ${resource}`} but the pool has ${amountText(resource, capacity)}` +
            ` (lower the job's \`resources.${setting}\` or raise \`resources.${setting}\` in the server config)`,
        );
        reasons.add("too_large");
      }
      if (amount > 0) dims.push([resource, amount]);
    };
    pool("memory", need.memoryBytes, "memory");
    pool("cpu", need.cpu, "cpu");
    pool("disk", need.diskBytes, "disk");
    const locks = [...new Set(need.locks)];
    if (this.undeclaredLocks === "exclusive") {
      for (const name of locks) {
        if (Object.hasOwn(this.capacity.locks, name)) continue;
        this.capacity.locks[name] = 1;
        this.capacityOf.set(`lock:${name}`, 1);
      }
    }
    const declared = Object.keys(this.capacity.locks);
    for (const name of locks) {
      const slots = Object.hasOwn(this.capacity.locks, name) ? this.capacity.locks[name] : undefined;
      if (slots === undefined) {
        const near = closest(name, declared);
        problems.push(
          `needs lock \`${name}\`, which the server config does not declare` +
            (declared.length === 0 ? " (it declares no locks)" : ` (declared: ${listOr(declared, "and")})`) +
            (near === undefined ? "" : ` (did you mean \`${near}\`?)`),
        );
        reasons.add("unknown_lock");
      } else if (slots < 1) {
        problems.push(`needs lock \`${name}\`, whose capacity in the server config is 0`);
        reasons.add("too_large");
      } else {
        dims.push([`lock:${name}`, 1]);
      }
    }
    if (problems.length === 0 && need.diskBytes > 0) {
      const volumeFree = this.readFreeDisk();
      if (volumeFree !== undefined && volumeFree + this.usedOf("disk") < need.diskBytes) {
        problems.push(diskProblem(need.diskBytes, volumeFree, this.usedOf("disk")));
        reasons.add("disk_full");
      }
    }
    if (problems.length > 0) {
      const reason = reasons.has("invalid") ? "invalid" : [...reasons][0]!;
      throw new AdmissionError(reason, `${who} ${problems.join("; and ")}`);
    }
    return {
      seq: ++this.seq,
      ticket,
      need: { memoryBytes: need.memoryBytes, cpu: need.cpu, diskBytes: need.diskBytes, locks },
      dims,
      since: this.now(),
    };
  }

  /** Grants whatever fits, in policy order, and fails disk waits that nothing could ever make room for. */
  private evaluate(volumeFree = this.readFreeDisk()): void {
    if (this.closed || this.waiting.size === 0) return;
    if (volumeFree !== undefined) {
      const usedDisk = this.usedOf("disk");
      for (const waiter of this.waiting.values()) {
        if (waiter.need.diskBytes > 0 && volumeFree + usedDisk < waiter.need.diskBytes) {
          this.waiting.delete(waiter.seq);
          waiter.detach();
          waiter.reject(
            new AdmissionError(
              "disk_full",
              `${describeJob(waiter.ticket)} ${diskProblem(waiter.need.diskBytes, volumeFree, usedDisk)}`,
            ),
          );
        }
      }
    }
    const now = this.now();
    for (const visit of this.plan(now, volumeFree, false)) {
      if (!visit.granted) continue;
      const { waiter } = visit;
      this.waiting.delete(waiter.seq);
      waiter.detach();
      waiter.resolve(this.grant(waiter, now, true));
    }
  }

  /**
   * One pass over the waiting list in policy order against a copy of what is free: who would be
   * granted and, with `full`, what each of the others is blocked on. Pure: nothing is granted here.
   * Without `full` the pass lists only grants and stops once nothing is left to grant.
   */
  private plan(now: number, volumeFree: number | undefined, full: boolean): Visit[] {
    const avail = this.freeAmounts(volumeFree);
    const reservations = new Map<Resource, Waiter[]>();
    const keyUse = new Map<string, Map<Resource, number>>();
    for (const holding of this.holding.values()) addUse(keyUse, holding.ticket.key, holding.dims);
    const shares = new Map<string, number>();
    const share = (key: string): number => {
      let dominant = shares.get(key);
      if (dominant !== undefined) return dominant;
      dominant = 0;
      for (const [resource, amount] of keyUse.get(key) ?? []) {
        const capacity = this.capacityOf.get(resource) ?? 0;
        if (capacity > 0) dominant = Math.max(dominant, amount / capacity);
      }
      shares.set(key, dominant);
      return dominant;
    };

    // Effective priority, then key: each key's waiters stay in arrival order (the Map's order).
    // `open` counts the resources some waiter needs that still have something free: at 0 nobody
    // can be granted, so a pass that only grants can stop there instead of visiting every waiter.
    const levels = new Map<number, Map<string, Waiter[]>>();
    const needed = new Set<Resource>();
    for (const waiter of this.waiting.values()) {
      const level = waiter.ticket.priority + Math.floor(Math.max(0, now - waiter.since) / this.agingMs);
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

    const visits: Visit[] = [];
    for (const level of [...levels.keys()].sort((a, b) => b - a)) {
      const heap = new MinHeap<KeyQueue>(
        (a, b) => a.rank < b.rank || (a.rank === b.rank && a.items[a.next]!.seq < b.items[b.next]!.seq),
      );
      const enqueue = (queue: KeyQueue) => {
        queue.rank = share(queue.key) / queue.items[queue.next]!.ticket.weight;
        heap.push(queue);
      };
      for (const [key, items] of levels.get(level)!) enqueue({ key, items, next: 0, rank: 0 });
      for (let queue = heap.pop(); queue !== undefined; queue = heap.pop()) {
        if (!full && open === 0) return visits;
        const waiter = queue.items[queue.next++]!;
        const fits = waiter.dims.every(
          ([resource, amount]) => amount <= (avail.get(resource) ?? 0) + EPSILON,
        );
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
          // Blocked on a held lock: reserve only locks (see the module comment), so the pools stay
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

  private grant(request: Request, now: number, tracked: boolean): Grant {
    if (tracked) {
      this.holding.set(request.seq, { ...request, grantedAt: now });
      for (const [resource, amount] of request.dims) this.used.set(resource, this.usedOf(resource) + amount);
    }
    let released = !tracked;
    return {
      ticket: request.ticket,
      need: request.need,
      since: now,
      waitedMs: now - request.since,
      release: () => {
        if (released) return;
        released = true;
        this.holding.delete(request.seq);
        for (const [resource, amount] of request.dims) {
          const left = this.usedOf(resource) - amount;
          this.used.set(resource, left > EPSILON ? left : 0);
        }
        this.evaluate();
      },
    };
  }

  private usedOf(resource: Resource): number {
    return this.used.get(resource) ?? 0;
  }

  /** Free per resource now: capacity minus use; disk also within the volume's free space minus granted disk. */
  private freeAmounts(volumeFree: number | undefined): Map<Resource, number> {
    const free = new Map<Resource, number>();
    for (const [resource, capacity] of this.capacityOf) {
      free.set(resource, Math.max(0, capacity - this.usedOf(resource)));
    }
    if (volumeFree !== undefined) {
      free.set("disk", Math.max(0, Math.min(free.get("disk")!, volumeFree - this.usedOf("disk"))));
    }
    return free;
  }

  private fitsFree(dims: Array<[Resource, number]>, volumeFree: number | undefined): boolean {
    const free = this.freeAmounts(volumeFree);
    return dims.every(([resource, amount]) => amount <= (free.get(resource) ?? 0) + EPSILON);
  }

  /** The volume's free bytes, or undefined when unknown: a failing `statfs` must not break releases. */
  private readFreeDisk(): number | undefined {
    if (!this.freeDisk) return undefined;
    try {
      const bytes = this.freeDisk();
      return Number.isFinite(bytes) ? Math.max(0, bytes) : undefined;
    } catch {
      return undefined;
    }
  }

  private holdersOf(resource: Resource): Holder[] {
    const holders: Holder[] = [];
    for (const holding of this.holding.values()) {
      const amount = holding.dims.find(([r]) => r === resource)?.[1];
      if (amount === undefined) continue;
      const { runId, runName, pipeline, job } = holding.ticket;
      holders.push({ runId, runName, pipeline, job, since: holding.grantedAt, amount });
    }
    return holders.sort((a, b) => a.since - b.since);
  }

  /** One line on one blocker: who holds it, or whose reservation it waits behind, and its place in line. */
  private reason(blocker: Blocker, reservedBy: Waiter[]): string {
    const { resource, need, free, capacity, holders, position } = blocker;
    const line = `${ordinal(position)} in line`;
    if (need > free + EPSILON) {
      if (isLock(resource)) {
        const held = this.usedOf(resource);
        return `waits for lock ${lockName(resource)} (${held} of ${capacity} held by ${holdersText(holders, resource)}); ${line}`;
      }
      const heldBy = holders.length > 0 ? `held by ${holdersText(holders, resource)}` : "nothing held";
      if (resource === "disk" && blocker.volumeFree !== undefined && free < capacity - this.usedOf("disk")) {
        return (
          `waits for disk (needs ${formatBytes(need)}, ${formatBytes(blocker.volumeFree)} free on the work volume, ` +
          `${formatBytes(this.usedOf("disk"))} of it granted to ${holdersText(holders, resource)}); ${line}`
        );
      }
      return (
        `waits for ${resource} (needs ${amountText(resource, need)}, ${amountText(resource, free)} free of ` +
        `${amountText(resource, capacity)}; ${heldBy}); ${line}`
      );
    }
    const first = reservedBy[0];
    const more = reservedBy.length > 1 ? ` and ${reservedBy.length - 1} more` : "";
    if (isLock(resource)) {
      const by = first === undefined ? "requests ahead of it" : `${who(first.ticket)}${more}`;
      return `waits behind a reservation for lock ${lockName(resource)} by ${by}; ${line}`;
    }
    const by =
      first === undefined
        ? "requests ahead of it"
        : `${who(first.ticket)} (needs ${amountText(resource, first.dims.find(([r]) => r === resource)?.[1] ?? 0)}, ` +
          `${amountText(resource, free)} free)${more}`;
    return `waits behind a reservation for ${resource} by ${by}; ${line}`;
  }
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

function isLock(resource: Resource): resource is `lock:${string}` {
  return resource.startsWith("lock:");
}

function lockName(resource: Resource): string {
  return resource.slice("lock:".length);
}

function amountText(resource: Resource, amount: number): string {
  if (resource === "memory" || resource === "disk") return formatBytes(amount);
  if (resource === "cpu") return `${formatCpu(amount)} cpu`;
  return String(amount);
}

/** `run r1 (recipe-a) job deploy`. */
function who(ticket: Pick<Ticket, "runId" | "runName" | "job">): string {
  return `run ${ticket.runId}${ticket.runName ? ` (${ticket.runName})` : ""} job ${ticket.job}`;
}

/** `job deploy of run r1 (recipe-a)`: the subject of error messages. */
function describeJob(ticket: Pick<Ticket, "runId" | "runName" | "job">): string {
  return `job ${ticket.job} of run ${ticket.runId}${ticket.runName ? ` (${ticket.runName})` : ""}`;
}

/** The first three holders (with their amounts for pools), then how many more. */
function holdersText(holders: Holder[], resource: Resource): string {
  if (holders.length === 0) return "nobody";
  const shown = holders.slice(0, 3).map((h) => {
    const amount = isLock(resource) ? "" : ` (${amountText(resource, h.amount)})`;
    return `${who(h)} since ${clockTime(h.since)}${amount}`;
  });
  const more = holders.length > 3 ? ` and ${holders.length - 3} more` : "";
  return `${shown.join(", ")}${more}`;
}

function diskProblem(need: number, volumeFree: number, usedDisk: number): string {
  const freeable =
    usedDisk > 0
      ? `, and the ${formatBytes(usedDisk)} granted to running jobs would not make enough room`
      : ", and no running job holds disk that could be freed";
  return (
    `needs ${formatBytes(need)} of disk, ${formatBytes(volumeFree)} free on the work volume${freeable}` +
    " (free space on the volume or lower the job's `resources.disk`)"
  );
}

function shuttingDown(ticket: ResolvedTicket): AdmissionError {
  return new AdmissionError(
    "shutting_down",
    `admission is shutting down: ${describeJob(ticket)} was still waiting for resources and did not start`,
  );
}
