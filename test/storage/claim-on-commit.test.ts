/**
 * The optional batched reads (`loadMany`, `getExecutions`) and the claim folded into a transition
 * (`Transition.claim`), on both backends: what the engine relies on to wake executions with one write.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MemoryStorage } from "../../src/storage/memory.js";
import { SqliteStorage } from "../../src/storage/sqlite/sqlite-storage.js";
import type { Storage } from "../../src/storage/types.js";
import { createTransition, eventRecord, executionRecord, stepRecord } from "../../src/testing/records.js";

const dir = mkdtempSync(join(tmpdir(), "slipway-claim-on-commit-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

const backends: { name: string; open: () => Storage }[] = [
  { name: "memory", open: () => new MemoryStorage() },
  { name: "sqlite", open: () => new SqliteStorage({ path: join(dir, `claim-${++files}.db`) }) },
];

const A = "executor-a";
const B = "executor-b";

/** A parked execution (waiting, unowned) with two steps, one event and a pending signal. */
async function parked(storage: Storage, id: string): Promise<void> {
  const execution = executionRecord(id, { status: "waiting", wakeAt: null });
  expect(
    await storage.commit([
      createTransition(execution, A, {
        execution: { release: true },
        steps: [stepRecord(id, "first", { status: "completed", output: { n: 1 } }), stepRecord(id, "wait")],
        events: [eventRecord(id, 1)],
      }),
    ]),
  ).toEqual(["ok"]);
  await storage.addSignal({ executionId: id, name: "go", payload: { ok: true }, createdAt: 1 });
}

describe.each(backends)("claim on commit and batched reads on $name", ({ open }) => {
  it("loadMany answers like load, in order, with a fresh object per answer", async () => {
    const storage = open();
    await storage.init();
    try {
      for (const id of ["x1", "x2", "x3"]) await parked(storage, id);
      const ids = ["x3", "missing", "x1", "x2", "x1"];
      const many = await storage.loadMany!(ids);
      expect(many).toEqual(await Promise.all(ids.map((id) => storage.load(id))));
      expect(many[1]).toBeUndefined();
      expect(many[2]).not.toBe(many[4]);
      expect(many[0]!.steps.map((s) => s.action)).toEqual(["first", "wait"]);
      expect(many[0]!.signals.map((s) => s.name)).toEqual(["go"]);
      expect(many[0]!.nextEventSeq).toBe(2);
      expect(await storage.loadMany!([])).toEqual([]);
    } finally {
      await storage.close();
    }
  });

  it("getExecutions answers like getExecution, in order", async () => {
    const storage = open();
    await storage.init();
    try {
      for (const id of ["y1", "y2"]) await parked(storage, id);
      const ids = ["y2", "nope", "y1", "y2"];
      expect(await storage.getExecutions!(ids)).toEqual(
        await Promise.all(ids.map((id) => storage.getExecution(id))),
      );
      expect(await storage.getExecutions!([])).toEqual([]);
    } finally {
      await storage.close();
    }
  });

  it("a claiming transition commits at the loaded revision and takes ownership", async () => {
    const storage = open();
    await storage.init();
    try {
      await parked(storage, "e1");
      const [snapshot] = await storage.loadMany!(["e1"]);
      const revision = snapshot!.execution.revision;
      const results = await storage.commit([
        {
          executionId: "e1",
          owner: A,
          claim: { revision },
          execution: { status: "running", wakeAt: null },
          steps: [stepRecord("e1", "wait", { status: "completed", output: { ok: true } })],
          events: [eventRecord("e1", 2, { type: "action:completed", action: "wait" })],
          consumeSignals: [{ seq: snapshot!.signals[0]!.seq, action: "wait" }],
        },
        // A later transition of the same batch passes the ordinary ownership check.
        { executionId: "e1", owner: A, execution: { status: "completed", release: true } },
      ]);
      expect(results).toEqual(["ok", "ok"]);
      const after = (await storage.load("e1"))!;
      expect(after.execution.status).toBe("completed");
      expect(after.execution.owner).toBeNull();
      expect(after.execution.revision).toBe(revision + 2);
      expect(after.signals).toEqual([]);
      expect(after.steps.find((s) => s.action === "wait")!.status).toBe("completed");
    } finally {
      await storage.close();
    }
  });

  it("a claiming transition that releases leaves the execution unowned", async () => {
    const storage = open();
    await storage.init();
    try {
      await parked(storage, "e2");
      const revision = (await storage.getExecution("e2"))!.revision;
      expect(
        await storage.commit([
          { executionId: "e2", owner: B, claim: { revision }, execution: { wakeAt: 5, release: true } },
        ]),
      ).toEqual(["ok"]);
      const record = (await storage.getExecution("e2"))!;
      expect(record.owner).toBeNull();
      expect(record.wakeAt).toBe(5);
      expect(record.revision).toBe(revision + 1);
    } finally {
      await storage.close();
    }
  });

  it("a claiming transition whose revision moved writes nothing, whoever moved it", async () => {
    const storage = open();
    await storage.init();
    try {
      await parked(storage, "e3");
      const [loaded] = await storage.loadMany!(["e3"]);
      // Someone else claims it between our read and our commit.
      expect(await storage.claim({ executionId: "e3", owner: B })).toBeDefined();
      const before = await storage.load("e3");
      expect(
        await storage.commit([
          {
            executionId: "e3",
            owner: A,
            claim: { revision: loaded!.execution.revision },
            execution: { status: "running" },
            steps: [stepRecord("e3", "wait", { status: "completed" })],
            events: [eventRecord("e3", 2)],
            consumeSignals: [{ seq: loaded!.signals[0]!.seq, action: "wait" }],
          },
          // ... and what we queued after it fails the ownership check.
          { executionId: "e3", owner: A, execution: { status: "completed", release: true } },
        ]),
      ).toEqual(["not_owner", "not_owner"]);
      expect(await storage.load("e3")).toEqual(before);
      expect((await storage.getExecution("e3"))!.owner).toBe(B);
      // Two claimers of the same revision: exactly one wins.
      const revision = before!.execution.revision;
      const both = await storage.commit([
        { executionId: "e3", owner: A, claim: { revision } },
        { executionId: "e3", owner: B, claim: { revision } },
      ]);
      expect(both).toEqual(["ok", "not_owner"]);
      expect((await storage.getExecution("e3"))!.owner).toBe(A);
      expect(await storage.commit([{ executionId: "missing", owner: A, claim: { revision: 0 } }])).toEqual([
        "not_owner",
      ]);
    } finally {
      await storage.close();
    }
  });
});
