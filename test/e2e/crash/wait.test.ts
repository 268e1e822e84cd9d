/** Crash test (c): SIGKILL during durable waits for a signal and during polls; a new process picks each wait up where it was. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Executor, type SqliteStorage } from "../../../src/index.js";
import { blockKey, type SagaName } from "./fixtures/protocol.js";
import { READY_FILE } from "./fixtures/sagas.js";
import { keysOf, lifecycle, seqProblems, stepStatuses, summarize, trail, Workspace } from "./harness.js";

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

/** Acts the way an operator's tool would: through an executor that hosts no saga, in a process that runs nothing. */
async function fromOutside(storage: SqliteStorage, act: (ops: Executor) => Promise<unknown>): Promise<void> {
  const ops = await Executor.open({ storage, sagas: [], dataDir: join(ws.dir, "ops"), recover: false });
  try {
    await act(ops);
  } finally {
    await ops.close();
  }
}

const SIGNAL_WAITS = [
  // No timeout: nothing to wake it, so the waiting run leaves memory and storage holds it unowned.
  { saga: "approval" as const, held: "unowned", executor: {}, parked: ["run:waiting"] },
  // A timeout within evictAfterMs: the run stays in memory, owned by the process that gets killed.
  { saga: "approvalTimed" as const, held: "owned", executor: { evictAfterMs: 120_000 }, parked: [] },
];

/** Starts a run, kills its process once the signal wait is armed (held as asked); returns what it left. */
async function killWhileWaitingForSignal({ saga, held, executor }: (typeof SIGNAL_WAITS)[number]) {
  ws = new Workspace();
  const storage = await ws.storage();
  const first = ws.spawn("first", { start: { saga, inputs: [{}] }, executor });
  const [id] = await first.started();
  if (id === undefined) throw new Error("no run started");
  await first.waitFor(`the signal wait to be armed (${held})`, async () => {
    const snapshot = await storage.load(id);
    const waiting = snapshot?.steps.find((s) => s.action === "approve")?.status === "waiting";
    return (
      waiting && (held === "owned" || (snapshot?.run.status === "waiting" && snapshot.run.owner === null))
    );
  });
  await first.kill();

  const before = await storage.load(id);
  expect(stepStatuses(before)).toEqual({ prep: "completed#1", approve: "waiting#1" });
  expect(before?.run.owner).toBe(held === "owned" ? first.message("open")?.owner : null);
  return { id, storage, historyBefore: await storage.history(id) };
}

describe("kill during a wait for a signal, signal sent while no process runs", () => {
  it.each(SIGNAL_WAITS)("$held wait ($saga): the signal is delivered after restart", async (wait) => {
    const { id, storage, historyBefore } = await killWhileWaitingForSignal(wait);
    await fromOutside(storage, (ops) => ops.signal(id, "approved", { by: "alice" }));
    expect(await storage.signalsAfter(0)).toMatchObject([
      { runId: id, name: "approved", payload: { by: "alice" }, consumedBy: null },
    ]);

    const second = ws.spawn("second", { await: [id] });
    const [ended] = await second.finished();
    expect(ended).toMatchObject({
      id,
      status: "completed",
      output: { ref: "r-1", by: "alice", shipped: "r-1 by alice" },
    });

    const runs = ws.runs();
    expect(trail(runs, id, "prep")).toEqual(["first:start:1", "first:end:1"]);
    expect(trail(runs, id, "ship")).toEqual(["second:start:1", "second:end:1"]);
    expect(runs.filter((r) => r.phase === "undo")).toEqual([]);
    expect((await storage.signalsAfter(0)).map((s) => s.consumedBy)).toEqual(["approve"]);

    const history = await storage.history(id);
    expect(seqProblems(history)).toEqual([]);
    expect(history.slice(0, historyBefore.length)).toEqual(historyBefore);
    // Parked: the signal wakes it (no resume). Owned: recovery resumes it.
    const middle = wait.held === "owned" ? ["run:resumed"] : wait.parked;
    expect(lifecycle(history)).toEqual(["run:started", ...middle, "run:completed"]);
    // One arming of the wait: the restart continued it rather than starting it over.
    expect(summarize(history).get("approve")).toMatchObject({ waiting: 1, completed: 1, failed: 0 });
    expect(history.filter((e) => e.type === "signal:received")).toHaveLength(1);
  });
});

describe("kill during a wait for a signal, cancel requested while no process runs", () => {
  it.each(SIGNAL_WAITS)(
    "$held wait ($saga): the restarted process undoes and ends cancelled",
    async (wait) => {
      const { id, storage, historyBefore } = await killWhileWaitingForSignal(wait);
      await fromOutside(storage, (ops) => ops.cancel(id, "change of plan"));
      expect(await storage.getRun(id)).toMatchObject({ cancelRequested: "change of plan" });

      const second = ws.spawn("second", { await: [id] });
      const [ended] = await second.finished();
      expect(ended).toMatchObject({ id, status: "cancelled" });

      const runs = ws.runs();
      expect(trail(runs, id, "prep")).toEqual(["first:start:1", "first:end:1"]);
      expect(trail(runs, id, "prep", "undo")).toEqual(["second:start:1", "second:end:1"]);
      expect(trail(runs, id, "ship")).toEqual([]);

      const history = await storage.history(id);
      expect(seqProblems(history)).toEqual([]);
      expect(history.slice(0, historyBefore.length)).toEqual(historyBefore);
      expect(lifecycle(history).at(-1)).toBe("run:cancelled");
      expect(summarize(history).get("prep")).toMatchObject({
        completed: 1,
        undoStarted: [1],
        undoCompleted: 1,
      });
      const after = await storage.load(id);
      expect(stepStatuses(after)).toEqual({ prep: "undone#1", approve: "failed#1" });
      expect(after?.run).toMatchObject({
        status: "cancelled",
        owner: null,
        cause: { kind: "cancel", reason: "change of plan" },
      });
    },
  );
});

describe("kill during a poll", () => {
  it.each([
    // Checks every 50 ms keep the run in memory, owned (and its status running) between checks.
    { when: "between checks", saga: "probe" as SagaName, executor: {}, block: [] as string[], parked: false },
    {
      when: "while a check runs",
      saga: "probe" as SagaName,
      executor: {},
      block: [blockKey("probe", "check")],
      parked: false,
    },
    // evictAfterMs far below everyMs (1 s): the run is parked between checks, then claimed back
    // for each one, so the kill leaves it "waiting" yet owned by the dead process.
    {
      when: "while a check of a parked poll runs",
      saga: "probeParked" as SagaName,
      executor: { evictAfterMs: 10 },
      block: [blockKey("probe", "check", 2)],
      parked: true,
    },
  ])(
    "killed $when: polling continues in the new process, with the same deadline",
    async ({ when, saga, executor, block, parked }) => {
      ws = new Workspace();
      const storage = await ws.storage();
      const first = ws.spawn("first", { start: { saga, inputs: [{}] }, executor }, block);
      const [id] = await first.started();
      if (id === undefined) throw new Error("no run started");
      const checks = (proc: string, event: string) =>
        ws
          .runs()
          .filter((r) => r.action === "probe" && r.phase === "check" && r.proc === proc && r.event === event);
      await first.waitFor(`the poll to run (${when})`, async () => {
        if (block.length === 0) return checks("first", "end").length >= 2;
        const hanging = checks("first", "start").length > checks("first", "end").length;
        return hanging && (!parked || (await storage.load(id))?.run.owner !== null);
      });
      await first.kill();

      const before = await storage.load(id);
      expect(stepStatuses(before)).toEqual({ before: "completed#1", probe: "waiting#1" });
      expect(before?.run).toMatchObject({
        status: parked ? "waiting" : "running",
        owner: first.message("open")?.owner,
      });
      const deadline = before?.steps.find((s) => s.action === "probe")?.state?.deadline;
      expect(typeof deadline).toBe("number");
      const historyBefore = await storage.history(id);

      writeFileSync(join(ws.controlDir, READY_FILE), "yes");
      const second = ws.spawn("second", { await: [id] });
      const [ended] = await second.finished();
      expect(ended).toMatchObject({ id, status: "completed", output: { found: "yes", seen: "yes" } });

      const runs = ws.runs();
      expect(trail(runs, id, "before")).toEqual(["first:start:1", "first:end:1"]);
      expect(trail(runs, id, "after")).toEqual(["second:start:1", "second:end:1"]);
      expect(checks("second", "end").length).toBeGreaterThanOrEqual(1);
      expect(keysOf(runs, id, "probe", "check")).toEqual([`${id}/probe`]);

      const history = await storage.history(id);
      expect(seqProblems(history)).toEqual([]);
      expect(history.slice(0, historyBefore.length)).toEqual(historyBefore);
      // Armed once: the deadline set when polling began still holds after the restart.
      expect(summarize(history).get("probe")).toMatchObject({ waiting: 1, completed: 1, failed: 0 });
      expect(history.find((e) => e.type === "action:waiting" && e.action === "probe")?.data?.deadline).toBe(
        deadline,
      );
      expect(lifecycle(history)).toEqual([
        "run:started",
        ...(parked ? ["run:waiting"] : ["run:resumed"]),
        "run:completed",
      ]);
    },
  );
});
