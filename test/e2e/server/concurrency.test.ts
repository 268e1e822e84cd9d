/**
 * `concurrency:` in a real `slipway serve`: at most `limit` runs of one key, the others queued in
 * order and saying behind whom; with `cancel_in_progress` a newer run cancels the older one (its undo
 * runs) and starts once it has ended; runs of another key are not held up.
 */

import { describe, expect, it } from "vitest";
import type { QueueResponse, SubmitResponse } from "../../../src/runs/schemas.js";
import { eventually } from "../../wait.js";
import { Project, processesWith, uniqueSleep } from "../cli/harness.js";
import { type Server, startServer } from "./server.js";

function pipeline(options: string, hold: string): string {
  return `name: recipe
inputs:
  recipe: {}
  n: {}
concurrency: { key: "\${{ inputs.recipe }}", ${options} }
jobs:
  deploy:
    run: |
      echo "start \${{ inputs.recipe }}\${{ inputs.n }}" >> trace
      ${hold}
      echo "end \${{ inputs.recipe }}\${{ inputs.n }}" >> trace
    undo: echo "undo \${{ inputs.recipe }}\${{ inputs.n }}" >> trace
`;
}

async function submit(server: Server, source: string, recipe: string, n: number): Promise<string> {
  const body = {
    file: { name: "recipe.yml", source },
    inputs: { recipe, n: String(n) },
    name: `${recipe}${n}`,
  };
  return (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
}

describe("concurrency keys in slipway serve", () => {
  it("queues a second run of the same key, explains it, and lets another key through", async () => {
    const project = new Project();
    const server = await startServer(project);
    const source = pipeline(
      "limit: 1",
      'while [ ! -e "release-$INPUT_RECIPE$INPUT_N" ]; do sleep 0.05; done',
    );
    const a1 = await submit(server, source, "a", 1);
    await eventually(() => project.trace().includes("start a1"), "a1");
    const a2 = await submit(server, source, "a", 2);
    const b1 = await submit(server, source, "b", 1);
    await eventually(() => project.trace().includes("start b1"), "b1, another key");
    project.write("release-b1", "");
    await server.status(b1, "completed");
    expect(project.trace()).not.toContain("start a2");

    const queue = await eventually(async () => {
      const queue = await server.json<QueueResponse>("GET", "/queue");
      return queue.jobs.some((j) => j.run === a2 && j.job === ".concurrency") && queue;
    }, "a2 at its concurrency gate in the queue");
    const gate = queue.jobs.find((j) => j.run === a2 && j.job === ".concurrency");
    expect(gate?.message).toMatch(
      /waits for concurrency key a \(limit 1\): a1 \(running since [\d:]+\); 1st in line/,
    );
    expect(queue.jobs.find((j) => j.run === a2 && j.job === "deploy")?.message).toBe("after .concurrency");
    // show gives the queue's answer for the job that has not started.
    const shown = await project.run(["show", a2, ...server.flags]);
    expect(shown.stdout).toMatch(/deploy +pending +0 +- +- +after \.concurrency/);

    project.write("release-a1", "");
    project.write("release-a2", "");
    await server.status(a1, "completed");
    await server.status(a2, "completed");
    const trace = project.trace();
    expect(trace.indexOf("start a2")).toBeGreaterThan(trace.indexOf("end a1"));
  });

  it("cancels the older run of the key with cancel_in_progress: its undo runs, then the newer starts", async () => {
    const project = new Project();
    const server = await startServer(project);
    const sleep = uniqueSleep();
    const source = pipeline(
      "cancel_in_progress: true",
      `if [ "$INPUT_N" = 1 ]; then sleep ${sleep} & wait; fi`,
    );
    const first = await submit(server, source, "a", 1);
    await eventually(() => project.trace().includes("start a1"), "the first run");
    const second = await submit(server, source, "a", 2);
    const cancelled = await server.status(first, "cancelled");
    expect(cancelled.cause).toMatchObject({ kind: "cancel", reason: `superseded by run ${second}` });
    await server.status(second, "completed");
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    // The first deploy was stopped before it completed: nothing of it to undo; the second ran after.
    expect(project.trace()).toEqual(["start a1", "start a2", "end a2"]);
  });
});
