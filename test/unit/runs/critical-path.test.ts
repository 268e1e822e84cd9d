/**
 * Phases and the critical path of a run, from its history alone (events as the engine writes them,
 * with what attempts recorded of their admission): no processes, no clock.
 */
import { describe, expect, it } from "vitest";
import type { JsonObject } from "../../../src/json.js";
import { criticalPathOf } from "../../../src/runs/critical-path.js";
import type { PlanOutline, StepSummary } from "../../../src/runs/schemas.js";
import { type TimingSource, timingsOf } from "../../../src/runs/timings.js";
import type { EventRecord } from "../../../src/storage/types.js";

let seq = 0;
function event(type: string, action: string | null, at: number, data: JsonObject | null = null): EventRecord {
  return { runId: "r1", seq: ++seq, type, action, at, data };
}

function step(
  job: string,
  status: StepSummary["status"],
  startedAt: number,
  endedAt: number | null,
): StepSummary {
  return {
    job,
    status,
    attempt: 1,
    startedAt,
    endedAt,
    output: null,
    error: null,
    undoError: null,
    state: null,
  };
}

function plan(
  steps: { action: string; needs: string[]; probes?: string }[],
): TimingSource["plan"] & PlanOutline {
  return {
    steps: steps.map((s) => ({ ...s, label: s.action })),
    excluded: [],
    key: "release",
  };
}

/** The phases and critical path of a run, as `show` derives them. */
function derive(source: TimingSource & { plan: PlanOutline & TimingSource["plan"] }) {
  const timings = timingsOf(source);
  return { timings, path: criticalPathOf({ ...source.run, timings, plan: source.plan }) };
}

const lock = (at: number, holder: string) => ({
  at,
  kind: "lock",
  resource: "swarm",
  holder: { run: holder, runName: null, job: "deploy" },
  position: 1,
  message: `waits for lock swarm (1 of 1 held by run ${holder} job deploy since 10:00:00); 1st in line`,
});

describe("phases", () => {
  it("split a job's wait for admission by reason: what it waited for, who held it, its place in line", () => {
    const { timings, path } = derive({
      run: { createdAt: 1_000, endedAt: 9_000 },
      plan: plan([{ action: "deploy", needs: [] }]),
      steps: [step("deploy", "completed", 1_010, 8_990)],
      history: [
        event("action:started", "deploy", 1_010, { attempt: 1 }),
        event("action:completed", "deploy", 8_990, {
          attempt: 1,
          timing: {
            admission: {
              at: 1_020,
              grantedAt: 6_000,
              waits: [
                lock(1_020, "r0"),
                { at: 4_000, kind: "pool", resource: "memory", position: 2, message: "waits for memory" },
              ],
            },
          },
        }),
        event("run:completed", null, 9_000),
      ],
    });
    expect(timings).toEqual([
      {
        job: "deploy",
        label: "deploy",
        phases: [
          { phase: "queued", attempt: 1, startedAt: 1_000, endedAt: 1_020 },
          {
            phase: "waiting",
            attempt: 1,
            startedAt: 1_020,
            endedAt: 4_000,
            reason: {
              kind: "lock",
              resource: "swarm",
              holder: { run: "r0", runName: null, job: "deploy" },
              position: 1,
              message: expect.stringContaining("held by run r0"),
            },
          },
          {
            phase: "waiting",
            attempt: 1,
            startedAt: 4_000,
            endedAt: 6_000,
            reason: { kind: "pool", resource: "memory", position: 2, message: "waits for memory" },
          },
          { phase: "running", attempt: 1, startedAt: 6_000, endedAt: 8_990 },
        ],
      },
    ]);
    // The whole run: its queueing, both waits, the job, and the engine's 10 ms at the end.
    expect(path).toEqual({
      totalMs: 8_000,
      steps: [{ job: "deploy", ms: 7_990, queuedMs: 4_980 }],
      segments: [
        expect.objectContaining({ job: "deploy", phase: "queued", startedAt: 1_000, endedAt: 1_020 }),
        expect.objectContaining({ job: "deploy", phase: "waiting", startedAt: 1_020, endedAt: 4_000 }),
        expect.objectContaining({ job: "deploy", phase: "waiting", startedAt: 4_000, endedAt: 6_000 }),
        expect.objectContaining({ job: "deploy", phase: "running", startedAt: 6_000, endedAt: 8_990 }),
        { job: null, phase: "queued", attempt: 1, startedAt: 8_990, endedAt: 9_000 },
      ],
    });
  });

  it("keep attempts apart: the failed one, the wait for the retry, the next one", () => {
    const { timings } = derive({
      run: { createdAt: 0, endedAt: 1_000 },
      plan: plan([{ action: "build", needs: [] }]),
      steps: [step("build", "completed", 0, 990)],
      history: [
        event("action:started", "build", 0, { attempt: 1 }),
        event("action:failed", "build", 300, { attempt: 1, error: "exit 1", retryAt: 500 }),
        event("action:started", "build", 500, { attempt: 2 }),
        event("action:completed", "build", 990, { attempt: 2 }),
      ],
    });
    expect(timings[0]!.phases).toEqual([
      { phase: "running", attempt: 1, startedAt: 0, endedAt: 300, failed: true },
      {
        phase: "waiting",
        attempt: 2,
        startedAt: 300,
        endedAt: 500,
        reason: { kind: "retry", message: "exit 1" },
      },
      { phase: "running", attempt: 2, startedAt: 500, endedAt: 990 },
    ]);
  });

  it("a job's readiness probe is its probing, and when it ended the job was ready", () => {
    const { timings } = derive({
      run: { createdAt: 0, endedAt: 50 },
      plan: plan([
        { action: "deploy", needs: [] },
        { action: "deploy.ready", needs: ["deploy"], probes: "deploy" },
      ]),
      steps: [step("deploy", "completed", 0, 20), step("deploy.ready", "completed", 21, 49)],
      history: [
        event("action:started", "deploy", 0, { attempt: 1 }),
        event("action:completed", "deploy", 20, { attempt: 1 }),
        event("action:started", "deploy.ready", 21, { attempt: 1 }),
        event("action:completed", "deploy.ready", 49, { attempt: 1 }),
      ],
    });
    expect(timings).toEqual([
      {
        job: "deploy",
        label: "deploy",
        readyAt: 49,
        phases: [expect.objectContaining({ phase: "running" })],
      },
      {
        job: "deploy.ready",
        label: "deploy.ready",
        probes: "deploy",
        phases: [
          { phase: "queued", attempt: 1, startedAt: 20, endedAt: 21 },
          { phase: "probing", attempt: 1, startedAt: 21, endedAt: 49 },
        ],
      },
    ]);
  });

  it("a child step waits for its child run; undoing it waits for the child's undo", () => {
    const { timings } = derive({
      run: { createdAt: 0, endedAt: 100 },
      plan: plan([{ action: "provision", needs: [] }]),
      steps: [step("provision", "undone", 0, 90)],
      history: [
        event("action:waiting", "provision", 1, { child: "c1" }),
        event("action:completed", "provision", 40, { attempt: 1 }),
        event("undo:started", "provision", 50, { attempt: 1, child: "c1" }),
        event("undo:completed", "provision", 90, { attempt: 1 }),
      ],
    });
    expect(timings[0]!.phases).toEqual([
      { phase: "queued", attempt: 1, startedAt: 0, endedAt: 1 },
      { phase: "waiting", attempt: 1, startedAt: 1, endedAt: 40, reason: { kind: "child", resource: "c1" } },
      { phase: "undoing", attempt: 1, startedAt: 50, endedAt: 90 },
    ]);
  });

  it("a wait under way is open, with its reason as the hosting process tells it", () => {
    const { timings, path } = derive({
      run: { createdAt: 0, endedAt: null },
      plan: plan([{ action: "deploy", needs: [] }]),
      steps: [step("deploy", "running", 5, null)],
      history: [event("action:started", "deploy", 5, { attempt: 1 })],
      admission: () => ({ at: 6, grantedAt: null, waits: [lock(6, "r0") as never] }),
    });
    expect(timings[0]!.phases).toEqual([
      { phase: "queued", attempt: 1, startedAt: 0, endedAt: 6 },
      expect.objectContaining({
        phase: "waiting",
        startedAt: 6,
        endedAt: null,
        reason: expect.objectContaining({ kind: "lock", resource: "swarm" }),
      }),
    ]);
    // Nothing has ended: the queueing leads up to the wait, one link still under way.
    expect(path).toBeNull();
  });
});

describe("critical path", () => {
  it("follows the need that ended last back from the end, admission waits apart", () => {
    const { path } = derive({
      run: { createdAt: 1_000, endedAt: 6_000 },
      plan: plan([
        { action: "lint", needs: [] },
        { action: "build", needs: [] },
        { action: "publish", needs: ["lint", "build"] },
      ]),
      steps: [
        step("lint", "completed", 1_000, 1_500),
        step("build", "completed", 1_000, 4_000),
        step("publish", "completed", 4_001, 6_000),
      ],
      history: [
        event("action:started", "lint", 1_000, { attempt: 1 }),
        event("action:started", "build", 1_000, { attempt: 1 }),
        event("action:completed", "lint", 1_500, { attempt: 1 }),
        event("action:completed", "build", 4_000, {
          attempt: 1,
          timing: { admission: { at: 1_000, grantedAt: 3_000, waits: [lock(1_000, "r0")] } },
        }),
        event("action:started", "publish", 4_001, { attempt: 1 }),
        event("action:completed", "publish", 6_000, { attempt: 1 }),
        event("run:completed", null, 6_000),
      ],
    });
    expect(path?.totalMs).toBe(5_000);
    expect(path?.steps).toEqual([
      { job: "build", ms: 3_000, queuedMs: 2_000 },
      { job: "publish", ms: 2_000 },
    ]);
  });

  it("covers a failed run whole: the failing job and the rollback's undos", () => {
    const { path } = derive({
      run: { createdAt: 0, endedAt: 1_000 },
      plan: plan([
        { action: "build", needs: [] },
        { action: "stage", needs: ["build"] },
        { action: "deploy", needs: ["stage"] },
      ]),
      steps: [
        step("build", "undone", 0, 900),
        step("stage", "undone", 100, 700),
        step("deploy", "failed", 300, 500),
      ],
      history: [
        // Queued 2 ms from the run's creation: part of build's link.
        event("action:started", "build", 2, { attempt: 1 }),
        event("action:completed", "build", 100, { attempt: 1 }),
        event("action:started", "stage", 100, { attempt: 1 }),
        event("action:completed", "stage", 300, { attempt: 1 }),
        event("action:started", "deploy", 300, { attempt: 1 }),
        event("action:failed", "deploy", 500, { attempt: 1, error: "exit 1", final: true }),
        event("run:compensating", null, 500, { kind: "failure", action: "deploy", error: "exit 1" }),
        event("undo:started", "stage", 502, { attempt: 1 }),
        // The undo waited for the swarm lock before it could tear the stage down.
        event("undo:completed", "stage", 700, {
          attempt: 1,
          timing: { admission: { at: 502, grantedAt: 600, waits: [lock(502, "r9")] } },
        }),
        event("undo:started", "build", 700, { attempt: 1 }),
        event("undo:completed", "build", 990, { attempt: 1 }),
        event("run:compensated", null, 1_000),
      ],
    });
    expect(path?.totalMs).toBe(1_000);
    expect(path?.steps).toEqual([
      { job: "build", ms: 100 },
      { job: "stage", ms: 200 },
      { job: "deploy", ms: 200, failed: true },
      { job: "stage", ms: 198, queuedMs: 98, phase: "undo" },
      { job: "build", ms: 290, phase: "undo" },
    ]);
    const segments = path!.segments;
    // Without a gap or an overlap, from the run's creation to its end.
    expect(segments[0]!.startedAt).toBe(0);
    expect(segments.at(-1)!.endedAt).toBe(1_000);
    for (const [i, s] of segments.entries()) if (i > 0) expect(s.startedAt).toBe(segments[i - 1]!.endedAt);
    expect(segments.reduce((sum, s) => sum + s.endedAt! - s.startedAt, 0)).toBe(1_000);
    expect(segments.filter((s) => s.job === null).map((s) => [s.startedAt, s.endedAt])).toEqual([
      [500, 502],
      [990, 1_000],
    ]);
    expect(segments.find((s) => s.phase === "waiting")).toMatchObject({
      job: "stage",
      reason: { kind: "lock", resource: "swarm", holder: { run: "r9" } },
    });
  });

  it("starts at the concurrency gate, a step the plan does not list", () => {
    const { path, timings } = derive({
      run: { createdAt: 0, endedAt: 905 },
      plan: plan([
        { action: "lint", needs: [] },
        { action: "build", needs: [] },
      ]),
      steps: [
        step(".concurrency", "completed", 0, 700),
        step("lint", "completed", 700, 900),
        step("build", "completed", 700, 800),
      ],
      history: [
        event("action:waiting", ".concurrency", 0, { poll: 1_000, nextCheckAt: 0 }),
        event("action:completed", ".concurrency", 700, { attempt: 1 }),
        event("action:started", "lint", 700, { attempt: 1 }),
        event("action:started", "build", 700, { attempt: 1 }),
        event("action:completed", "build", 800, { attempt: 1 }),
        event("action:completed", "lint", 900, { attempt: 1 }),
      ],
    });
    expect(timings[0]!.phases).toEqual([
      {
        phase: "waiting",
        attempt: 1,
        startedAt: 0,
        endedAt: 700,
        reason: { kind: "concurrency", resource: "release" },
      },
    ]);
    expect(path?.steps.map((s) => s.job)).toEqual([".concurrency", "lint"]);
    expect(path?.totalMs).toBe(905);
  });

  it("is null until a phase has ended", () => {
    const { path } = derive({
      run: { createdAt: 0, endedAt: null },
      plan: plan([{ action: "lint", needs: [] }]),
      steps: [step("lint", "running", 0, null)],
      history: [event("action:started", "lint", 0, { attempt: 1 })],
    });
    expect(path).toBeNull();
  });
});
