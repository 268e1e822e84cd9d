/**
 * `kill -9` of the server mid-run, then a restart on the same database: the job the dead server left
 * running is killed before anything continues, the run finishes, and completed jobs do not run again.
 */
import { describe, expect, it } from "vitest";
import type { SubmitResponse } from "../../src/server/schemas.js";
import { Project, processesWith, uniqueSleep, until } from "../pipelines/harness.js";
import { startServer } from "./server.js";

describe("slipway serve after kill -9", () => {
  it("sweeps the dead server's leftover job, finishes the run and reruns no completed job", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    // `second` sleeps until the test says the server was restarted; each job counts its starts in `trace`.
    project.tool(
      "second",
      `echo "second start" >> trace
if [ ! -e restarted ]; then sleep ${sleep}; fi
echo "second done" >> trace`,
    );
    project.write(
      "long.yml",
      `name: long
jobs:
  first:
    run: echo first >> trace
  second:
    needs: [first]
    run: ./second
  third:
    needs: [second]
    run: echo third >> trace
`,
    );
    const server = await startServer(project);
    const { id } = await server.json<SubmitResponse>(
      "POST",
      "/runs",
      { file: { name: `${project.dir}/long.yml`, source: project.read("long.yml") } },
      201,
    );
    await until("the second job's sleep", () => processesWith(`sleep ${sleep}`).length > 0);
    server.process.child.kill("SIGKILL");
    await server.process.done;
    // The job's process group outlives the server: only a sweep stops it.
    expect(processesWith(`sleep ${sleep}`).length).toBeGreaterThan(0);

    project.write("restarted", "");
    const again = await startServer(project);
    await until("the leftover sleep to be killed", () => processesWith(`sleep ${sleep}`).length === 0);
    const run = await again.status(id, "completed");
    expect(run.steps.map((s) => [s.job, s.status, s.attempt])).toEqual([
      ["first", "completed", 1],
      ["second", "completed", 2],
      ["third", "completed", 1],
    ]);
    expect(project.count("first")).toBe(1);
    expect(project.count("second start")).toBe(2);
    expect(project.trace().slice(-2)).toEqual(["second done", "third"]);
  });
});
