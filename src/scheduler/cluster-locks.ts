/**
 * Named locks shared by every worker of a database (a cluster): a job's lock is granted once its slot
 * is written in the database (storage/locks.ts), where the (lock, slot) key makes two holders of one
 * slot impossible whatever the interleaving of workers. Each worker queues its requests there, and
 * takes slots only for its own requests that the cluster's fair order (cluster-order.ts) puts first;
 * it looks again when a worker changes the locks (LISTEN/NOTIFY where the store has it) and on every
 * poll tick. Slots of workers found dead are freed on the next sweep; a worker frees whatever it
 * still has when it closes.
 */
import { randomUUID } from "node:crypto";
import type { LockSlotRecord, LockStore, LockView, LockWaiterRecord } from "../storage/locks.js";
import { AdmissionError } from "./admission.js";
import { type ClusterPass, clusterPass } from "./cluster-order.js";
import { shuttingDownText } from "./explanations.js";
import type { Explanation, Holder, ResolvedTicket } from "./types.js";

export interface ClusterLocksOptions {
  store: LockStore;
  /** This worker's executor id: the owner of its slots and waiting rows. */
  owner: string;
  /** Slots per lock, from this worker's config (workers of a cluster should agree). */
  capacity: Readonly<Record<string, number>>;
  /** Owners (executors) provably dead now, whose slots and waiting rows may be freed. */
  deadOwners(): Promise<readonly string[]>;
  /** Look at the queue this often even when nothing is notified (default 1 s). */
  pollMs?: number;
  /** Look for dead owners this often (default 2 s, the heartbeat). */
  sweepMs?: number;
  /** As admission's: waiting this long raises a request's priority by one (default 60 s). */
  agingMs?: number;
  now?: () => number;
  /** Told of a failed look at the database (retried at the next tick). */
  onError?: (error: unknown) => void;
}

/** Slots of a job's locks, held in the database until released. */
export interface ClusterGrant {
  since: number;
  waitedMs: number;
  release(): void;
}

interface Pending {
  holder: string;
  ticket: ResolvedTicket;
  action: string;
  locks: string[];
  since: number;
  /** Its waiting rows are written. */
  queued: boolean;
  resolve(grant: ClusterGrant): void;
  reject(error: unknown): void;
  detach(): void;
}

export class ClusterLocks {
  readonly #options: Required<Omit<ClusterLocksOptions, "onError">> & Pick<ClusterLocksOptions, "onError">;
  readonly #pending = new Map<string, Pending>();
  /** Holders granted here and not yet released. */
  readonly #held = new Set<string>();
  /** Holders whose rows are to be removed (released, withdrawn, or found stale); retried until done. */
  readonly #unreleased = new Set<string>();
  readonly #listeners = new Set<() => void>();
  #view: LockView = { slots: [], waiters: [] };
  #waiting: ClusterPass["waiting"] = new Map();
  #running: Promise<void> | undefined;
  #again = false;
  #sweptAt = Number.NEGATIVE_INFINITY;
  #closed = false;
  readonly #timer: NodeJS.Timeout;
  readonly #stopListening: () => void;

  constructor(options: ClusterLocksOptions) {
    this.#options = {
      pollMs: 1_000,
      sweepMs: 2_000,
      agingMs: 60_000,
      now: Date.now,
      ...options,
    };
    this.#timer = setInterval(() => this.pump(), this.#options.pollMs);
    this.#timer.unref();
    this.#stopListening = options.store.onChange?.(() => this.pump()) ?? (() => {});
    this.pump();
  }

  /** Whether `lock` is one of the declared locks (capacity 1 or more) this worker takes in the database. */
  covers(lock: string): boolean {
    return Object.hasOwn(this.#options.capacity, lock) && this.#options.capacity[lock]! >= 1;
  }

  /**
   * Resolves once a slot of each of `locks` is held in the database for this request; rejects with
   * the signal's reason when it aborts first (its waiting rows are withdrawn).
   */
  acquire(
    ticket: ResolvedTicket,
    action: string,
    locks: readonly string[],
    signal?: AbortSignal,
  ): Promise<ClusterGrant> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#closed) return Promise.reject(new AdmissionError("shutting_down", shuttingDownText(ticket)));
    return new Promise<ClusterGrant>((resolve, reject) => {
      const pending: Pending = {
        holder: randomUUID(),
        ticket,
        action,
        locks: [...new Set(locks)],
        since: this.#options.now(),
        queued: false,
        resolve,
        reject,
        detach: () => {},
      };
      if (signal) {
        const onAbort = () => {
          if (!this.#pending.delete(pending.holder)) return;
          reject(signal.reason);
          this.#unreleased.add(pending.holder);
          this.pump();
        };
        signal.addEventListener("abort", onAbort, { once: true });
        pending.detach = () => signal.removeEventListener("abort", onAbort);
      }
      this.#pending.set(pending.holder, pending);
      this.pump();
    });
  }

  /** Why a request (of any worker) waits for locks, as of the last look at the database. */
  explain(runId: string, action: string): Explanation | undefined {
    for (const { request, explanation } of this.#waiting.values())
      if (request.ticket.runId === runId && request.action === action) return explanation;
    return undefined;
  }

  /** Whether this worker has requests waiting for the database. */
  get waiting(): number {
    return this.#pending.size;
  }

  /** Who holds the slots of `lock` across the cluster, oldest first, as of the last look. */
  holders(lock: string): Holder[] {
    return this.#view.slots
      .filter((s) => s.lock === lock)
      .map((s) => ({
        runId: s.runId,
        runName: s.runName,
        pipeline: s.pipeline,
        job: s.job,
        since: s.since,
        amount: 1,
        worker: s.owner,
      }))
      .sort((a, b) => a.since - b.since);
  }

  /** Calls `listener` after each look at the database (explanations may have changed). */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Looks at the database soon: releases, queues, takes (one look at a time; more asks coalesce). */
  pump(): void {
    if (this.#closed) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = (async () => {
      do {
        this.#again = false;
        try {
          await this.#look();
        } catch (error) {
          this.#options.onError?.(error);
        }
      } while (this.#again && !this.#closed);
    })().finally(() => {
      this.#running = undefined;
    });
  }

  /**
   * Stops looking; requests still waiting are refused, and every slot and waiting row of this worker
   * is removed (call it once its jobs have stopped, before the storage closes).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#stopListening();
    await this.#running;
    for (const pending of this.#pending.values()) {
      pending.detach();
      pending.reject(new AdmissionError("shutting_down", shuttingDownText(pending.ticket)));
    }
    this.#pending.clear();
    try {
      await this.#options.store.freeOwners([this.#options.owner]);
    } catch (error) {
      // Freed by whoever finds this worker dead.
      this.#options.onError?.(error);
    }
  }

  async #look(): Promise<void> {
    const { store, owner, capacity, now, sweepMs, agingMs } = this.#options;
    for (const holder of [...this.#unreleased]) {
      await store.release(holder);
      this.#unreleased.delete(holder);
    }
    const unqueued = [...this.#pending.values()].filter((p) => !p.queued);
    if (unqueued.length > 0) {
      await store.wait(unqueued.flatMap((p) => this.#rows(p)));
      for (const p of unqueued) p.queued = true;
    }
    if (now() - this.#sweptAt >= sweepMs) {
      this.#sweptAt = now();
      const dead = (await this.#options.deadOwners()).filter((o) => o !== owner);
      if (dead.length > 0) await store.freeOwners(dead);
    }
    const mine = new Set([...this.#pending.values()].filter((p) => p.queued).map((p) => p.holder));
    if (mine.size > 0) {
      let seen: LockView = { slots: [], waiters: [] };
      const taken = await store.take((view) => {
        seen = view;
        return clusterPass(view, capacity, now(), agingMs)
          .granted.filter((r) => mine.has(r.holder))
          .map((r) => ({ holder: r.holder, capacity }));
      }, now());
      this.#view = applyTaken(seen, taken);
      this.#granted([...taken, ...this.#takenUnanswered(seen)]);
    } else {
      this.#view = await store.view();
    }
    this.#waiting = clusterPass(this.#view, capacity, now(), agingMs).waiting;
    // Rows of this worker that nothing here stands for (a withdrawal that failed, say) would hold
    // the queue up forever: remove them.
    for (const row of [...this.#view.waiters, ...this.#view.slots]) {
      if (row.owner !== owner || this.#pending.has(row.holder) || this.#held.has(row.holder)) continue;
      this.#unreleased.add(row.holder);
      this.#again = true;
    }
    for (const listener of this.#listeners) {
      try {
        listener();
      } catch {
        // A listener's bug is its own.
      }
    }
  }

  /**
   * Slots of requests still waiting here that a take wrote although its answer was lost (the database
   * restarting as it committed): their waiting rows are gone, so no later take grants them; what
   * this worker holds in the database is theirs. Only this worker takes for its own requests.
   */
  #takenUnanswered(view: LockView): LockSlotRecord[] {
    const slots = view.slots.filter((s) => this.#pending.get(s.holder)?.queued);
    return slots.filter(
      (s) => slots.filter((o) => o.holder === s.holder).length === this.#pending.get(s.holder)!.locks.length,
    );
  }

  #granted(taken: readonly LockSlotRecord[]): void {
    const now = this.#options.now();
    for (const holder of new Set(taken.map((s) => s.holder))) {
      const pending = this.#pending.get(holder);
      if (!pending) {
        // Withdrawn while it was being taken.
        this.#unreleased.add(holder);
        this.#again = true;
        continue;
      }
      this.#pending.delete(holder);
      pending.detach();
      this.#held.add(holder);
      let released = false;
      pending.resolve({
        since: now,
        waitedMs: now - pending.since,
        release: () => {
          if (released) return;
          released = true;
          this.#held.delete(holder);
          this.#unreleased.add(holder);
          this.pump();
        },
      });
    }
  }

  #rows(p: Pending): LockWaiterRecord[] {
    const { runId, runName, pipeline, job, key, weight, priority } = p.ticket;
    return p.locks.map((lock) => ({
      lock,
      holder: p.holder,
      runId,
      runName,
      pipeline,
      action: p.action,
      job,
      owner: this.#options.owner,
      key,
      weight,
      priority,
      since: p.since,
    }));
  }
}

/** The view a take decided on, with what it took: slots added, their waiting rows gone. */
function applyTaken(view: LockView, taken: readonly LockSlotRecord[]): LockView {
  if (taken.length === 0) return view;
  const holders = new Set(taken.map((s) => s.holder));
  return {
    slots: [...view.slots, ...taken],
    waiters: view.waiters.filter((w) => !holders.has(w.holder)),
  };
}
