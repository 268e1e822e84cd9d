/** YAML loops run: each iteration's jobs as steps of their own, reading the previous one; `max` reached fails with the reason. */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunEvent } from "../../../src/engine/events.js";
import { LocalRuns } from "../../../src/runs/local.js";
import type { RunService } from "../../../src/runs/service.js";
import { eventually, tempDir } from "../../helpers.js";

const LOOP = `name: looped
inputs:
  pass_at: { default: 3 }
  max: { default: 5 }
jobs:
  prepare:
    run: echo "branch=fix-1" >> "$SLIPWAY_OUTPUT"
  attempts:
    needs: [prepare]
    loop:
      max: 4
      until: \${{ needs.check.outputs.result == 'passed' }}
      reason: "last build failed: \${{ needs.check.outputs.error }}"
    jobs:
      fix:
        run: |
          echo "fix \${{ loop.iteration }} on \${{ needs.prepare.outputs.branch }} after '\${{ loop.previous.check.outputs.error }}'" >> trace
          echo "patch=p\${{ loop.iteration }}" >> "$SLIPWAY_OUTPUT"
        undo: echo "undo fix \${{ outputs.patch }}" >> trace
      check:
        needs: [fix]
        run: |
          if [ "\${{ loop.iteration }}" -ge "\${{ inputs.pass_at }}" ]; then
            echo "result=passed" >> "$SLIPWAY_OUTPUT"; echo "nvr=pkg-\${{ needs.fix.outputs.patch }}" >> "$SLIPWAY_OUTPUT"
          else
            echo "result=failed" >> "$SLIPWAY_OUTPUT"; echo "error=hunk \${{ loop.iteration }} failed" >> "$SLIPWAY_OUTPUT"
          fi
  publish:
    needs: [attempts]
    run: echo "publish \${{ needs.attempts.outputs.nvr }} (\${{ needs.attempts.outputs.patch }})" >> trace
`;

async function withRuns(test: (runs: RunService, dir: string) => Promise<void>): Promise<void> {
  const dir = tempDir();
  const runs = await LocalRuns.open({ db: join(dir, "slipway.db"), adopt: "all", pollIntervalMs: 50 });
  try {
    await test(runs, dir);
  } finally {
    await runs.close();
  }
}

async function finished(runs: RunService, id: string) {
  await eventually(async () => {
    const run = await runs.show(id);
    return ["completed", "compensated", "failed"].includes(run.status);
  }, `run ${id} to end`);
  return runs.show(id);
}

async function history(runs: RunService, id: string): Promise<RunEvent[]> {
  const events: RunEvent[] = [];
  for await (const event of await runs.events(id)) events.push(event);
  return events;
}

describe("a YAML loop", () => {
  it("repeats its jobs until `until` holds; each iteration reads the previous one; the jobs after it read its outputs", async () => {
    await withRuns(async (runs, dir) => {
      const file = join(dir, "looped.yml");
      writeFileSync(file, LOOP);
      const { id } = await runs.submit({ file, source: LOOP });
      const run = await finished(runs, id);
      expect(run.status, JSON.stringify(run.cause)).toBe("completed");
      const trace = readFileSync(join(dir, "trace"), "utf8").trim().split("\n");
      expect(trace).toEqual([
        "fix 1 on fix-1 after ''",
        "fix 2 on fix-1 after 'hunk 1 failed'",
        "fix 3 on fix-1 after 'hunk 2 failed'",
        "publish pkg-p3 (p3)",
      ]);
      expect(run.steps.map((s) => s.job).sort()).toEqual(
        [
          "prepare",
          "attempts",
          ...[1, 2, 3].flatMap((i) => [`attempts#${i}.fix`, `attempts#${i}.check`]),
          "publish",
        ].sort(),
      );
      const events = await history(runs, id);
      expect(events.filter((e) => e.type === "loop:iteration").map((e) => e.data)).toEqual([
        { iteration: 2, after: "last build failed: hunk 1 failed" },
        { iteration: 3, after: "last build failed: hunk 2 failed" },
      ]);
    });
  });

  it("reaching `max` fails the loop with its reason, and undoes every iteration's jobs in reverse", async () => {
    await withRuns(async (runs, dir) => {
      const file = join(dir, "looped.yml");
      writeFileSync(file, LOOP);
      const { id } = await runs.submit({ file, source: LOOP }, { inputs: { pass_at: "9" } });
      const run = await finished(runs, id);
      expect(run.status).toBe("compensated");
      expect(run.cause).toMatchObject({
        kind: "failure",
        action: "attempts",
        error: { message: "gave up after 4 iterations: last build failed: hunk 4 failed" },
      });
      const trace = readFileSync(join(dir, "trace"), "utf8").trim().split("\n");
      expect(trace.slice(4)).toEqual(["undo fix p4", "undo fix p3", "undo fix p2", "undo fix p1"]);
    });
  });

  it("waits for a signal in each iteration; `show` says which iteration is under way", async () => {
    const source = `name: approvals
jobs:
  rounds:
    loop:
      max: 3
      until: \${{ needs.review.outputs.verdict == 'approved' }}
      reason: "\${{ needs.review.outputs.verdict }}"
    jobs:
      review:
        wait: { signal: reviewed }
`;
    await withRuns(async (runs, dir) => {
      const file = join(dir, "approvals.yml");
      writeFileSync(file, source);
      const { id } = await runs.submit({ file, source });
      const waiting = async (iteration: number) => {
        await eventually(async () => {
          const run = await runs.show(id);
          return run.waiting.some((w) => w.job === `rounds#${iteration}.review` && w.reason === "signal");
        }, `iteration ${iteration} to wait for its signal`);
        return runs.show(id);
      };
      await waiting(1);
      await runs.signal(id, "reviewed", { verdict: "changes requested" });
      const second = await waiting(2);
      expect(second.status).toBe("waiting");
      expect(second.waiting.find((w) => w.job === "rounds")).toMatchObject({
        reason: "group",
        message: "iteration 2 under way",
      });
      expect(second.steps.find((s) => s.job === "rounds#2.review")).toMatchObject({
        group: "rounds",
        iteration: 2,
      });
      await runs.signal(id, "reviewed", { verdict: "approved" });
      const run = await finished(runs, id);
      expect(run.status).toBe("completed");
      const events = await history(runs, id);
      expect(events.filter((e) => e.type === "loop:iteration").map((e) => e.data)).toEqual([
        { iteration: 2, after: "changes requested" },
      ]);
    });
  });

  it("is skipped, after one iteration of skipped jobs, when a job it needs was skipped; so are the jobs after it", async () => {
    const source = `name: skipped
jobs:
  gate:
    if: false
    run: echo gate >> trace
  attempts:
    needs: [gate]
    loop: { max: 5, until: "\${{ needs.try.outputs.ok == 'yes' }}" }
    jobs:
      try:
        run: echo try >> trace
  after:
    needs: [attempts]
    run: echo after >> trace
`;
    await withRuns(async (runs, dir) => {
      const file = join(dir, "skipped.yml");
      writeFileSync(file, source);
      const { id } = await runs.submit({ file, source });
      const run = await finished(runs, id);
      expect(run.status, JSON.stringify(run.cause)).toBe("completed");
      expect(run.steps.map((s) => s.job).sort()).toEqual(["after", "attempts", "attempts#1.try", "gate"]);
      const result = (job: string) => run.steps.find((s) => s.job === job)!.output;
      expect(result("attempts#1.try")).toMatchObject({
        try: { status: "skipped", reason: "needs gate, which was skipped" },
      });
      expect(result("after")).toMatchObject({
        after: { status: "skipped", reason: "needs attempts, which was skipped" },
      });
    });
  });
});
