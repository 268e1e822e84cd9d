/**
 * `kill -9` of the server mid-run, then a restart on the same database: the job the dead server left
 * running is killed before anything continues, the run finishes, and completed jobs do not run again.
 */

import { describe, expect, it } from "vitest";
import type { QueueResponse, ResourcesResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project, processesWith, uniqueSleep } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

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
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the second job's sleep");
    server.process.child.kill("SIGKILL");
    await server.process.done;
    // The job's process group outlives the server: only a sweep stops it.
    expect(processesWith(`sleep ${sleep}`).length).toBeGreaterThan(0);

    project.write("restarted", "");
    const again = await startServer(project);
    await eventually(() => processesWith(`sleep ${sleep}`).length === 0, "the leftover sleep to be killed");
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

/** Submits a run of the project's `file` with `inputs`; returns its id. */
async function submitFile(
  server: Server,
  project: Project,
  file: string,
  inputs: Record<string, string> = {},
): Promise<string> {
  const body = { file: { name: `${project.dir}/${file}`, source: project.read(file) }, inputs };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

describe("slipway serve after kill -9 with a lock held and a job queued behind it", () => {
  it("sweeps the holder's leftover job, runs the queued one after it, and leaks no lock slot", async () => {
    const project = new Project();
    project.write("slipway.yml", "locks: { swarm: 1 }\n");
    const sleep = uniqueSleep();
    // Recipe a's deploy holds the lock, sleeping until the test says the server was restarted.
    project.tool(
      "deploy",
      `echo "deploy $1 start" >> trace
if [ "$1" = a ] && [ ! -e restarted ]; then sleep ${sleep}; fi
echo "deploy $1 done" >> trace`,
    );
    project.write(
      "recipe.yml",
      `name: recipe
inputs:
  recipe: {}
jobs:
  prepare:
    run: echo "prepare \${{ inputs.recipe }}" >> trace
  deploy:
    needs: [prepare]
    resources: { locks: [swarm] }
    run: ./deploy \${{ inputs.recipe }}
`,
    );
    const config = ["--config", "slipway.yml"];
    const server = await startServer(project, config);
    const a = await submitFile(server, project, "recipe.yml", { recipe: "a" });
    await eventually(
      () => processesWith(`sleep ${sleep}`).length > 0,
      "a's deploy to sleep holding the lock",
    );
    const b = await submitFile(server, project, "recipe.yml", { recipe: "b" });
    let jobs: QueueResponse["jobs"] = [];
    await eventually(
      async () => {
        ({ jobs } = await server.json<QueueResponse>("GET", "/queue"));
        return jobs.some((j) => j.run === b && j.job === "deploy" && j.reason === "admission");
      },
      () => `b's deploy to be queued for the lock (queue: ${JSON.stringify(jobs)})`,
    );
    // The queued job is not among the running ones: only a's deploy holds anything.
    const before = await server.json<ResourcesResponse>("GET", "/resources");
    expect(before.running.map((r) => [r.run, r.job])).toEqual([[a, "deploy"]]);
    server.process.child.kill("SIGKILL");
    await server.process.done;
    // The job's process group outlives the server: only a sweep stops it.
    expect(processesWith(`sleep ${sleep}`).length).toBeGreaterThan(0);

    project.write("restarted", "");
    const again = await startServer(project, config);
    await eventually(() => processesWith(`sleep ${sleep}`).length === 0, "the leftover sleep to be killed");
    await again.status(a, "completed");
    await again.status(b, "completed");
    const trace = project.trace();
    // Nothing that had completed ran again; b's deploy started only after a's ended.
    expect(project.count("prepare a")).toBe(1);
    expect(project.count("prepare b")).toBe(1);
    expect(project.count("deploy a start")).toBe(2);
    expect(project.count("deploy b start")).toBe(1);
    expect(trace.indexOf("deploy b start"), trace.join("\n")).toBeGreaterThan(trace.indexOf("deploy a done"));

    // No slot leaked: the lock is free, and a new run needing it can run.
    const { pools } = await again.json<ResourcesResponse>("GET", "/resources");
    expect(pools.find((p) => p.name === "lock:swarm")).toMatchObject({ capacity: 1, free: 1, holders: [] });
    const c = await submitFile(again, project, "recipe.yml", { recipe: "c" });
    await again.status(c, "completed");
    expect(project.count("deploy c done")).toBe(1);
  });
});

describe("slipway serve after kill -9 in a burst of signals", () => {
  it("keeps every signal it acknowledged: each of those runs completes after the restart", async () => {
    const project = new Project();
    project.write(
      "approval.yml",
      `name: approval
inputs:
  n: {}
jobs:
  approve:
    wait: { signal: go }
  after:
    needs: [approve]
    run: echo "after \${{ inputs.n }}" >> trace
`,
    );
    const server = await startServer(project);
    const ids: string[] = [];
    for (let n = 0; n < 60; n++)
      ids.push(await submitFile(server, project, "approval.yml", { n: String(n) }));
    await eventually(async () => {
      const waiting = await server.json<{ id: string }[]>("GET", "/runs?status=waiting");
      return waiting.length === ids.length;
    }, "every run to wait for its signal");

    // All 60 sent at once (each on its own connection: a burst the server group-commits); killed as
    // soon as 20 are acknowledged, so the rest are cut off mid-way.
    const acknowledged: string[] = [];
    let killed = false;
    const sent = ids.map(async (id) => {
      try {
        const response = await server.api(`/runs/${id}/signals/go`, {
          method: "POST",
          body: "{}",
          headers: { "content-type": "application/json" },
        });
        if (response.status !== 200) return;
        await response.text();
        // Every 2xx counts, those read after the kill too: the server answered them before it died.
        acknowledged.push(id);
        if (acknowledged.length === 20 && !killed) {
          killed = true;
          server.process.child.kill("SIGKILL");
        }
      } catch {
        // Cut off by the kill: neither acknowledged nor refused.
      }
    });
    await Promise.all(sent);
    await server.process.done;
    expect(acknowledged.length).toBeGreaterThanOrEqual(20);

    const again = await startServer(project);
    for (const id of acknowledged) await again.status(id, "completed");
    const runs = await again.json<{ id: string; status: string }[]>("GET", "/runs");
    // The others were either delivered before the kill (and complete) or never were (and wait).
    for (const run of runs) expect(["completed", "waiting", "running"]).toContain(run.status);
  });
});
