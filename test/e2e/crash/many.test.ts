/**
 * Crash test (d): 20 runs run at once and their process is SIGKILLed three times at arbitrary
 * moments (actions and undos in flight); a last process finishes all of them, losing and duplicating nothing.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { EventRecord, RunSnapshot, StepStatus } from "../../../src/index.js";
import { WAIT_MS } from "../../wait.js";
import { blockKey, type Phase, type RunRecord } from "./fixtures/protocol.js";
import { workloadFails } from "./fixtures/sagas.js";
import { lifecycle, seqProblems, stateProblems, summarize, trail, Workspace } from "./harness.js";

const RUNS = 20;
const ACTIONS = ["w1", "w2", "w3", "w4"] as const;
/** Runner processes in order; all but the last are killed (see `killWhen`). */
const PROCS = ["p1", "p2", "p3", "final"] as const;
const KILL_AFTER_ENDS = 20;
/** Step statuses that prove the run's outcome was committed: it must never run again. */
const RUN_SETTLED: readonly StepStatus[] = ["completed", "failed", "undoing", "undone", "undo_failed"];

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

/** Bodies that process `proc` started and had not finished (it was killed in them). */
function interrupted(runs: readonly RunRecord[], proc: string): RunRecord[] {
  const id = (r: RunRecord) => `${r.runId}/${r.action}/${r.phase}/${r.attempt}`;
  const finished = new Set(runs.filter((r) => r.proc === proc && r.event !== "start").map(id));
  return runs.filter((r) => r.proc === proc && r.event === "start" && !finished.has(id(r)));
}

/**
 * When to kill each process, and which bodies hang in it: p1 in the forward actions (w3 hangs), p2
 * later in them (w4 hangs), p3 in the compensations of the failing runs (w1's undo, which comes
 * last, hangs). Each is killed once enough bodies ended and one that hangs started, so every kill
 * interrupts bodies, however slow the machine (a body that would end on its own could end first).
 */
function killWhen(proc: string): {
  what: string;
  block: string[];
  ready: (runs: readonly RunRecord[]) => boolean;
} {
  const [action, phase]: [string, Phase] =
    proc === "p1" ? ["w3", "run"] : proc === "p2" ? ["w4", "run"] : ["w1", "undo"];
  return {
    what: `${KILL_AFTER_ENDS} bodies to end and ${action}'s ${phase} to hang`,
    block: [blockKey(action, phase)],
    ready: (runs) =>
      runs.filter((r) => r.proc === proc && r.event !== "start").length >= KILL_AFTER_ENDS &&
      interrupted(runs, proc).some((r) => r.action === action && r.phase === phase),
  };
}

interface AtKill {
  snapshots: Map<string, RunSnapshot>;
  histories: Map<string, EventRecord[]>;
}

describe("kill repeatedly with many runs in flight", () => {
  it("finishes every run, re-running only bodies whose outcome was not committed", async () => {
    ws = new Workspace();
    const storage = await ws.storage();
    let ids: string[] = [];
    const kills: AtKill[] = [];

    for (const [index, proc] of PROCS.entries()) {
      if (proc === "final") break;
      const when = killWhen(proc);
      const runner =
        index === 0
          ? ws.spawn(
              proc,
              { start: { saga: "workload", inputs: Array.from({ length: RUNS }, (_, n) => ({ n })) } },
              when.block,
            )
          : ws.spawn(proc, { await: ids }, when.block);
      if (index === 0) ids = await runner.started();
      // Bodies take 5-35 ms and many run at once: besides the one that hangs, others are in flight.
      await runner.waitFor(when.what, () => when.ready(ws.runs()));
      await runner.kill();
      const atKill: AtKill = { snapshots: new Map(), histories: new Map() };
      for (const id of ids) {
        const snapshot = await storage.load(id);
        if (!snapshot) throw new Error(`run ${id} was started but is not in the database`);
        const history = await storage.history(id);
        expect(stateProblems(snapshot, history), `${id} after killing ${proc}`).toEqual([]);
        atKill.snapshots.set(id, snapshot);
        atKill.histories.set(id, history);
      }
      kills.push(atKill);
      expect(when.ready(ws.runs()), `killing ${proc} interrupted ${when.what}`).toBe(true);
    }
    expect(ids).toHaveLength(RUNS);

    const final = ws.spawn("final", { await: ids });
    const ended = await final.finished(2 * WAIT_MS);
    expect(ended).toHaveLength(RUNS);
    for (const [n, id] of ids.entries()) {
      const x1 = n * 10;
      const expected = workloadFails(n)
        ? { status: "compensated" }
        : { status: "completed", output: { n, x1, x2: x1 + 1, x3: x1 + 2, x4: 2 * x1 + 3 } };
      expect(
        ended.find((m) => m.id === id),
        `${id} (n=${n})`,
      ).toMatchObject(expected);
    }

    const runs = ws.runs();
    const procIndex = (r: RunRecord) => PROCS.indexOf(r.proc as (typeof PROCS)[number]);
    let reran = 0;
    for (const [n, id] of ids.entries()) {
      const fails = workloadFails(n);
      const history = await storage.history(id);
      expect(seqProblems(history), id).toEqual([]);
      expect(stateProblems((await storage.load(id))!, history), `${id} at the end`).toEqual([]);
      for (const [k, atKill] of kills.entries()) {
        const before = atKill.histories.get(id)!;
        expect(history.slice(0, before.length), `${id}: history at kill ${k + 1} kept`).toEqual(before);
      }
      expect(lifecycle(history).at(-1), id).toBe(fails ? "run:compensated" : "run:completed");
      const summary = summarize(history);

      for (const action of ACTIONS) {
        const undone = fails && action !== "w4";
        const phases: Phase[] = undone ? ["run", "undo"] : ["run"];
        const entry = summary.get(action);
        for (const phase of phases) {
          const where = `${id} ${action} ${phase}`;
          const mine = runs.filter((r) => r.runId === id && r.action === action && r.phase === phase);
          const starts = mine.filter((r) => r.event === "start");
          // Settled and committed before a kill: nothing of it ran in any later process.
          for (const [k, atKill] of kills.entries()) {
            const step = atKill.snapshots.get(id)!.steps.find((s) => s.action === action);
            const settled =
              phase === "run" ? step && RUN_SETTLED.includes(step.status) : step?.status === "undone";
            if (settled)
              expect(
                trail(
                  mine.filter((r) => procIndex(r) > k),
                  id,
                  action,
                  phase,
                ),
                `${where} after kill ${k + 1}`,
              ).toEqual([]);
          }
          // In the end, the last attempt ran to its end (a failure, for the failing w4).
          const last = starts.at(-1);
          expect(trail(mine, id, action, phase).at(-1), where).toBe(
            `${last?.proc}:${fails && action === "w4" ? "fail" : "end"}:${last?.attempt}`,
          );
          // Attempts keep counting across processes (one committed as started may have died before
          // its body began, so gaps are fine), all under one idempotency key.
          const attempts = starts.map((r) => r.attempt);
          expect(attempts, where).toEqual([...attempts].sort((a, b) => a - b));
          expect(new Set(attempts).size, where).toBe(attempts.length);
          expect([...new Set(mine.map((r) => r.key))], where).toEqual([
            `${id}/${action}${phase === "undo" ? "/undo" : ""}`,
          ]);
          // No transition lost: every attempt a body saw was recorded as started.
          const recorded = phase === "run" ? entry?.started : entry?.undoStarted;
          for (const attempt of attempts) expect(recorded, where).toContain(attempt);
          if (starts.length > 1) reran++;
        }
        if (fails && action === "w4")
          expect(entry, `${id} w4`).toMatchObject({ completed: 0, failed: 1, undoStarted: [] });
        else
          expect(entry, `${id} ${action}`).toMatchObject({
            completed: 1,
            failed: 0,
            undoCompleted: undone ? 1 : 0,
          });
        if (!undone) expect(trail(runs, id, action, "undo"), `${id} ${action}: no undo`).toEqual([]);
      }
      if (fails) {
        // w1 is undone only after its dependents w2 and w3 are, across processes.
        const at = (action: string, event: string, pick: "first" | "last") => {
          const found = runs.filter(
            (r) => r.runId === id && r.action === action && r.phase === "undo" && r.event === event,
          );
          return runs.indexOf(pick === "first" ? found[0]! : found.at(-1)!);
        };
        const w1Undo = at("w1", "start", "first");
        expect(at("w2", "end", "last"), `${id}: w2 undone before w1`).toBeLessThan(w1Undo);
        expect(at("w3", "end", "last"), `${id}: w3 undone before w1`).toBeLessThan(w1Undo);
      }
    }
    expect(reran, "some bodies had to run again").toBeGreaterThan(0);
  });
});
