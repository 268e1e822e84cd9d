/** Rows of the lock tables (migrations sqlite 0012, postgres 0003) as records, for both SQL backends. */
import type { LockParty, LockSlotRecord, LockWaiterRecord } from "./locks.js";

export interface SlotRow {
  lock: string;
  slot: number;
  holder: string;
  run_id: string;
  run_name: string | null;
  pipeline: string;
  action: string;
  job: string;
  owner: string;
  key: string;
  since: number;
}

export interface WaiterRow extends Omit<SlotRow, "slot"> {
  weight: number;
  priority: number;
}

export const SLOT_COLUMNS = "lock, slot, holder, run_id, run_name, pipeline, action, job, owner, key, since";
export const WAITER_COLUMNS =
  "lock, holder, run_id, run_name, pipeline, action, job, owner, key, weight, priority, since";

/** Who holds or waits, the same columns in both tables. */
function partyOf(row: WaiterRow | SlotRow): LockParty {
  return {
    holder: row.holder,
    runId: row.run_id,
    runName: row.run_name,
    pipeline: row.pipeline,
    action: row.action,
    job: row.job,
    owner: row.owner,
    key: row.key,
  };
}

export function slotOf(row: SlotRow): LockSlotRecord {
  return { lock: row.lock, slot: Number(row.slot), ...partyOf(row), since: Number(row.since) };
}

export function waiterOf(row: WaiterRow): LockWaiterRecord {
  return {
    lock: row.lock,
    ...partyOf(row),
    weight: Number(row.weight),
    priority: Number(row.priority),
    since: Number(row.since),
  };
}

/** A slot's values in SLOT_COLUMNS order. */
export function slotArgs(s: LockSlotRecord): unknown[] {
  return [s.lock, s.slot, s.holder, s.runId, s.runName, s.pipeline, s.action, s.job, s.owner, s.key, s.since];
}

/** A waiter's values in WAITER_COLUMNS order. */
export function waiterArgs(w: LockWaiterRecord): unknown[] {
  return [
    w.lock,
    w.holder,
    w.runId,
    w.runName,
    w.pipeline,
    w.action,
    w.job,
    w.owner,
    w.key,
    w.weight,
    w.priority,
    w.since,
  ];
}
