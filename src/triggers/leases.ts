/**
 * The leases that make one worker of a cluster (several servers on one database) poll each source and
 * fire its schedules: taken or renewed in storage before each piece of that work, in one statement,
 * so two workers never both hold one; a worker that stops renewing loses them when they expire, or at
 * once when its process is provably dead (engine/liveness.ts, the same test runs are taken over by).
 */
import type { Clock } from "../clock.js";
import { executorDead } from "../engine/liveness.js";
import type { TriggerStore } from "../storage/triggers.js";
import type { ExecutorRecord } from "../storage/types.js";

/** How often a worker renews the leases it holds and tries the ones it does not: the executors' heartbeat. */
export const DEFAULT_TRIGGER_HEARTBEAT_MS = 2_000;

/** The lease of polling a source (and firing its schedules). */
export function sourceLease(source: string): string {
  return `source:${source}`;
}

export interface TriggerLeasesOptions {
  store: TriggerStore;
  /** This worker's name in leases: its executor's id. */
  owner: string;
  leaseMs: number;
  clock: Clock;
  /**
   * The registered workers (`Storage.listExecutors`): a lease whose holder is missing there or
   * provably dead is taken at once rather than when it expires. Absent: leases end by expiry only.
   */
  executors?: (() => Promise<ExecutorRecord[]>) | undefined;
  log?: ((message: string) => void) | undefined;
}

export class TriggerLeases {
  readonly #options: TriggerLeasesOptions;
  /** The leases this worker took last time it tried, to say when one is taken or lost. */
  readonly #held = new Set<string>();

  constructor(options: TriggerLeasesOptions) {
    this.#options = options;
  }

  get owner(): string {
    return this.#options.owner;
  }

  /**
   * Takes or renews lease `name`: whether this worker holds it now (for the lease's length). A
   * storage that fails counts as not holding it: the work waits rather than risking a second worker.
   */
  async take(name: string): Promise<boolean> {
    const { store, owner, leaseMs, clock, log } = this.#options;
    let held = false;
    try {
      held = await store.takeLease(name, owner, clock.now(), leaseMs);
      if (!held && this.#options.executors) held = await this.#takeFromDead(name);
    } catch (error) {
      log?.(`lease ${name}: ${(error as Error).message}`);
    }
    if (held && !this.#held.has(name)) {
      this.#held.add(name);
      log?.(`lease ${name} taken by this worker (${owner})`);
    } else if (!held && this.#held.delete(name)) log?.(`lease ${name} lost: another worker holds it`);
    return held;
  }

  /** Whether this worker held lease `name` when it last tried it. */
  holds(name: string): boolean {
    return this.#held.has(name);
  }

  /** Gives up every lease this worker holds (when it stops), so another worker takes them at once. */
  async releaseAll(): Promise<void> {
    const { store, owner, log } = this.#options;
    for (const name of this.#held) {
      await store
        .releaseLease(name, owner)
        .catch((error) => log?.(`lease ${name}: not released: ${(error as Error).message}`));
    }
    this.#held.clear();
  }

  /** Who holds each lease that has not expired, by name. */
  async holders(): Promise<Map<string, string>> {
    const now = this.#options.clock.now();
    const leases = await this.#options.store.listLeases();
    return new Map(leases.filter((l) => l.expiresAt > now).map((l) => [l.name, l.owner]));
  }

  /** Takes a lease whose holder is gone (not registered, or provably dead) without waiting for it to expire. */
  async #takeFromDead(name: string): Promise<boolean> {
    const { store, owner, leaseMs, clock } = this.#options;
    const lease = (await store.listLeases()).find((l) => l.name === name);
    if (!lease || lease.owner === owner) return false;
    // Read after the lease: a worker registers before it takes any, so a holder missing here is gone.
    const executors = await this.#options.executors!();
    const holder = executors.find((e) => e.id === lease.owner);
    if (holder && !executorDead(holder, leaseMs, clock.now())) return false;
    // Only the dead holder's lease is removed: one another worker took meanwhile stays.
    await store.releaseLease(name, lease.owner);
    return store.takeLease(name, owner, clock.now(), leaseMs);
  }
}
