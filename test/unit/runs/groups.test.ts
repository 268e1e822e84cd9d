/** `show` of a run with groups: each step of a loop carries its iteration, each step of a fan-out its item. */
import { expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { runDetail } from "../../../src/runs/detail.js";
import { backends, harness, within } from "../../helpers.js";

it("show names the group and the iteration or item of every step inside one", async () => {
  const h = harness(backends[0]!);
  const grouped = saga("grouped", { version: 1 })
    .loop("attempts", {
      max: 5,
      body: (steps) =>
        steps.action("try", { reads: ["iteration"], output: z.number(), run: ({ iteration }) => iteration }),
      until: ({ try: n }) => n === 2,
    })
    .forEach("builds", {
      items: () => ["a", "b"],
      body: (steps) => steps.action("compile", { reads: ["item"], run: () => {} }),
    })
    .build();
  const executor = await h.executor({ sagas: [grouped] });
  const handle = await executor.start(grouped);
  expect((await within(handle.result(), "the run")).status).toBe("completed");
  const detail = runDetail((await h.storage.load(handle.id))!);
  const shown = detail.steps.map((s) => ({
    job: s.job,
    group: s.group,
    iteration: s.iteration,
    item: s.item,
  }));
  expect(shown.sort((a, b) => a.job.localeCompare(b.job))).toEqual([
    { job: "attempts", group: undefined, iteration: undefined, item: undefined },
    { job: "attempts#1.try", group: "attempts", iteration: 1, item: undefined },
    { job: "attempts#2.try", group: "attempts", iteration: 2, item: undefined },
    { job: "builds", group: undefined, iteration: undefined, item: undefined },
    { job: "builds#1.compile", group: "builds", iteration: undefined, item: 1 },
    { job: "builds#2.compile", group: "builds", iteration: undefined, item: 2 },
  ]);
});

it("gives every step of a run with groups its phases, and a critical path over the whole run", async () => {
  const h = harness(backends[0]!);
  const grouped = saga("grouped", { version: 1 })
    .loop("attempts", {
      max: 5,
      body: (steps) =>
        steps.action("try", { reads: ["iteration"], output: z.number(), run: ({ iteration }) => iteration }),
      until: ({ try: n }) => n === 2,
    })
    .forEach("builds", {
      items: () => ["a", "b"],
      body: (steps) => steps.action("compile", { reads: ["item"], run: () => {} }),
    })
    .build();
  const executor = await h.executor({ sagas: [grouped] });
  const handle = await executor.start(grouped);
  expect((await within(handle.result(), "the run")).status).toBe("completed");
  const detail = runDetail((await h.storage.load(handle.id))!, {
    history: await h.storage.history(handle.id),
  });
  const phases = new Map(detail.timings!.map((t) => [t.job, t.phases]));
  // A group waits for its own steps; each of them ran.
  expect(phases.get("attempts")).toEqual([
    expect.objectContaining({ phase: "waiting", reason: { kind: "loop" } }),
  ]);
  expect(phases.get("builds")).toEqual([
    expect.objectContaining({ phase: "waiting", reason: { kind: "fan-out" } }),
  ]);
  for (const job of ["attempts#1.try", "attempts#2.try", "builds#1.compile", "builds#2.compile"])
    expect(phases.get(job)?.map((p) => p.phase)).toEqual(["running"]);
  const path = detail.criticalPath!;
  expect(path.totalMs).toBe(detail.endedAt! - detail.createdAt);
  expect(path.segments.reduce((sum, s) => sum + s.endedAt! - s.startedAt, 0)).toBe(path.totalMs);
});
