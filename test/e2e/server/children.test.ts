/**
 * Child pipelines in `slipway serve`: a child run is a run of its own in the list and in the
 * admission queue, with its own jobs' locks, while its parent's job waits holding nothing; after
 * kill -9 of the server, a restarted one continues both.
 */

import { describe, expect, it } from "vitest";
import type { QueueResponse, RunSummary, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project, processesWith, uniqueSleep } from "../cli/harness.js";
import { listRuns, type Server, startServer } from "./server.js";

/** Holds the swarm lock until the test creates `release-holder`. */
const HOLDER = `name: holder
jobs:
  hold:
    resources: { locks: [swarm] }
    run: |
      echo hold >> trace
      while [ ! -e release-holder ]; do sleep 0.05; done
`;

const PARENT = `name: parent
jobs:
  plan:
    run: echo plan >> trace; echo "recipe=web" >> "$SLIPWAY_OUTPUT"
  deploy:
    needs: plan
    uses: ./deploy.yml
    with: { recipe: "\${{ needs.plan.outputs.recipe }}" }
  report:
    needs: deploy
    run: echo "report \${{ needs.deploy.outputs.url }}" >> trace
`;

const DEPLOY = `name: deploy
inputs:
  recipe:
outputs:
  url: \${{ needs.roll.outputs.url }}
jobs:
  roll:
    resources: { locks: [swarm] }
    run: ./roll "\${{ inputs.recipe }}"
`;

async function submit(server: Server, project: Project, file: string): Promise<string> {
  const body = { file: { name: `${project.dir}/${file}`, source: project.read(file) } };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

describe("child pipelines in slipway serve", () => {
  it("queues the child's job behind the lock as its own run, then hands its outputs to the parent", async () => {
    const project = new Project();
    project.write("slipway.yml", "locks: { swarm: 1 }\n");
    project.write("holder.yml", HOLDER);
    project.write("parent.yml", PARENT);
    project.write("deploy.yml", DEPLOY);
    project.tool("roll", `echo "roll $1" >> trace; echo "url=https://$1.example" >> "$SLIPWAY_OUTPUT"`);
    const server = await startServer(project, ["--config", "slipway.yml"]);

    const holder = await submit(server, project, "holder.yml");
    await eventually(() => project.trace().includes("hold"), "the holder's job");
    const parent = await submit(server, project, "parent.yml");
    const child = `${parent}.deploy`;

    // The child's job waits for the lock in the queue, under the child run's id.
    const queued = await eventually(
      async () => (await server.json<QueueResponse>("GET", "/queue")).jobs.find((j) => j.run === child),
      "the child's job in the queue",
    );
    expect(queued).toMatchObject({ job: "roll", pipeline: "deploy", reason: "admission", state: "queued" });
    expect(queued.message).toMatch(
      new RegExp(`waits for lock swarm \\(1 of 1 held by run ${holder} job hold`),
    );
    // Its parent's job waits for it, holding nothing (admission knows nothing of it).
    const queue = await server.json<QueueResponse>("GET", "/queue");
    expect(queue.jobs.filter((j) => j.run === parent).map((j) => [j.job, j.reason, j.message])).toEqual([
      ["deploy", "child", `waiting for child run ${child}`],
      ["report", "needs", "after deploy"],
    ]);
    const runs = await listRuns(server);
    expect(runs.find((r: RunSummary) => r.id === child)).toMatchObject({ pipeline: "deploy" });
    expect(runs.find((r: RunSummary) => r.id === parent)).toMatchObject({ status: "waiting" });
    const cli = await project.run(["queue", ...server.flags]);
    expect(cli.stdout).toMatch(new RegExp(`${child.replaceAll(".", "\\.")} +roll +queued +admission`));

    project.write("release-holder", "");
    await server.status(parent, "completed");
    expect(project.trace()).toEqual(["hold", "plan", "roll web", "report https://web.example"]);
    const shown = await project.run(["show", parent, ...server.flags]);
    expect(shown.stdout).toMatch(new RegExp(`child +${child.replaceAll(".", "\\.")} completed`));
  });

  it("continues the parent and its child after kill -9 of the server", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    project.write("parent.yml", PARENT);
    project.write("deploy.yml", DEPLOY);
    project.tool(
      "roll",
      `echo "roll $1" >> trace
if [ ! -e restarted ]; then sleep ${sleep}; fi
echo "url=https://$1.example" >> "$SLIPWAY_OUTPUT"`,
    );
    const server = await startServer(project);
    const parent = await submit(server, project, "parent.yml");
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the child's job");
    server.process.child.kill("SIGKILL");
    await server.process.done;

    project.write("restarted", "");
    const again = await startServer(project);
    await eventually(() => processesWith(`sleep ${sleep}`).length === 0, "the leftover sleep to be killed");
    const run = await again.status(parent, "completed");
    expect(run.steps.map((s) => [s.job, s.status, s.attempt])).toEqual([
      ["plan", "completed", 1],
      ["deploy", "completed", 1],
      ["report", "completed", 1],
    ]);
    expect(project.trace()).toEqual(["plan", "roll web", "roll web", "report https://web.example"]);
    const child = await again.status(`${parent}.deploy`, "completed");
    expect(child.steps.map((s) => [s.job, s.attempt])).toEqual([["roll", 2]]);
  });
});
