/**
 * The lock store in PostgreSQL (tables of migrations 0003 and 0005). Takes are serialized by an advisory lock
 * (so the caller's fair order is decided on a view nobody changes meanwhile), and each slot is written
 * by one statement that picks the lowest free slot number below capacity: the (lock, slot) primary
 * key refuses a second holder of a slot whatever the interleaving, advisory lock or not. Changes
 * notify the other workers (LISTEN/NOTIFY), at commit.
 */
import type pg from "pg";
import {
  runSlotSql,
  SLOT_COLUMNS,
  type SlotRow,
  slotOf,
  WAITER_COLUMNS,
  type WaiterRow,
  waiterArgs,
  waiterOf,
} from "../lock-rows.js";
import type { LockSlotRecord, LockStore, LockView } from "../locks.js";
import { sortView } from "../locks.js";
import { ChangeListener, LOCKS_CHANNEL, NOTIFY_CHANGE } from "./changes.js";
import type { Client, Connection } from "./connection.js";

/** Serializes takes across the database's workers (the migrations' lock is ...502). */
const TAKE_LOCK = "SELECT pg_advisory_xact_lock(7491827364503)";

const INSERT_WAITER = `INSERT INTO lock_waiters (${WAITER_COLUMNS})
  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (holder, lock) DO NOTHING`;

/** The lowest slot below capacity ($2) that nobody holds, in one statement; no row when all are held. */
const TAKE_SLOT = `INSERT INTO lock_slots (${SLOT_COLUMNS})
  SELECT $1::text, s, $3::text, $4::text, $5::text, $6::text, $7::text, $8::text, $9::text, $10::text, $11::bigint
  FROM generate_series(0, $2::int - 1) AS s
  WHERE NOT EXISTS (SELECT 1 FROM lock_slots l WHERE l.lock = $1::text AND l.slot = s)
  ORDER BY s LIMIT 1
  RETURNING slot`;

/** The store over a migrated database; `close` stops listening for other workers' changes. */
export function postgresLockStore(db: Connection, schema: string | undefined): LockStore & { close(): void } {
  const listener = new ChangeListener(db.config, schema, LOCKS_CHANNEL);
  const notify = (client: Client) => client.query(NOTIFY_CHANGE, [LOCKS_CHANNEL, schema ?? ""]);
  const readView = async (on?: Client): Promise<LockView> => {
    const query = <R extends pg.QueryResultRow>(text: string) => (on ? on.query<R>(text) : db.query<R>(text));
    const slots = await query<SlotRow>(`SELECT ${SLOT_COLUMNS} FROM lock_slots`);
    const waiters = await query<WaiterRow>(`SELECT ${WAITER_COLUMNS} FROM lock_waiters`);
    return sortView({ slots: slots.rows.map(slotOf), waiters: waiters.rows.map(waiterOf) });
  };
  const runSlot = runSlotSql((n) => `$${n}`);
  return {
    async takeRunSlot(key, runId, limit, now) {
      // Each slot's row is written by one statement, which waits for a concurrent writer of that row
      // and then sees whether its run is active: no advisory lock needed.
      return db.transaction(async (client) => {
        if ((await client.query(runSlot.held, [key, runId])).rows.length > 0) return true;
        for (let slot = 0; slot < limit; slot++)
          if ((await client.query(runSlot.take, [key, slot, runId, now])).rows.length > 0) return true;
        return false;
      });
    },
    async runSlotHolders(key) {
      return (await db.query<{ run_id: string }>(runSlot.holders, [key])).rows.map((row) => row.run_id);
    },
    async wait(rows) {
      if (rows.length === 0) return;
      await db.transaction(async (client) => {
        for (const row of rows) await client.query(INSERT_WAITER, waiterArgs(row));
        await notify(client);
      });
    },
    async take(decide, now) {
      return db.transaction(async (client) => {
        await client.query(TAKE_LOCK);
        const view = await readView(client);
        const taken: LockSlotRecord[] = [];
        for (const { holder, capacity } of decide(view)) {
          const rows = view.waiters.filter((w) => w.holder === holder);
          if (rows.length === 0) continue;
          await client.query("SAVEPOINT take");
          const granted: LockSlotRecord[] = [];
          for (const { weight: _w, priority: _p, since: _s, ...party } of rows) {
            const result = await client.query<{ slot: number }>(TAKE_SLOT, [
              party.lock,
              capacity[party.lock] ?? 0,
              party.holder,
              party.runId,
              party.runName,
              party.pipeline,
              party.action,
              party.job,
              party.owner,
              party.key,
              now,
            ]);
            const row = result.rows[0];
            if (!row) break;
            granted.push({ ...party, slot: Number(row.slot), since: now });
          }
          if (granted.length < rows.length) {
            await client.query("ROLLBACK TO SAVEPOINT take");
            continue;
          }
          await client.query("DELETE FROM lock_waiters WHERE holder = $1", [holder]);
          await client.query("RELEASE SAVEPOINT take");
          taken.push(...granted);
        }
        if (taken.length > 0) await notify(client);
        return taken;
      });
    },
    async release(holder) {
      await db.transaction(async (client) => {
        const slots = await client.query("DELETE FROM lock_slots WHERE holder = $1", [holder]);
        const waiters = await client.query("DELETE FROM lock_waiters WHERE holder = $1", [holder]);
        if ((slots.rowCount ?? 0) + (waiters.rowCount ?? 0) > 0) await notify(client);
      });
    },
    async freeOwners(owners) {
      if (owners.length === 0) return 0;
      return db.transaction(async (client) => {
        const slots = await client.query("DELETE FROM lock_slots WHERE owner = ANY($1)", [owners]);
        const waiters = await client.query("DELETE FROM lock_waiters WHERE owner = ANY($1)", [owners]);
        if ((slots.rowCount ?? 0) + (waiters.rowCount ?? 0) > 0) await notify(client);
        return slots.rowCount ?? 0;
      });
    },
    view: () => readView(),
    onChange: (changed) => listener.subscribe(changed),
    close: () => listener.close(),
  };
}
