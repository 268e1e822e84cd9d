/**
 * The lock store in SQLite (tables of migrations 0012 and 0014): every take is one `BEGIN IMMEDIATE`
 * transaction, so processes sharing the file take in turn, and the (lock, slot) primary key refuses
 * a second holder of a slot whatever happens.
 */
import type Database from "better-sqlite3";
import {
  runSlotSql,
  SLOT_COLUMNS,
  type SlotRow,
  slotArgs,
  slotOf,
  WAITER_COLUMNS,
  type WaiterRow,
  waiterArgs,
  waiterOf,
} from "../lock-rows.js";
import {
  type LockSlotRecord,
  type LockStore,
  type LockTake,
  type LockView,
  type LockWaiterRecord,
  lowestFreeSlot,
  sortView,
} from "../locks.js";

export type { LockStore } from "../locks.js";

/** The store over an open, migrated database. */
export function sqliteLockStore(db: Database.Database): LockStore {
  const insertWaiter = db.prepare(
    `INSERT OR IGNORE INTO lock_waiters (${WAITER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const insertSlot = db.prepare(
    `INSERT INTO lock_slots (${SLOT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
  );
  const slots = db.prepare(`SELECT ${SLOT_COLUMNS} FROM lock_slots`);
  const waiters = db.prepare(`SELECT ${WAITER_COLUMNS} FROM lock_waiters`);
  const slotsOfLock = db.prepare("SELECT slot FROM lock_slots WHERE lock = ?").pluck();
  const waitersOf = db.prepare(`SELECT ${WAITER_COLUMNS} FROM lock_waiters WHERE holder = ?`);
  const deleteWaiter = db.prepare("DELETE FROM lock_waiters WHERE holder = ? AND lock = ?");
  const deleteSlots = db.prepare("DELETE FROM lock_slots WHERE holder = ?");
  const deleteWaiters = db.prepare("DELETE FROM lock_waiters WHERE holder = ?");
  const slotsOfOwner = db.prepare("DELETE FROM lock_slots WHERE owner = ?");
  const waitersOfOwner = db.prepare("DELETE FROM lock_waiters WHERE owner = ?");

  const view = (): LockView =>
    sortView({
      slots: (slots.all() as SlotRow[]).map(slotOf),
      waiters: (waiters.all() as WaiterRow[]).map(waiterOf),
    });
  const waitTx = db.transaction((rows: readonly LockWaiterRecord[]) => {
    for (const row of rows) insertWaiter.run(...waiterArgs(row));
  });
  const takeTx = db.transaction((decide: (view: LockView) => readonly LockTake[], now: number) => {
    const taken: LockSlotRecord[] = [];
    for (const { holder, capacity } of decide(view())) {
      const rows = (waitersOf.all(holder) as WaiterRow[]).map(waiterOf);
      const granted: LockSlotRecord[] = [];
      for (const { weight: _w, priority: _p, since: _s, ...party } of rows) {
        const slot = lowestFreeSlot(
          new Set(slotsOfLock.all(party.lock) as number[]),
          capacity[party.lock] ?? 0,
        );
        if (slot === undefined) break;
        granted.push({ ...party, slot, since: now });
      }
      if (rows.length === 0 || granted.length < rows.length) continue;
      for (const slot of granted) {
        insertSlot.run(...slotArgs(slot));
        deleteWaiter.run(holder, slot.lock);
      }
      taken.push(...granted);
    }
    return taken;
  });
  const releaseTx = db.transaction((holder: string) => {
    deleteSlots.run(holder);
    deleteWaiters.run(holder);
  });
  const freeTx = db.transaction((owners: readonly string[]) => {
    let freed = 0;
    for (const owner of owners) {
      freed += slotsOfOwner.run(owner).changes;
      waitersOfOwner.run(owner);
    }
    return freed;
  });
  const runSlot = runSlotSql(() => "?");
  const heldSlot = db.prepare(runSlot.held).pluck();
  const takeSlot = db.prepare(runSlot.take).pluck();
  const holders = db.prepare(runSlot.holders).pluck();
  const takeRunSlotTx = db.transaction((key: string, runId: string, limit: number, now: number) => {
    if (heldSlot.get(key, runId) !== undefined) return true;
    for (let slot = 0; slot < limit; slot++)
      if (takeSlot.get(key, slot, runId, now) !== undefined) return true;
    return false;
  });
  return {
    async wait(rows) {
      waitTx.immediate(rows);
    },
    async takeRunSlot(key, runId, limit, now) {
      return takeRunSlotTx.immediate(key, runId, limit, now);
    },
    async runSlotHolders(key) {
      return holders.all(key) as string[];
    },
    async take(decide, now) {
      return takeTx.immediate(decide, now);
    },
    async release(holder) {
      releaseTx.immediate(holder);
    },
    async freeOwners(owners) {
      return owners.length === 0 ? 0 : freeTx.immediate(owners);
    },
    async view() {
      return view();
    },
  };
}
