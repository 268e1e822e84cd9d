/** Conformance cases for the optional lock store: slots below capacity, one holder per slot, dead owners freed. */
import assert from "node:assert/strict";
import type { LockStore, LockTake, LockView, LockWaiterRecord } from "../../storage/locks.js";
import type { Storage } from "../../storage/types.js";
import { createTransition, runRecord } from "../records.js";

function waiter(holder: string, lock: string, overrides: Partial<LockWaiterRecord> = {}): LockWaiterRecord {
  return {
    lock,
    holder,
    runId: `run-${holder}`,
    runName: null,
    pipeline: "deploy",
    action: "deploy",
    job: "deploy",
    owner: "worker-a",
    key: "deploy",
    weight: 1,
    priority: 0,
    since: 100,
    ...overrides,
  };
}

/** Asks for every waiting holder in `holders`, whatever the view says: the store must refuse what does not fit. */
const grant =
  (capacity: Record<string, number>, ...holders: string[]) =>
  (_view: LockView): LockTake[] =>
    holders.map((holder) => ({ holder, capacity }));

export async function lockSlotsBelowCapacity(storage: Storage): Promise<void> {
  const store = storage.locks!();
  await store.wait([waiter("h1", "swarm"), waiter("h2", "swarm", { since: 101 }), waiter("h3", "swarm")]);
  await store.wait([waiter("h4", "db", { runName: "r-4 ✓", owner: "worker-b" }), waiter("h4", "swarm")]);
  // A holder queued again is left as it was.
  await store.wait([waiter("h1", "swarm", { since: 999 })]);
  let view = await store.view();
  assert.deepEqual(
    view.waiters.map((w) => [w.holder, w.lock, w.since]),
    [
      ["h1", "swarm", 100],
      ["h3", "swarm", 100],
      ["h4", "db", 100],
      ["h4", "swarm", 100],
      ["h2", "swarm", 101],
    ],
    "waiters by since, holder, lock",
  );
  assert.deepEqual(view.slots, []);

  const taken = await store.take(grant({ swarm: 2, db: 1 }, "h1", "h2", "h3"), 500);
  assert.deepEqual(
    taken.map((s) => [s.holder, s.lock, s.slot, s.since]),
    [
      ["h1", "swarm", 0, 500],
      ["h2", "swarm", 1, 500],
    ],
    "lowest free slots below capacity; h3 finds none and gets nothing",
  );
  // The view is what take saw: a decision on it.
  let seen: LockView | undefined;
  assert.deepEqual(
    await store.take((v) => {
      seen = v;
      return [{ holder: "h4", capacity: { swarm: 2, db: 1 } }];
    }, 600),
    [],
    "all or nothing: h4 gets db but not swarm, so neither",
  );
  assert.deepEqual(
    seen?.slots.map((s) => [s.lock, s.slot, s.holder]),
    [
      ["swarm", 0, "h1"],
      ["swarm", 1, "h2"],
    ],
  );
  view = await store.view();
  assert.deepEqual(
    view.waiters.map((w) => [w.holder, w.lock]),
    [
      ["h3", "swarm"],
      ["h4", "db"],
      ["h4", "swarm"],
    ],
  );
  assert.deepEqual(view.slots[0], {
    lock: "swarm",
    slot: 0,
    holder: "h1",
    runId: "run-h1",
    runName: null,
    pipeline: "deploy",
    action: "deploy",
    job: "deploy",
    owner: "worker-a",
    key: "deploy",
    since: 500,
  });

  // A released slot is free again, and the lowest one is taken first.
  await store.release("h1");
  const again = await store.take(grant({ swarm: 2, db: 1 }, "h4", "h3"), 700);
  assert.deepEqual(
    again.map((s) => [s.holder, s.lock, s.slot, s.owner, s.runName]),
    [
      ["h4", "db", 0, "worker-b", "r-4 ✓"],
      ["h4", "swarm", 0, "worker-a", null],
    ],
  );
  // A waiter withdrawn by release is gone; taking an unknown holder writes nothing.
  await store.release("h3");
  assert.deepEqual(await store.take(grant({ swarm: 5 }, "h3", "nobody"), 800), []);
  view = await store.view();
  assert.deepEqual(
    view.slots.map((s) => [s.lock, s.slot, s.holder]),
    [
      ["db", 0, "h4"],
      ["swarm", 0, "h4"],
      ["swarm", 1, "h2"],
    ],
  );
  assert.deepEqual(view.waiters, []);
}

export async function lockConcurrentTakes(storage: Storage): Promise<void> {
  const store = storage.locks!();
  const holders = Array.from({ length: 8 }, (_, i) => `h${i}`);
  await store.wait(holders.map((h) => waiter(h, "swarm")));
  // Each taker asks for its own holder at once, as workers would: exactly one gets the slot.
  const results = await Promise.allSettled(holders.map((h) => store.take(grant({ swarm: 1 }, h), 10)));
  const won = results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
  assert.equal(won.length, 1, "one holder of a 1-slot lock");
  const view = await store.view();
  assert.deepEqual(
    view.slots.map((s) => [s.lock, s.slot, s.holder]),
    [["swarm", 0, won[0]!.holder]],
  );
  assert.equal(view.waiters.length, 7);
  await store.release(won[0]!.holder);
  const next = await store.take(grant({ swarm: 1 }, ...holders), 20);
  assert.equal(next.length, 1, "the slot is free again, for one");
}

export async function lockDeadOwnersFreed(storage: Storage): Promise<void> {
  const store: LockStore = storage.locks!();
  await store.wait([
    waiter("a1", "swarm", { owner: "dead" }),
    waiter("b1", "db", { owner: "alive" }),
    waiter("a2", "db", { owner: "dead" }),
    waiter("b2", "swarm", { owner: "alive" }),
  ]);
  await store.take(grant({ swarm: 1, db: 1 }, "a1", "b1"), 5);
  assert.equal(await store.freeOwners(["dead", "unknown"]), 1, "one slot freed");
  assert.equal(await store.freeOwners([]), 0);
  const view = await store.view();
  assert.deepEqual(
    view.slots.map((s) => s.holder),
    ["b1"],
  );
  assert.deepEqual(
    view.waiters.map((w) => w.holder),
    ["b2"],
    "the dead owner's waiting rows are gone too",
  );
  assert.deepEqual(
    (await store.take(grant({ swarm: 1 }, "b2"), 6)).map((s) => [s.holder, s.slot]),
    [["b2", 0]],
    "the freed slot is taken",
  );
}

/** Active runs `ids` (owned by `owner`), written as a worker would. */
async function activeRuns(storage: Storage, ids: readonly string[], owner: string): Promise<void> {
  const results = await storage.commit(ids.map((id) => createTransition(runRecord(id, { owner }), owner)));
  assert.deepEqual(
    results,
    ids.map(() => "ok"),
  );
}

export async function runSlotsWhileActive(storage: Storage): Promise<void> {
  const store = storage.locks!();
  await activeRuns(storage, ["a", "b", "c", "d"], "w");
  assert.equal(await store.takeRunSlot("deploy/main", "a", 1, 10), true, "a free slot");
  assert.equal(await store.takeRunSlot("deploy/main", "b", 1, 11), false, "held by an unfinished run");
  assert.equal(
    await store.takeRunSlot("deploy/main", "a", 1, 12),
    true,
    "a holder asking again still holds it",
  );
  assert.equal(await store.takeRunSlot("deploy/other", "b", 1, 13), true, "another key has slots of its own");
  assert.deepEqual(await store.runSlotHolders("deploy/main"), ["a"]);

  // Held after a failure (or needing attention), a run keeps its slot: its retry goes on within the limit.
  const [held] = await storage.commit([{ runId: "a", owner: "w", run: { status: "failed" } }]);
  assert.equal(held, "ok");
  assert.equal(
    await store.takeRunSlot("deploy/main", "b", 1, 14),
    false,
    "held by a run held after a failure",
  );
  assert.deepEqual(await store.runSlotHolders("deploy/main"), ["a"]);
  // Nobody releases a slot: once its run has ended, the next run takes it over.
  const [ended] = await storage.commit([
    { runId: "a", owner: "w", run: { status: "completed", endedAt: 20 } },
  ]);
  assert.equal(ended, "ok");
  assert.deepEqual(await store.runSlotHolders("deploy/main"), [], "an ended run holds nothing");
  assert.equal(await store.takeRunSlot("deploy/main", "b", 1, 21), true, "taken over from the ended run");
  assert.equal(await store.takeRunSlot("deploy/main", "c", 2, 22), true, "a limit of 2: the next slot");
  assert.equal(await store.takeRunSlot("deploy/main", "d", 2, 23), false, "both slots held");
  assert.deepEqual(await store.runSlotHolders("deploy/main"), ["b", "c"], "by slot");
  // A run that is gone (pruned) holds nothing either.
  await storage.commit([{ runId: "b", owner: "w", run: { status: "cancelled", endedAt: 30 } }]);
  assert.equal(await storage.deleteRun("b"), true);
  assert.equal(await store.takeRunSlot("deploy/main", "d", 2, 31), true, "the deleted run's slot");
  assert.deepEqual(await store.runSlotHolders("deploy/main"), ["d", "c"]);
}

export async function runSlotsConcurrentTakes(storage: Storage): Promise<void> {
  const store = storage.locks!();
  const ids = Array.from({ length: 8 }, (_, i) => `r${i}`);
  await activeRuns(storage, ids, "w");
  // Every run asks at once, as workers would: exactly `limit` of them get a slot.
  const results = await Promise.all(ids.map((id) => store.takeRunSlot("swarm", id, 2, 5)));
  assert.equal(results.filter(Boolean).length, 2, "two holders of a 2-slot key");
  const holders = await store.runSlotHolders("swarm");
  assert.deepEqual([...holders].sort(), ids.filter((_, i) => results[i]).sort());
}
