/** Planning a run: typed inputs, requested tiers, matrix legs, and what is left out and why. */
import { describe, expect, it } from "vitest";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import { planRun } from "../../../src/pipeline/plan.js";
import { PipelineInputError } from "../../../src/pipeline/problems.js";

const pipeline = parsePipeline(
  `
name: ci
inputs:
  multiarch: { default: false }
  level: { type: choice, options: [low, high], default: low }
  retries: { type: number, default: 1 }
jobs:
  build:
    matrix:
      platform: [linux/amd64]
      include:
        - { platform: linux/arm64, if: "\${{ inputs.multiarch }}" }
    run: echo "digest=1" >> "$SLIPWAY_OUTPUT"
  heavy:
    needs: [build]
    tier: extra
    run: echo "report=r" >> "$SLIPWAY_OUTPUT"
  summary:
    needs: [heavy]
    run: echo "\${{ needs.heavy.outputs.report }}"
  teardown:
    needs: [build, heavy]
    run: echo done
`,
  "ci.yml",
);

function problems(fn: () => unknown): readonly string[] {
  try {
    fn();
  } catch (error) {
    if (error instanceof PipelineInputError) return error.problems;
    throw error;
  }
  throw new Error("no problems reported");
}

describe("planRun", () => {
  it("types inputs, expands matrix legs, and leaves out unrequested tiers and what reads their outputs", () => {
    const plan = planRun(pipeline, { inputs: { retries: "3" }, tiers: [] });
    expect(plan.inputs).toEqual({ multiarch: false, level: "low", retries: 3 });
    expect(plan.steps.map((s) => [s.action, s.needs])).toEqual([
      ["build.linux-amd64", []],
      // The teardown needs the left-out tier but reads none of its outputs: it runs after build.
      ["teardown", ["build.linux-amd64"]],
    ]);
    expect(plan.excluded).toEqual([
      { job: "heavy", reason: 'tier "extra" not requested' },
      { job: "summary", reason: 'reads outputs of "heavy", which is left out' },
    ]);
  });

  it("includes opt-in legs and requested tiers", () => {
    const plan = planRun(pipeline, { inputs: { multiarch: "true" }, tiers: ["extra"] });
    expect(plan.steps.map((s) => s.label)).toEqual([
      "build (linux/amd64)",
      "build (linux/arm64)",
      "heavy",
      "summary",
      "teardown",
    ]);
    expect(plan.steps.find((s) => s.action === "teardown")!.needs).toEqual([
      "build.linux-amd64",
      "build.linux-arm64",
      "heavy",
    ]);
  });

  it("reports every wrong input and unknown tier at once, with suggestions", () => {
    expect(
      problems(() =>
        planRun(pipeline, { inputs: { multiarch: "yes", level: "mid", retires: "2" }, tiers: ["extr"] }),
      ),
    ).toEqual([
      'unknown input "retires"; did you mean "retries"?',
      'input "multiarch" must be true or false, got "yes"',
      'input "level" must be one of `low` or `high`, got "mid"',
      'no job is in tier "extr" (tiers: `extra`); did you mean "extra"?',
    ]);
  });
});
