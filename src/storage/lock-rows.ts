/** Rows of the lock tables (migrations sqlite 0012 and 0014, postgres 0003 and 0005) as records, for both SQL backends. */
import type { LockParty, LockSlotRecord, LockWaiterRecord } from "./locks.js";
import { UNFINISHED_STATUSES } from "./types.js";

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

/** The statuses of an unfinished run, as an SQL list: a `concurrency:` slot is held only while its run is one. */
const UNFINISHED_LIST = UNFINISHED_STATUSES.map((status) => `'${status}'`).join(", ");

/**
 * The run slot statements (migrations sqlite 0014, postgres 0005) with the backend's placeholders:
 * `held` (key, run) finds the run's slot; `take` (key, slot, run, since) writes the slot unless an
 * unfinished run holds it, returning it when written; `holders` (key) lists the unfinished runs holding one.
 */
export function runSlotSql(p: (n: number) => string): { held: string; take: string; holders: string } {
  return {
    held: `SELECT slot FROM concurrency_slots WHERE key = ${p(1)} AND run_id = ${p(2)}`,
    take: `INSERT INTO concurrency_slots (key, slot, run_id, since) VALUES (${p(1)}, ${p(2)}, ${p(3)}, ${p(4)})
  ON CONFLICT (key, slot) DO UPDATE SET run_id = excluded.run_id, since = excluded.since
  WHERE NOT EXISTS (SELECT 1 FROM runs r WHERE r.id = concurrency_slots.run_id AND r.status IN (${UNFINISHED_LIST}))
  RETURNING slot`,
    holders: `SELECT s.run_id FROM concurrency_slots s JOIN runs r ON r.id = s.run_id
  WHERE s.key = ${p(1)} AND r.status IN (${UNFINISHED_LIST}) ORDER BY s.slot`,
  };
}
