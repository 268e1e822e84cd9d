/**
 * Storage that throws on a write (a full disk): the request that hit it fails with the reason, the
 * runs whose commit failed are dropped from memory (nothing ahead of what is stored, no action
 * slot kept) and continue from storage once writes succeed again.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { diskFullError, SlipwayError } from "../../../src/errors.js";
import type { Storage } from "../../../src/storage/types.js";
import { runRecord } from "../../../src/testing/records.js";
import { backends, captureLogs, deadExecutor, eventually, harness, within } from "../../helpers.js";

/** Makes the storage's writes throw as SQLite does on a full disk while `full` is set. */
function fillable(storage: Storage): { full: boolean; failed: number } {
  const state = { full: false, failed: 0 };
  const fail = () => {
    state.failed++;
    const sqlite = Object.assign(new Error("database or disk is full"), { code: "SQLITE_FULL" });
    throw diskFullError(sqlite, "the database /volume/slipway.db");
  };
  const commit = storage.commit.bind(storage);
  storage.commit = async (transitions) => (state.full ? fail() : commit(transitions));
  const claimMany = storage.claimMany.bind(storage);
  storage.claimMany = async (requests) => (state.full ? fail() : claimMany(requests));
  return state;
}

const ran: string[] = [];
let release: () => void = () => {};
const twoSteps = saga("two-steps", { version: 1 })
  .action("first", {
    produces: { made: z.string() },
    run: async () => {
      ran.push("first");
      // The first run waits for the test; a re-run goes straight through.
      if (ran.filter((r) => r === "first").length === 1) await new Promise<void>((r) => (release = r));
      return { made: "yes" };
    },
  })
  .action("second", { reads: ["made"], run: () => void ran.push("second") })
  .build();

const gates = new Map<string, () => void>();
/** An action that waits for the test once (`open(name)`), then returns at once when run again. */
const gated = (name: string) => async () => {
  ran.push(name);
  if (ran.filter((r) => r === name).length === 1) await new Promise<void>((r) => gates.set(name, r));
};
const parallel = saga("parallel", { version: 1 })
  .action("left", { run: gated("left") })
  .action("right", { run: gated("right") })
  .build();

describe.each(backends)("a full disk under storage on $name", (backend) => {
  it("fails a start with the disk-full reason and leaves nothing; a start works once space is back", async () => {
    const h = harness(backend);
    const disk = fillable(h.storage);
    ran.length = 0;
    const executor = await h.executor({ sagas: [twoSteps] });
    disk.full = true;
    const id = executor.newRunId();
    const refused = await executor.start(twoSteps, {}, { id }).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SlipwayError);
    expect((refused as SlipwayError).code).toBe("disk_full");
    expect((refused as SlipwayError).message).toBe(
      "the disk is full: cannot write the database /volume/slipway.db",
    );
    expect(await h.storage.getRun(id)).toBeUndefined();
    expect(executor.activeRuns).toBe(0);
    expect(ran).toEqual([]);

    disk.full = false;
    const handle = await executor.start(twoSteps, {}, { id });
    release();
    expect((await within(handle.result(), "the run after space is back")).status).toBe("completed");
  });

  it("drops a run whose commit failed, keeps no slot, and continues it from storage once writes succeed", async () => {
    const h = harness(backend);
    const disk = fillable(h.storage);
    ran.length = 0;
    // One action slot: a slot kept by the dropped run would stall it for good.
    const executor = await h.executor({ sagas: [twoSteps], maxConcurrentActions: 1 });
    const handle = await executor.start(twoSteps, {});
    await eventually(() => ran.includes("first"), "the first action to run");
    disk.full = true;
    // `first` completes, but its completion (and the start of `second`) cannot be stored.
    release();
    await eventually(() => disk.failed > 0 && executor.activeRuns === 0, "the run to be dropped");
    const stored = await executor.get(handle.id);
    expect(stored!.run.status).toBe("running");
    expect(stored!.steps.map((s) => [s.action, s.status])).toEqual([["first", "running"]]);
    expect(ran).toEqual(["first"]);

    disk.full = false;
    const result = await within(handle.result(), "the run to continue once writes succeed");
    expect(result.status).toBe("completed");
    // What was not stored happens again (as after a crash): `first` re-runs, `second` runs once.
    expect(ran).toEqual(["first", "first", "second"]);
    const steps = (await executor.get(handle.id))!.steps;
    expect(steps.map((s) => [s.action, s.status, s.attempt])).toEqual([
      ["first", "completed", 2],
      ["second", "completed", 1],
    ]);
  });

  it("does not write what a run decided after a commit that failed (its memory ran ahead)", async () => {
    const h = harness(backend);
    ran.length = 0;
    gates.clear();
    const executor = await h.executor({ sagas: [parallel] });
    const handle = await executor.start(parallel, {});
    await eventually(() => gates.has("left") && gates.has("right"), "both actions to run");
    // The next group commit waits for the test: what is decided meanwhile goes to the one after.
    const commit = h.storage.commit.bind(h.storage);
    let fail!: (error: unknown) => void;
    let held = false;
    const written: string[][] = [];
    h.storage.commit = (transitions) => {
      if (!held) {
        held = true;
        return new Promise((_, reject) => (fail = reject));
      }
      written.push(transitions.flatMap((t) => (t.steps ?? []).map((s) => `${s.action} ${s.status}`)));
      return commit(transitions);
    };
    gates.get("left")!();
    await eventually(() => held, "left's completion to be committed");
    gates.get("right")!();
    // right's completion is decided on top of left's (within this turn), and queued behind it.
    await new Promise((resolve) => setImmediate(resolve));
    fail(diskFullError(Object.assign(new Error("disk full"), { code: "SQLITE_FULL" }), "the database"));
    await eventually(() => executor.activeRuns === 0, "the run to be dropped");
    const result = await within(handle.result(), "the run to continue from storage");
    expect(result.status).toBe("completed");
    // right's completion was never written: the next write is the continuation from what was stored,
    // where both ran again.
    expect(written[0]).toEqual(["left running", "right running"]);
    expect(ran.sort()).toEqual(["left", "left", "right", "right"]);
    const seqs = (await executor.history(handle.id)).map((e) => e.seq);
    expect(seqs).toEqual(seqs.map((_, i) => i + 1));
  });

  it("logs a run of a retired version it cannot mark as needing attention, and marks it once writes succeed", async () => {
    const h = harness(backend);
    const disk = fillable(h.storage);
    await h.storage.init();
    const long = await deadExecutor(h.storage);
    const left = runRecord("old-1", {
      saga: "two-steps",
      version: 0, // retired: only version 1 is registered
      input: {},
      owner: "ghost",
      createdAt: long,
      updatedAt: long,
    });
    expect(await h.storage.commit([{ runId: left.id, owner: "ghost", create: left }])).toEqual(["ok"]);
    disk.full = true;
    // Recovery at open takes the run over and cannot write that it needs attention: said in the log
    // (it was a rejection nobody handled, which ends a server), not thrown.
    const { lines, logger } = captureLogs();
    await h.executor({ sagas: [twoSteps], logger });
    await eventually(
      () => lines.some((l) => l.msg === "could not mark a run as needing attention"),
      "the failed write to be logged",
    );
    disk.full = false;
    await eventually(
      async () => (await h.storage.getRun(left.id))?.status === "needs_attention",
      "the run to need attention once writes succeed",
    );
  });
});
