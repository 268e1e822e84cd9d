/** The crash test's workload: what the killed child writes, and the all-or-nothing check the parent runs. */
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import type { Storage, Transition } from "../storage/types.js";
import { eventRecord, stepRecord } from "./records.js";

export interface CrashChildPayload {
  module: string;
  exportName: string;
  arg: unknown;
  saga: string;
}

/** A URL is imported as is, a path becomes a file URL (a scheme has 2+ letters, so `C:` is a path). */
export function toImportSpecifier(module: string): string {
  return /^[a-z][a-z0-9+.-]+:/i.test(module) ? module : pathToFileURL(module).href;
}

export const CRASH_RUNS = 3;
export const CRASH_STEPS = 4;
export const CRASH_EVENTS = 3;

export function crashRunIds(saga: string): string[] {
  return Array.from({ length: CRASH_RUNS }, (_, i) => `${saga}-${i}`);
}

/** Padding of a few KB per step, so one transition spans several pages and a kill can land inside it. */
function padding(counter: number, step: number): string {
  return `${counter}:${step}:`.padEnd(1_000 + ((counter * 7 + step * 131) % 3_000), "#");
}

/** Transition number `counter` (1-based) of one run; every row it writes carries the counter. */
export function crashTransition(
  runId: string,
  owner: string,
  counter: number,
  signalSeq: number,
): Transition {
  const at = Date.now();
  return {
    runId,
    owner,
    run: {
      wakeAt: counter,
      status: counter % 2 === 0 ? "running" : "compensating",
      error: { name: "Counter", message: String(counter) },
    },
    steps: Array.from({ length: CRASH_STEPS }, (_, step) =>
      stepRecord(runId, `s${step}`, {
        attempt: counter,
        output: { counter, pad: padding(counter, step) },
        state: { counter },
        updatedAt: at,
      }),
    ),
    events: Array.from({ length: CRASH_EVENTS }, (_, i) =>
      eventRecord(runId, (counter - 1) * CRASH_EVENTS + i + 1, { type: "tick", at, data: { counter } }),
    ),
    consumeSignals: [{ seq: signalSeq, action: `tick-${counter}` }],
  };
}

/**
 * Asserts that every transition the child wrote is either entirely there or entirely absent, and
 * returns the number of transitions committed (summed over runs).
 */
export async function verifyCrashState(storage: Storage, saga: string): Promise<number> {
  // A killed client's last commit may still be on its way: a server (PostgreSQL) goes on with a
  // statement it has read, and the state below is read in several statements. Taking each run over
  // first, as recovery would, waits for a commit holding the run and fences out one not begun yet.
  for (const id of crashRunIds(saga)) {
    const record = await storage.getRun(id);
    if (!record) continue;
    const taken = await storage.claim({
      runId: id,
      owner: "crash-verifier",
      takeOverFrom: record.owner === null ? [] : [record.owner],
    });
    assert.ok(taken, `${id}: the verifier takes the run over from the killed child`);
  }
  let total = 0;
  const signals = await storage.signalsAfter(0);
  for (const id of crashRunIds(saga)) {
    const snapshot = await storage.load(id);
    if (!snapshot) continue; // killed before it was created
    const counter = snapshot.run.wakeAt;
    assert.ok(typeof counter === "number", `${id}: wakeAt holds the counter`);
    total += counter;
    const where = `${id} at counter ${counter}`;
    if (counter > 0) {
      assert.equal(snapshot.run.error?.message, String(counter), `${where}: run patch`);
      assert.equal(snapshot.run.status, counter % 2 === 0 ? "running" : "compensating", where);
    }
    assert.equal(snapshot.steps.length, counter === 0 ? 0 : CRASH_STEPS, `${where}: step rows`);
    snapshot.steps.forEach((step, i) => {
      assert.equal(step.action, `s${i}`, where);
      assert.equal(step.attempt, counter, `${where}: ${step.action}.attempt`);
      assert.deepEqual(step.output, { counter, pad: padding(counter, i) }, `${where}: ${step.action}.output`);
      assert.deepEqual(step.state, { counter }, `${where}: ${step.action}.state`);
    });
    const history = await storage.history(id);
    assert.equal(history.length, counter * CRASH_EVENTS, `${where}: events`);
    history.forEach((event, i) => {
      assert.equal(event.seq, i + 1, where);
      assert.deepEqual(
        event.data,
        { counter: Math.floor(i / CRASH_EVENTS) + 1 },
        `${where}: event ${event.seq}`,
      );
    });
    assert.equal(snapshot.nextEventSeq, counter * CRASH_EVENTS + 1, where);
    // Exactly one consumed tick per committed transition. A tick added right before a kill stays
    // pending forever (the next run adds a fresh one), which is fine.
    const consumed = signals
      .filter((s) => s.runId === id && s.consumedBy !== null)
      .map((s) => (s.payload as { counter: number }).counter);
    assert.deepEqual(
      consumed,
      Array.from({ length: counter }, (_, i) => i + 1),
      `${where}: consumed ticks`,
    );
    for (const s of signals.filter((s) => s.runId === id && s.consumedBy !== null)) {
      assert.equal(s.consumedBy, `tick-${(s.payload as { counter: number }).counter}`, where);
    }
  }
  return total;
}
