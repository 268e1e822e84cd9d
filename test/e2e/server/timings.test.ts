/**
 * Per-phase timings in a real `slipway serve`: a job waiting for a lock another run holds shows,
 * while it waits and after, what it waited for and who held it (`show --json` and `show`); a failed
 * run's critical path covers it whole, through the failing job and the rollback's undo.
 */

import { describe, expect, it } from "vitest";
import type { RunDetail, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

/** Holds the swarm lock until the test creates `release-<recipe>`. */
const DEPLOY = `name: deploy
inputs:
  recipe: {}
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: |
      echo "deploy \${{ inputs.recipe }}" >> trace
      while [ ! -e "release-\${{ inputs.recipe }}" ]; do sleep 0.05; done
`;

async function submit(server: Server, source: string, inputs: Record<string, string> = {}): Promise<string> {
  const body = { file: { name: "pipe.yml", source }, inputs };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

async function showJson(project: Project, server: Server, id: string): Promise<RunDetail> {
  const shown = await project.run(["show", id, "--json", ...server.flags]);
  expect(shown.code, shown.stderr).toBe(0);
  return JSON.parse(shown.stdout) as RunDetail;
}

describe("timings in slipway serve", () => {
  it("shows a job's wait for a lock another run holds: the lock, the holder, while it waits and after", async () => {
    const project = new Project();
    project.write("slipway.yml", "locks: { swarm: 1 }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const first = await submit(server, DEPLOY, { recipe: "a" });
    await eventually(() => project.trace().includes("deploy a"), "the first deploy");
    const second = await submit(server, DEPLOY, { recipe: "b" });

    // While it waits: an open waiting phase, with the lock, its holder and its place in line.
    const waiting = await eventually(async () => {
      const run = await showJson(project, server, second);
      const phase = run.timings?.find((t) => t.job === "deploy")?.phases.at(-1);
      return phase?.phase === "waiting" ? phase : undefined;
    }, "the second deploy's wait in show --json");
    expect(waiting).toMatchObject({
      endedAt: null,
      attempt: 1,
      reason: { kind: "lock", resource: "swarm", holder: { run: first, job: "deploy" }, position: 1 },
    });

    project.write("release-a", "");
    project.write("release-b", "");
    await server.status(second, "completed");
    // After: the wait is kept (from the history), closed where the job started running.
    const run = await showJson(project, server, second);
    // (Queued from the run's creation until it asked, unless that was within the same millisecond.)
    const phases = run.timings!.find((t) => t.job === "deploy")!.phases.filter((p) => p.phase !== "queued");
    expect(phases.map((p) => p.phase)).toEqual(["waiting", "running"]);
    expect(phases[0]).toMatchObject({
      reason: { kind: "lock", resource: "swarm", holder: { run: first, job: "deploy" } },
    });
    expect(phases[0]!.endedAt).toBe(phases[1]!.startedAt);
    // The API returns the same.
    const api = await server.json<RunDetail>("GET", `/runs/${second}`);
    expect(api.timings).toEqual(run.timings);
    // Its critical path is the whole run, the wait included.
    expect(run.criticalPath?.totalMs).toBe(run.endedAt! - run.createdAt);
    expect(run.criticalPath?.steps).toEqual([
      expect.objectContaining({ job: "deploy", queuedMs: phases[0]!.endedAt! - phases[0]!.startedAt }),
    ]);
    const text = await project.run(["show", second, ...server.flags]);
    expect(text.stdout).toMatch(
      new RegExp(
        `^ {2}deploy +(queued \\S+ · )?waited \\S+ for lock swarm \\(held by run ${first} job deploy; 1st in line\\) · ran \\S+$`,
        "m",
      ),
    );
  });

  it("covers a failed run whole: the failing job, then the rollback's undo", async () => {
    const project = new Project();
    const server = await startServer(project, []);
    const id = await submit(
      server,
      `name: release
jobs:
  build:
    run: echo built >> trace
    undo: echo unbuilt >> trace
  deploy:
    needs: [build]
    run: echo "deploy failed"; exit 3
`,
    );
    const ended = await server.status(id, "compensated");
    expect(ended.cause).toMatchObject({ kind: "failure", action: "deploy" });
    const run = await showJson(project, server, id);
    const path = run.criticalPath!;
    expect(path.totalMs).toBe(run.endedAt! - run.createdAt);
    expect(path.steps.map((s) => [s.job, s.phase ?? "run", s.failed ?? false])).toEqual([
      ["build", "run", false],
      ["deploy", "run", true],
      ["build", "undo", false],
    ]);
    expect(path.segments.reduce((sum, s) => sum + s.endedAt! - s.startedAt, 0)).toBe(path.totalMs);
    expect(
      run.timings
        ?.find((t) => t.job === "build")
        ?.phases.map((p) => p.phase)
        .filter((p) => p !== "queued"),
    ).toEqual(["running", "undoing"]);
    const text = await project.run(["show", id, ...server.flags]);
    expect(text.stdout).toMatch(/^critical {2}\S+: build \S+ -> deploy \S+ \(failed\) -> build undo \S+$/m);
    expect(text.stdout).toMatch(/^ {2}build +(queued \S+ · )?ran \S+ · undo \S+$/m);
  });
});
