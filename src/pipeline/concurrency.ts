/**
 * `concurrency:`: a run's durable gate before its jobs. It counts the other unfinished runs of its key
 * in storage (so runs of other processes count), waits, holding nothing, for its turn, and then takes
 * one of the key's slots in storage, held until the run ends (a run held after a failure keeps it, so
 * its retry goes on within the limit): the count orders the runs, the
 * slots make the limit hold in the database, whatever the interleaving of workers (a run counted
 * after another went through, having committed later than it was created, finds the slot taken).
 */
import type { ActionContext, PollResult } from "../definition/types.js";
import type { Executor } from "../engine/executor.js";
import { clockTime, ordinal } from "../format.js";
import { type RunRecord, type Storage, UNFINISHED_STATUSES } from "../storage/types.js";
import { runSpecOf } from "./run-spec.js";
import type { RunRoster, StepContext } from "./step-context.js";

/** The run roster of a storage, cancelling through an executor (which persists the request for the run's owner). */
export function runRoster(storage: Storage, executor: Pick<Executor, "cancel" | "clock">): RunRoster {
  const locks = storage.locks?.();
  return {
    unfinished: (saga) => storage.listRuns({ sagas: [saga], statuses: UNFINISHED_STATUSES }),
    cancel: async (runId, reason) => {
      await executor.cancel(runId, reason);
    },
    takeSlot: async (slotKey, runId, limit) =>
      locks ? locks.takeRunSlot(slotKey, runId, limit, executor.clock.now()) : true,
    slotHolders: async (slotKey) => (locks ? locks.runSlotHolders(slotKey) : []),
  };
}

/**
 * A run's turn under `concurrency:`: at most `limit` unfinished runs of one key, first come first
 * served (runs queued ahead count), or with `cancel_in_progress` the older ones are cancelled (their
 * undos run) and this one goes once they have ended. Counted from storage, so runs in other
 * processes count too.
 */
export async function concurrencyCheck(
  context: StepContext,
  ctx: ActionContext,
): Promise<PollResult<Record<string, unknown>>> {
  const concurrency = context.plan.pipeline.concurrency!;
  const runs = context.runtime.runs;
  if (!runs) return { done: true, output: {} };
  const key = context.plan.key;
  const peers = (await runs.unfinished(ctx.saga))
    .filter((r) => runSpecOf(r)?.key === key)
    .sort((a, b) => a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1));
  const ahead = peers.slice(
    0,
    Math.max(
      0,
      peers.findIndex((r) => r.id === ctx.runId),
    ),
  );
  const who = (list: readonly RunRecord[]) =>
    list.map((r) => `${r.runName ?? r.id} (${r.status} since ${clockTime(r.createdAt)})`).join(", ");
  // Its turn by the count: now a slot, or wait for the runs that hold them all.
  const slotKey = JSON.stringify([ctx.saga, key]); // unambiguous, and text PostgreSQL can hold (no NUL)
  const limit = concurrency.cancelInProgress ? 1 : concurrency.limit;
  const take = async (): Promise<PollResult<Record<string, unknown>>> => {
    if (await runs.takeSlot(slotKey, ctx.runId, limit)) return { done: true, output: {} };
    const holders = new Set(await runs.slotHolders(slotKey));
    return {
      done: false,
      message: `waits for concurrency key ${key} (limit ${limit}): ${who(peers.filter((r) => holders.has(r.id))) || "its slots are held"}`,
    };
  };
  if (concurrency.cancelInProgress) {
    for (const older of ahead)
      if (older.cancelRequested === null) await runs.cancel(older.id, `superseded by run ${ctx.runId}`);
    if (ahead.length === 0) return take();
    return {
      done: false,
      message: `waits for concurrency key ${key}: older runs cancelled, undoing: ${who(ahead)}`,
    };
  }
  if (ahead.length < concurrency.limit) return take();
  const running = ahead.slice(0, concurrency.limit);
  const place = ahead.length - concurrency.limit + 1;
  return {
    done: false,
    message: `waits for concurrency key ${key} (limit ${concurrency.limit}): ${who(running)}; ${ordinal(place)} in line`,
  };
}
