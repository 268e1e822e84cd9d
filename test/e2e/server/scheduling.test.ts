/**
 * Scheduling policy in a real `slipway serve` (stories 1 and 3): a burst from one concurrency key
 * does not starve another key, a large job is not starved by a stream of small ones (reservations),
 * and a job that needs more disk than the work volume has free fails at once with the reason.
 */
import { describe, expect, it } from "vitest";
import type { QueueResponse, ResourcesResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

async function submit(server: Server, source: string, inputs: Record<string, string> = {}): Promise<string> {
  const body = { file: { name: "pipe.yml", source }, inputs };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

/** The queue's entries for job `job` that wait for admission (admission), by run id. */
async function waitingForResources(server: Server, job: string): Promise<Set<string>> {
  const { jobs } = await server.json<QueueResponse>("GET", "/queue");
  return new Set(jobs.filter((j) => j.job === job && j.reason === "admission").map((j) => j.run));
}

/** Waits until every run of `ids` has its job `job` queued on admission, so the next grant sees them all. */
async function allQueued(server: Server, job: string, ids: readonly string[], what: string): Promise<void> {
  await eventually(async () => {
    const queued = await waitingForResources(server, job);
    return ids.every((id) => queued.has(id));
  }, `${what} to wait for admission`);
}

describe("scheduling in slipway serve", () => {
  // Each job holds its slot until the test writes its release file, so who starts next is decided by
  // the policy alone, never by how fast a job or a submission happened to be.
  it("shares capacity fairly across keys: a burst from one key does not hold back another", async () => {
    const project = new Project();
    project.write("slipway.yml", "resources: { cpu: 2 }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    // The key comes from the run's inputs; the limit is high so only fairness decides who goes first.
    const team = `name: team
inputs:
  team: {}
  n: {}
concurrency: { key: "\${{ inputs.team }}", limit: 50 }
jobs:
  work:
    resources: { cpu: 1 }
    run: |
      echo "start \${{ inputs.team }}\${{ inputs.n }}" >> trace
      while [ ! -e "release-\${{ inputs.team }}\${{ inputs.n }}" ]; do sleep 0.05; done
`;
    const burst: string[] = [];
    for (let n = 1; n <= 12; n++) burst.push(await submit(server, team, { team: "A", n: String(n) }));
    await eventually(() => project.trace().length === 2, "two of A's jobs to take the two cpus");
    const late = [
      await submit(server, team, { team: "B", n: "1" }),
      await submit(server, team, { team: "B", n: "2" }),
    ];
    await allQueued(server, "work", [...burst.slice(2), ...late], "A's other ten jobs and B's two");

    // Release the oldest running job, one at a time, and see who takes the freed cpu.
    const running = project.trace().map((line) => line.slice("start ".length));
    for (let step = 1; step <= 3; step++) {
      project.write(`release-${running.shift()}`, "");
      await eventually(() => project.trace().length === 2 + step, `start number ${2 + step}`);
      running.push(project.trace().at(-1)!.slice("start ".length));
    }
    // With first-come-first-served B's two would have been the 13th and 14th to start; fairly shared,
    // B (holding nothing) takes the first freed cpu and its second comes within the next two.
    const trace = project.trace();
    expect(trace.slice(0, 2).sort(), trace.join("\n")).toEqual(["start A1", "start A2"]);
    expect(trace[2], trace.join("\n")).toMatch(/^start B/);
    expect(
      trace.slice(3, 5).filter((line) => line.startsWith("start B")),
      trace.join("\n"),
    ).toHaveLength(1);

    for (const name of ["A", "B"].flatMap((t) => Array.from({ length: 12 }, (_, i) => `${t}${i + 1}`)))
      project.write(`release-${name}`, "");
    for (const id of [...burst, ...late]) await server.status(id, "completed");
    expect(project.trace()).toHaveLength(14);
  });

  it("does not starve a large job behind a stream of small ones: it reserves what frees up", async () => {
    const project = new Project();
    project.write("slipway.yml", "resources: { memory: 4GiB }\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const small = `name: small
inputs:
  n: {}
jobs:
  work:
    resources: { memory: 1GiB }
    run: |
      echo "small \${{ inputs.n }}" >> trace
      while [ ! -e "release-\${{ inputs.n }}" ]; do sleep 0.05; done
`;
    const big = `name: big
jobs:
  unpack:
    resources: { memory: 4GiB }
    run: echo "big" >> trace
`;
    const first = [];
    for (let n = 1; n <= 4; n++) first.push(await submit(server, small, { n: String(n) }));
    await eventually(() => project.trace().length === 4, "the first four small jobs");
    const large = await submit(server, big);
    await allQueued(server, "unpack", [large], "the big job");
    // Small jobs keep arriving after the big one; each fits in what one small job frees.
    const later = [];
    for (let n = 5; n <= 10; n++) later.push(await submit(server, small, { n: String(n) }));
    await allQueued(server, "work", later, "the later small jobs");

    // The small jobs running before the big one end one by one; none of the later ones may take
    // the gigabyte each of them frees.
    for (let n = 1; n <= 4; n++) project.write(`release-${n}`, "");
    await server.status(large, "completed");
    for (let n = 5; n <= 10; n++) project.write(`release-${n}`, "");
    for (const id of [...first, ...later]) await server.status(id, "completed");
    const trace = project.trace();
    // The big job started as soon as the four running before it ended, ahead of every later small one.
    expect(trace.slice(0, 5).sort(), trace.join("\n")).toEqual(
      ["big", "small 1", "small 2", "small 3", "small 4"].sort(),
    );
    expect(trace[4], trace.join("\n")).toBe("big");
    expect(trace).toHaveLength(11);
  });

  it("fails a job at once when it needs more disk than the work volume has free", async () => {
    const project = new Project();
    // The pool is larger than any disk: only the volume's real free space can refuse the job.
    project.write("slipway.yml", "resources: { disk: 8000TiB }\nwork_dir: .\n");
    const server = await startServer(project, ["--config", "slipway.yml"]);
    const huge = `name: export
jobs:
  export:
    resources: { disk: 4000TiB }
    run: echo exported >> trace
`;
    const id = await submit(server, huge);
    // Nothing could ever free enough disk, so a run that waited instead of failing would never end.
    const run = await server.status(id, "compensated");
    expect(run.cause).toMatchObject({ kind: "failure", action: "export" });
    expect(run.cause?.kind === "failure" && run.cause.error.message).toMatch(
      /job export of run \S+ needs [\d.]+ [KMGTP]?i?B of disk, [\d.]+ [KMGTP]?i?B free on the work volume, and no running job holds disk that could be freed/,
    );
    expect(project.trace()).toEqual([]);
    // Nothing stays granted or queued.
    const { pools } = await server.json<ResourcesResponse>("GET", "/resources");
    expect(pools.find((p) => p.name === "disk")?.holders).toEqual([]);
  });
});
