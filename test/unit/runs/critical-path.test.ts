/** The critical path of a run, from its steps' times alone: no processes, no clock. */
import { describe, expect, it } from "vitest";
import { criticalPathOf } from "../../../src/runs/critical-path.js";
import type { PlanOutline, StepSummary } from "../../../src/runs/schemas.js";

function step(job: string, startedAt: number, endedAt: number | null, queuedMs?: number): StepSummary {
  return {
    job,
    status: endedAt === null ? "running" : "completed",
    attempt: 1,
    startedAt,
    endedAt,
    output: queuedMs === undefined ? null : { [job]: { status: "succeeded", queuedMs } },
    error: null,
    undoError: null,
    state: null,
  };
}

const plan: PlanOutline = {
  steps: [
    { action: "lint", label: "lint", needs: [] },
    { action: "build", label: "build", needs: [] },
    { action: "publish", label: "publish", needs: ["lint", "build"] },
  ],
  excluded: [],
};

describe("critical path", () => {
  it("follows the need that ended last back from the step that ended last, admission waits apart", () => {
    const path = criticalPathOf({
      createdAt: 1_000,
      plan,
      steps: [step("lint", 1_000, 1_500), step("build", 1_000, 4_000, 2_000), step("publish", 4_001, 6_000)],
    });
    expect(path).toEqual({
      totalMs: 5_000,
      steps: [
        { job: "build", ms: 3_000, queuedMs: 2_000 },
        { job: "publish", ms: 1_999 },
      ],
    });
  });

  it("starts at the concurrency gate, a step the plan does not list", () => {
    const path = criticalPathOf({
      createdAt: 0,
      plan,
      steps: [step(".concurrency", 0, 700), step("lint", 700, 900), step("build", 700, 800)],
    });
    expect(path?.steps.map((s) => s.job)).toEqual([".concurrency", "lint"]);
    expect(path?.totalMs).toBe(900);
  });

  it("is null until a step has completed", () => {
    expect(criticalPathOf({ createdAt: 0, plan, steps: [step("lint", 0, null)] })).toBeNull();
  });
});
