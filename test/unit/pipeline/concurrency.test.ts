/**
 * The `concurrency:` gate decided from storage: the count orders the runs, the key's slots make the
 * limit hold even when a run appears, older by its creation time, after a newer one went through (its
 * commit came late, from another worker).
 */
import { describe, expect, it } from "vitest";
import type { ActionContext } from "../../../src/definition/types.js";
import { concurrencyCheck, runRoster } from "../../../src/pipeline/concurrency.js";
import type { StepContext } from "../../../src/pipeline/step-context.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import type { Storage } from "../../../src/storage/types.js";
import { createTransition, runRecord } from "../../../src/testing/records.js";

const SAGA = "deploy";

function runOf(id: string, createdAt: number) {
  const input = { run: { file: "/p/deploy.yml", source: "", inputs: {}, tiers: [], key: "prod" } };
  return runRecord(id, { saga: SAGA, input, createdAt, owner: "w" });
}

async function add(storage: Storage, id: string, createdAt: number): Promise<void> {
  expect(await storage.commit([createTransition(runOf(id, createdAt), "w")])).toEqual(["ok"]);
}

async function end(storage: Storage, id: string): Promise<void> {
  expect(await storage.commit([{ runId: id, owner: "w", run: { status: "completed", endedAt: 1 } }])).toEqual(
    ["ok"],
  );
}

function gate(storage: Storage, limit: number) {
  const cancelled: string[] = [];
  const executor = { clock: { now: () => 1_000 }, cancel: async (id: string) => void cancelled.push(id) };
  const context = {
    plan: { key: "prod", pipeline: { concurrency: { limit, cancelInProgress: false } } },
    runtime: { runs: runRoster(storage, executor as never) },
  } as unknown as StepContext;
  return (runId: string) => concurrencyCheck(context, { saga: SAGA, runId } as ActionContext);
}

describe("concurrency gate", () => {
  it("keeps the limit when an older run is committed after a newer one went through", async () => {
    const storage = new MemoryStorage();
    await storage.init();
    const check = gate(storage, 1);
    await add(storage, "newer", 200);
    expect((await check("newer")).done).toBe(true);
    // Created earlier, committed later (another worker's late commit): by the count it is first in line.
    await add(storage, "older", 100);
    const waiting = await check("older");
    expect(waiting.done).toBe(false);
    expect(waiting).toMatchObject({ message: expect.stringContaining("newer (running since") });
    await end(storage, "newer");
    expect((await check("older")).done).toBe(true);
  });

  it("keeps a run's slot while it is held after a failure, so its retry goes on within the limit", async () => {
    const storage = new MemoryStorage();
    await storage.init();
    const check = gate(storage, 1);
    await add(storage, "first", 100);
    expect((await check("first")).done).toBe(true);
    // on_failure: hold — failed, not ended: a retry continues past its gate, with the slot it holds.
    expect(await storage.commit([{ runId: "first", owner: "w", run: { status: "failed" } }])).toEqual(["ok"]);
    await add(storage, "second", 200);
    const waiting = await check("second");
    expect(waiting.done).toBe(false);
    expect(waiting).toMatchObject({ message: expect.stringContaining("first (failed since") });
    await end(storage, "first");
    expect((await check("second")).done).toBe(true);
  });

  it("lets runs through in order of creation, up to the limit", async () => {
    const storage = new MemoryStorage();
    await storage.init();
    const check = gate(storage, 2);
    for (const [id, at] of [
      ["r1", 1],
      ["r2", 2],
      ["r3", 3],
    ] as const)
      await add(storage, id, at);
    expect((await check("r3")).done).toBe(false);
    expect((await check("r1")).done).toBe(true);
    expect((await check("r2")).done).toBe(true);
    const third = await check("r3");
    expect(third).toMatchObject({ done: false, message: expect.stringContaining("limit 2") });
    await end(storage, "r1");
    expect((await check("r3")).done).toBe(true);
  });
});
