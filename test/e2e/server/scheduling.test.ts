/**
 * Scheduling policy in a real `slipway serve` (stories 1 and 3): a burst from one concurrency key
 * does not starve another key, a large job is not starved by a stream of small ones (reservations),
 * and a job that needs more disk than the work volume has free fails at once with the reason.
 */
import { describe, expect, it } from "vitest";
import type { ResourcesResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { Project, until } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

async function submit(server: Server, source: string, inputs: Record<string, string> = {}): Promise<string> {
  const body = { file: { name: "pipe.yml", source }, inputs };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

/** Indices in the trace of lines starting with `prefix`. */
function startsOf(trace: readonly string[], prefix: string): number[] {
  return trace.flatMap((line, i) => (line.startsWith(prefix) ? [i] : []));
}

describe("scheduling in slipway serve", () => {
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
      echo "start \${{ inputs.team }} \${{ inputs.n }}" >> trace
      sleep 0.4
`;
    const burst: string[] = [];
    for (let n = 1; n <= 12; n++) burst.push(await submit(server, team, { team: "A", n: String(n) }));
    const late = [
      await submit(server, team, { team: "B", n: "1" }),
      await submit(server, team, { team: "B", n: "2" }),
    ];
    for (const id of late) await server.status(id, "completed");
    // B's two jobs ran while most of A's burst still waited: with first-come-first-served they
    // would have been the 13th and 14th to start.
    const trace = project.trace();
    const b = startsOf(trace, "start B");
    expect(b, trace.join("\n")).toHaveLength(2);
    expect(Math.max(...b), trace.join("\n")).toBeLessThan(6);
    for (const id of burst) await server.status(id, "completed");
    expect(startsOf(project.trace(), "start A")).toHaveLength(12);
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
      sleep 0.5
`;
    const big = `name: big
jobs:
  unpack:
    resources: { memory: 4GiB }
    run: echo "big" >> trace
`;
    const first = [];
    for (let n = 1; n <= 4; n++) first.push(await submit(server, small, { n: String(n) }));
    await until("the first four small jobs", () => startsOf(project.trace(), "small").length === 4);
    const large = await submit(server, big);
    // Small jobs keep arriving after the big one; each fits in what one small job frees.
    const later = [];
    for (let n = 5; n <= 10; n++) later.push(await submit(server, small, { n: String(n) }));

    await server.status(large, "completed");
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
    const started = Date.now();
    const id = await submit(server, huge);
    const run = await server.status(id, "compensated");
    expect(Date.now() - started).toBeLessThan(5_000);
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
