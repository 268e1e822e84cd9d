/** Crash test (b): SIGKILL while an undo runs; a new process finishes compensating in reverse dependency order. */
import { afterEach, describe, expect, it } from "vitest";
import { blockKey } from "./fixtures/protocol.js";
import { FAILURE_MESSAGE } from "./fixtures/sagas.js";
import {
  indexOfRun,
  keysOf,
  lifecycle,
  seqProblems,
  stateProblems,
  stepStatuses,
  summarize,
  trail,
  Workspace,
} from "./harness.js";

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

describe("kill during compensation", () => {
  it("re-runs only the interrupted undo, then undoes what it depends on", async () => {
    ws = new Workspace();
    // fanout: a, then b and c (both read a), then d (reads b and c) fails. c's undo hangs.
    const first = ws.spawn("first", { start: { saga: "fanout", inputs: [{}] } }, [blockKey("c", "undo")]);
    const [id] = await first.started();
    if (id === undefined) throw new Error("no run started");
    const storage = await ws.storage();
    // Kill once b's undo is committed and c's undo is running: one undo done, one interrupted.
    await first.waitFor("b's undo to be committed and c's undo to run", async () => {
      const undoing = ws.runs().some((r) => r.action === "c" && r.phase === "undo" && r.event === "start");
      return undoing && (await storage.load(id))?.steps.find((s) => s.action === "b")?.status === "undone";
    });
    await first.kill();

    const before = await storage.load(id);
    if (!before) throw new Error("run missing after the kill");
    expect(stateProblems(before, await storage.history(id))).toEqual([]);
    expect(before?.run.status).toBe("compensating");
    expect(stepStatuses(before)).toEqual({ a: "completed#1", b: "undone#1", c: "undoing#1", d: "failed#1" });
    expect(before?.steps.find((s) => s.action === "c")?.undoAttempt).toBe(1);
    const historyBefore = await storage.history(id);

    const second = ws.spawn("second", { await: [id] });
    const [ended] = await second.finished();
    expect(ended).toMatchObject({ id, status: "compensated" });

    const runs = ws.runs();
    // No forward action ran again, the failing one included.
    for (const action of ["a", "b", "c"])
      expect(trail(runs, id, action), action).toEqual(["first:start:1", "first:end:1"]);
    expect(trail(runs, id, "d")).toEqual(["first:start:1", "first:fail:1"]);
    // b's undo completed before the kill: never again. c's was interrupted: again, as attempt 2, same key.
    expect(trail(runs, id, "b", "undo")).toEqual(["first:start:1", "first:end:1"]);
    expect(trail(runs, id, "c", "undo")).toEqual(["first:start:1", "second:start:2", "second:end:2"]);
    expect(keysOf(runs, id, "c", "undo")).toEqual([`${id}/c/undo`]);
    expect(trail(runs, id, "a", "undo")).toEqual(["second:start:1", "second:end:1"]);
    expect(trail(runs, id, "d", "undo")).toEqual([]);
    // Reverse dependency order overall: a is undone only after both its dependents are.
    const aUndo = indexOfRun(runs, { runId: id, action: "a", phase: "undo", event: "start" });
    for (const dependent of ["b", "c"]) {
      const done = indexOfRun(runs, { runId: id, action: dependent, phase: "undo", event: "end" }, "last");
      expect(done, `${dependent}'s undo ends before a's starts`).toBeLessThan(aUndo);
    }

    const history = await storage.history(id);
    expect(seqProblems(history)).toEqual([]);
    expect(history.slice(0, historyBefore.length)).toEqual(historyBefore);
    expect(lifecycle(history)).toEqual(["run:started", "run:compensating", "run:resumed", "run:compensated"]);
    const summary = summarize(history);
    expect(summary.get("a")).toMatchObject({
      started: [1],
      completed: 1,
      undoStarted: [1],
      undoCompleted: 1,
    });
    expect(summary.get("b")).toMatchObject({
      started: [1],
      completed: 1,
      undoStarted: [1],
      undoCompleted: 1,
    });
    expect(summary.get("c")).toMatchObject({
      started: [1],
      completed: 1,
      undoStarted: [1, 2],
      undoCompleted: 1,
    });
    expect(summary.get("d")).toMatchObject({ started: [1], completed: 0, failed: 1, undoStarted: [] });

    const after = await storage.load(id);
    expect(stepStatuses(after)).toEqual({ a: "undone#1", b: "undone#1", c: "undone#1", d: "failed#1" });
    expect(after?.run.cause).toMatchObject({
      kind: "failure",
      action: "d",
      error: { message: FAILURE_MESSAGE },
    });
    expect(after?.run.owner).toBeNull();
  });
});
