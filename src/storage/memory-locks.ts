/** The lock store in memory (tests, and the memory backend's `locks()`): one process, so one JS turn serializes. */
import {
  type LockSlotRecord,
  type LockStore,
  type LockTake,
  type LockView,
  type LockWaiterRecord,
  lowestFreeSlot,
  sortView,
} from "./locks.js";

export class MemoryLockStore implements LockStore {
  /** By `lock NUL slot`: the key that makes two holders of one slot impossible. */
  readonly #slots = new Map<string, LockSlotRecord>();
  /** By `holder NUL lock`. */
  readonly #waiters = new Map<string, LockWaiterRecord>();
  /** Runs holding `concurrency:` slots: by key, the holder of each slot number. */
  readonly #runSlots = new Map<string, (string | undefined)[]>();
  /** Whether a run is unfinished (a run slot's holder keeps it only while it is). */
  readonly #unfinished: (runId: string) => boolean;

  constructor(unfinished: (runId: string) => boolean = () => false) {
    this.#unfinished = unfinished;
  }

  async takeRunSlot(key: string, runId: string, limit: number, _now: number): Promise<boolean> {
    const holders = this.#runSlots.get(key) ?? [];
    this.#runSlots.set(key, holders);
    if (holders.includes(runId)) return true;
    for (let slot = 0; slot < limit; slot++) {
      const holder = holders[slot];
      if (holder !== undefined && this.#unfinished(holder)) continue;
      holders[slot] = runId;
      return true;
    }
    return false;
  }

  async runSlotHolders(key: string): Promise<string[]> {
    return (this.#runSlots.get(key) ?? []).filter(
      (id): id is string => id !== undefined && this.#unfinished(id),
    );
  }

  async wait(waiters: readonly LockWaiterRecord[]): Promise<void> {
    for (const waiter of waiters) {
      const key = `${waiter.holder}\u0000${waiter.lock}`;
      if (!this.#waiters.has(key)) this.#waiters.set(key, { ...waiter });
    }
  }

  async take(decide: (view: LockView) => readonly LockTake[], now: number): Promise<LockSlotRecord[]> {
    const taken: LockSlotRecord[] = [];
    for (const { holder, capacity } of decide(this.#view())) {
      const rows = [...this.#waiters.values()].filter((w) => w.holder === holder);
      if (rows.length === 0) continue;
      const slots: LockSlotRecord[] = [];
      for (const { weight: _w, priority: _p, since: _s, ...party } of rows) {
        const used = new Set(
          [...this.#slots.values()].filter((s) => s.lock === party.lock).map((s) => s.slot),
        );
        const slot = lowestFreeSlot(used, capacity[party.lock] ?? 0);
        if (slot === undefined) break;
        slots.push({ ...party, slot, since: now });
      }
      if (slots.length < rows.length) continue;
      for (const slot of slots) {
        this.#slots.set(`${slot.lock}\u0000${slot.slot}`, slot);
        this.#waiters.delete(`${holder}\u0000${slot.lock}`);
      }
      taken.push(...slots.map((s) => ({ ...s })));
    }
    return taken;
  }

  async release(holder: string): Promise<void> {
    for (const [key, slot] of this.#slots) if (slot.holder === holder) this.#slots.delete(key);
    for (const [key, waiter] of this.#waiters) if (waiter.holder === holder) this.#waiters.delete(key);
  }

  async freeOwners(owners: readonly string[]): Promise<number> {
    const dead = new Set(owners);
    let freed = 0;
    for (const [key, slot] of this.#slots)
      if (dead.has(slot.owner)) {
        this.#slots.delete(key);
        freed++;
      }
    for (const [key, waiter] of this.#waiters) if (dead.has(waiter.owner)) this.#waiters.delete(key);
    return freed;
  }

  async view(): Promise<LockView> {
    return this.#view();
  }

  #view(): LockView {
    return sortView({
      slots: [...this.#slots.values()].map((s) => ({ ...s })),
      waiters: [...this.#waiters.values()].map((w) => ({ ...w })),
    });
  }
}
