/**
 * Named locks held in the database, for every worker sharing it (`Storage.locks()`): the slots held
 * and the requests waiting. A slot is a row keyed by (lock, slot number), so two holders of one slot
 * cannot both be written whatever the interleaving of workers; a taker only writes slot numbers below
 * the lock's capacity. Which waiter goes next is the caller's decision (scheduler/cluster-locks.ts),
 * made on a view read in the same serialized transaction that writes the slots.
 */

/** Who holds or waits for a slot: a grant of one job, in one run, on one worker. */
export interface LockParty {
  /** The grant's own id (fresh per request): what `release` names. */
  holder: string;
  runId: string;
  runName: string | null;
  pipeline: string;
  /** The step's action (`deploy`, `attempts#2.fix`) and its label as shown (`deploy`). */
  action: string;
  job: string;
  /** The executor (worker) that asked: its slots are freed when it is found dead. */
  owner: string;
  /** Its concurrency key: fair order shares locks across keys. */
  key: string;
}

/** One slot of a lock, held. */
export interface LockSlotRecord extends LockParty {
  lock: string;
  /** 0 ≤ slot < the lock's capacity. */
  slot: number;
  /** When it was taken (epoch ms). */
  since: number;
}

/** One request waiting for one lock (a request for two locks has two rows). */
export interface LockWaiterRecord extends LockParty {
  lock: string;
  /** The key's weight and the request's priority: what fair order reads, with `since`. */
  weight: number;
  priority: number;
  /** When it began to wait (epoch ms). */
  since: number;
}

/** Every slot held and every request waiting, of every lock. */
export interface LockView {
  slots: LockSlotRecord[];
  waiters: LockWaiterRecord[];
}

/** A waiting request to grant: one slot of each lock it waits for, below each lock's capacity. */
export interface LockTake {
  holder: string;
  /** Capacity per lock, as the taker's config says. */
  capacity: Readonly<Record<string, number>>;
}

export interface LockStore {
  /** Queues a request: one row per lock (a holder already waiting for a lock is left as it is). */
  wait(waiters: readonly LockWaiterRecord[]): Promise<void>;
  /**
   * In one transaction, serialized with every other `take` of the database: reads the view, asks
   * `decide` which waiting requests to grant, and gives each the lowest free slot of each of its
   * locks, removing its waiter rows. A request one of whose locks has no free slot below capacity
   * is granted nothing. Returns the slots written, by holder.
   */
  take(decide: (view: LockView) => readonly LockTake[], now: number): Promise<LockSlotRecord[]>;
  /** Frees a holder's slots and withdraws its waiting rows. */
  release(holder: string): Promise<void>;
  /** Frees the slots and waiting rows of these owners (dead executors); how many slots were freed. */
  freeOwners(owners: readonly string[]): Promise<number>;
  view(): Promise<LockView>;
  /**
   * A run's turn under `concurrency:`: one of `limit` slots of `key`, held for as long as the run is
   * unfinished (active, held after a failure, or needing attention: a retry or resume goes on within
   * the limit) and free for the next once it has ended, without anyone releasing it. True when the run
   * holds one: it did already, or took the lowest free one. A slot is a row keyed by (key, slot) and is
   * only ever taken over from a run that has ended (or is gone), so two unfinished runs never hold one
   * slot, whatever the interleaving of workers.
   */
  takeRunSlot(key: string, runId: string, limit: number, now: number): Promise<boolean>;
  /** The unfinished runs holding slots of `key`, by slot. */
  runSlotHolders(key: string): Promise<string[]>;
  /**
   * Optional: calls `listener` soon after another process changed the locks (a slot freed, a request
   * queued), so waiters look at once instead of at their next poll. Returns what stops the calls.
   */
  onChange?(listener: () => void): () => void;
}

/** Lowest slot number below `capacity` that `taken` does not hold, or undefined when all are. */
export function lowestFreeSlot(taken: ReadonlySet<number>, capacity: number): number | undefined {
  for (let slot = 0; slot < capacity; slot++) if (!taken.has(slot)) return slot;
  return undefined;
}

/** The order every backend answers in: slots by lock then slot, waiters by since, holder, lock. */
export function sortView(view: LockView): LockView {
  const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
  view.slots.sort((a, b) => cmp(a.lock, b.lock) || a.slot - b.slot);
  view.waiters.sort((a, b) => a.since - b.since || cmp(a.holder, b.holder) || cmp(a.lock, b.lock));
  return view;
}
