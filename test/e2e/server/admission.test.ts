/**
 * Admission in a real `slipway serve` (story 3): light runs go on while a heavy one holds the
 * exclusive lock, every queued job says whom it waits behind, a crash-looping deploy frees the lock
 * in seconds, and a job bigger than the pool fails at once with the reason.
 */

import { describe, expect, it } from "vitest";
import type { QueueResponse, SubmitResponse } from "../../../src/runs/schemas.js";
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
      echo "done \${{ inputs.recipe }}" >> trace
`;

const LIGHT = `name: light
inputs:
  n: {}
jobs:
  lint:
    run: echo "light \${{ inputs.n }}" >> trace
`;

async function submit(server: Server, source: string, inputs: Record<string, string>): Promise<string> {
  const body = { file: { name: "pipe.yml", source }, inputs };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

describe("admission in slipway serve", () => {
  it("lets light runs through while a heavy run holds the lock, and says who holds it", async () => {
    const project = new Project();
    project.write("slipway.yml", "locks: { swarm: 1 }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);

    const first = await submit(server, DEPLOY, { recipe: "a" });
    await eventually(() => project.trace().includes("deploy a"), "the first deploy");
    const second = await submit(server, DEPLOY, { recipe: "b" });
    const lights = await Promise.all([1, 2, 3].map((n) => submit(server, LIGHT, { n: String(n) })));
    for (const id of lights) await server.status(id, "completed");
    expect(project.trace()).not.toContain("deploy b");

    // The queued deploy says what it waits for, who holds it and since when, and its place in line.
    const queued = await eventually(
      async () => (await server.json<QueueResponse>("GET", "/queue")).jobs.find((j) => j.run === second),
      "the second deploy in the queue",
    );
    // Started, but held back by admission: queued, in the queue as in show.
    expect(queued).toMatchObject({ reason: "admission", state: "queued" });
    expect(queued.message).toMatch(
      new RegExp(`waits for lock swarm \\(1 of 1 held by run ${first} job deploy since`),
    );
    expect(queued.message).toMatch(/1st in line/);
    const cli = await project.run(["queue", ...server.flags]);
    expect(cli.code, cli.stderr).toBe(0);
    expect(cli.stdout).toMatch(new RegExp(`${second} +deploy +queued +admission +- +waits for lock swarm`));
    const shown = await project.run(["show", second, ...server.flags]);
    expect(shown.stdout).toMatch(/deploy +queued +1 .* waits for lock swarm/);

    project.write("release-a", "");
    project.write("release-b", "");
    await server.status(first, "completed");
    await server.status(second, "completed");
    const trace = project.trace();
    expect(trace.indexOf("deploy b")).toBeGreaterThan(trace.indexOf("done a"));
  });

  it("frees the lock within seconds when a deploy crash-loops, so the run queued behind it starts", async () => {
    const project = new Project();
    project.write("slipway.yml", "locks: { swarm: 1 }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const looping = `name: recipe
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: echo "deploy broken" >> trace
    undo: echo "teardown broken" >> trace
    ready:
      run: echo "db exited with code 1"; exit 1
      every: 200ms
      timeout: 20m
      crash_loop: { failures: 3, within: 60s }
`;
    const broken = await submit(server, looping, {});
    await eventually(() => project.trace().includes("deploy broken"), "the broken deploy");
    const next = await submit(server, DEPLOY, { recipe: "next" });
    project.write("release-next", "");
    const failed = await server.status(broken, "compensated");
    expect(failed.cause).toMatchObject({ kind: "failure", action: "deploy.ready" });
    // Within seconds, not the 20-minute timeout: `status` waits far less than that.
    await server.status(next, "completed");
    expect(project.trace()).toEqual(["deploy broken", "teardown broken", "deploy next", "done next"]);
  });

  it("fails a job that needs more memory than the pool has, at once, with the reason", async () => {
    const project = new Project();
    project.write("slipway.yml", "resources: { memory: 1GiB }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const huge = `name: unpack
jobs:
  unpack:
    resources: { memory: 4GiB }
    run: echo unpacked >> trace
`;
    const id = await submit(server, huge, {});
    const run = await server.status(id, "compensated");
    expect(run.cause?.kind === "failure" && run.cause.error.message).toMatch(
      /job unpack of run \S+ needs 4 GiB of memory but the pool has 1 GiB/,
    );
    expect(project.trace()).toEqual([]);
  });

  it("refuses a config file with problems, pointing at the line", async () => {
    const project = new Project();
    project.write("slipway.yml", "resources:\n  memory: 16 gigs\n");
    const result = await project.run(["serve", "--port", "0", "--db", project.db, "--config", "slipway.yml"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/slipway\.yml:2:\d+: /);
  });
});
