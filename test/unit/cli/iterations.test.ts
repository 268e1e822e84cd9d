/** `slipway show`'s table unfolds groups: each iteration's (or item's) steps under their group. */
import { expect, it } from "vitest";
import { groupNote, iterationCells, unfold } from "../../../src/cli/commands/iterations.js";
import type { StepSummary } from "../../../src/runs/schemas.js";

const step = (job: string, extra: Partial<StepSummary> = {}): StepSummary => ({
  job,
  status: "completed",
  attempt: 1,
  startedAt: 1_000,
  endedAt: 2_000,
  output: null,
  error: null,
  undoError: null,
  state: null,
  ...extra,
});

it("lists a loop's iterations and a fan-out's items under their group, in order, with their jobs' own names", () => {
  const steps = [
    step("prepare"),
    step("a.loop"),
    step("a.loop#2.fix", { group: "a.loop", iteration: 2, startedAt: 3_000, endedAt: 4_500 }),
    step("a.loop#1.fix", { group: "a.loop", iteration: 1 }),
    step("a.loop#1.check", {
      group: "a.loop",
      iteration: 1,
      endedAt: 2_500,
      output: { check: { status: "success", outputs: { result: "failed", error: "hunk #1" } } },
    }),
    step("builds", { state: { items: ["x", "y"] } }),
    step("builds#1.compile", { group: "builds", item: 1 }),
    step("builds#2.compile", { group: "builds", item: 2, status: "running", endedAt: null }),
  ];
  const rows = unfold(steps);
  expect(rows.map((r) => r.name)).toEqual([
    "prepare",
    "a.loop",
    "  iteration 1",
    "    fix",
    "    check",
    "  iteration 2",
    "    fix",
    "builds",
    "  item 1",
    "    compile",
    "  item 2",
    "    compile",
  ]);
  expect(groupNote(rows, "a.loop")).toBe("2 iterations");
  expect(groupNote(rows, "builds")).toBe("2 items");
  expect(groupNote(rows, "prepare")).toBe("");
  const first = rows[2]!;
  expect(first.kind === "iteration" && iterationCells(first.steps)).toEqual({
    time: "1.5s",
    note: "result=failed error=hunk #1",
  });
  // An iteration whose last job has not completed says nothing of it yet.
  const item = rows[10]!;
  expect(item.kind === "iteration" && iterationCells(item.steps).note).toBe("");
});
