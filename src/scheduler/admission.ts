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
 * tick; aging takes effect at the next of those. Each of them that changes the queue or the grants
 * tells {@link Admission.onChange} listeners, so whoever explains waits can say when an answer changed.
 *
 * This is one process's admission. Where several workers share a PostgreSQL database, a job's named
 * locks are first taken as slots in the database (cluster-locks.ts, in the same fair order across the
 * cluster's waiters), and only then asked for here, where they fit at once; the pools stay per worker.
 */
import { SlipwayError } from "../errors.js";
import {
  describeJob,
  diskProblem,
  shuttingDownText,
  tooLargeProblem,
  unknownLockProblem,
  waitReason,
} from "./explanations.js";
import { EPSILON, policyPass, type Request, type Visit } from "./policy.js";
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
  /**
   * What it waited for: the resources it was short of when it began to wait (all it needs when it
   * waited only behind others' reservations); empty when granted at once.
   */
  readonly waitedFor: readonly Resource[];
  release(): void;
}

const DEFAULT_AGING_MS = 60_000;

interface Waiter extends Request {
  resolve(grant: Grant): void;
  reject(error: unknown): void;
  /** Detaches the abort listener. */
  detach(): void;
  /** What it was short of when it began to wait (Grant.waitedFor). */
  short?: Resource[];
}

interface Holding extends Request {
  grantedAt: number;
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
  private readonly changeListeners = new Set<() => void>();

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
          this.changed();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        waiter.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.waiting.set(waiter.seq, waiter);
      // A newcomer only takes or reserves capacity, so unless it fits in what is free nothing can
      // change: skipping the pass keeps a burst of 10,000 waiting requests linear.
      const volumeFree = this.readFreeDisk();
      if (this.fitsFree(waiter.dims, volumeFree)) this.evaluate(volumeFree);
      if (this.waiting.has(waiter.seq)) waiter.short = this.shortOf(waiter.dims, volumeFree);
      this.changed();
    });
  }

  /** The ticket with its defaults filled in (the key's weight from the config); throws when invalid. */
  resolve(ticket: Ticket): ResolvedTicket {
    return this.resolveTicket(ticket);
  }

  /** Re-evaluates the waiting list now; call it when free disk space may have changed. */
  poke(): void {
    this.evaluate();
    // Aging and free disk space change explanations without changing the queue.
    if (this.waiting.size > 0) this.changed();
  }

  /**
   * Calls `listener` after each change that may change why a request waits: a request queued,
   * granted, withdrawn or refused, a grant released, a recheck. Called synchronously, possibly
   * several times in a row: a listener that explains should batch (it must not call back in at once).
   * Returns the function that removes it.
   */
  onChange(listener: () => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /**
   * Why each waiting request waits, in admission order. Re-evaluates first, so it never reports a
   * wait that could be granted now (e.g. after free disk space grew).
   */
  explain(): Explanation[] {
    const volumeFree = this.readFreeDisk();
    this.evaluate(volumeFree);
    const visits = this.pass(this.now(), volumeFree, true);
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
      const reasons = visit.blocked.map(({ resource, reservedBy }, i) =>
        waitReason(blockers[i]!, {
          short: blockers[i]!.need > blockers[i]!.free + EPSILON,
          used: this.usedOf(resource),
          firstReservedNeed: reservedBy[0]?.dims.find(([r]) => r === resource)?.[1] ?? 0,
        }),
      );
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
    this.changed();
  }

  private changed(): void {
    for (const listener of this.changeListeners) {
      try {
        listener();
      } catch {
        // A listener's bug must not break admission.
      }
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
        problems.push(tooLargeProblem(resource, amount, capacity, setting));
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
        problems.push(unknownLockProblem(name, declared));
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
    const before = this.waiting.size;
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
    for (const visit of this.pass(now, volumeFree, false)) {
      if (!visit.granted) continue;
      const { waiter } = visit;
      this.waiting.delete(waiter.seq);
      waiter.detach();
      waiter.resolve(this.grant(waiter, now, true));
    }
    if (this.waiting.size !== before) this.changed();
  }

  /** The policy's pass (see policy.ts) over this queue, against what is free now. */
  private pass(now: number, volumeFree: number | undefined, full: boolean): Visit<Waiter>[] {
    return policyPass({
      now,
      waiting: this.waiting.values(),
      holding: this.holding.values(),
      capacity: this.capacityOf,
      free: this.freeAmounts(volumeFree),
      agingMs: this.agingMs,
      full,
    });
  }

  private grant(request: Request & { short?: Resource[] }, now: number, tracked: boolean): Grant {
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
      waitedFor: request.short ?? [],
      release: () => {
        if (released) return;
        released = true;
        this.holding.delete(request.seq);
        for (const [resource, amount] of request.dims) {
          const left = this.usedOf(resource) - amount;
          this.used.set(resource, left > EPSILON ? left : 0);
        }
        this.evaluate();
        // A holder gone changes what the waiting are told, granted or not.
        if (this.waiting.size > 0) this.changed();
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

  /** The resources of `dims` short now; all of them when none is (held back by reservations). */
  private shortOf(dims: Array<[Resource, number]>, volumeFree: number | undefined): Resource[] {
    const free = this.freeAmounts(volumeFree);
    const short = dims.filter(([resource, amount]) => amount > (free.get(resource) ?? 0) + EPSILON);
    return (short.length > 0 ? short : dims).map(([resource]) => resource);
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
}

function shuttingDown(ticket: ResolvedTicket): AdmissionError {
  return new AdmissionError("shutting_down", shuttingDownText(ticket));
}
