/**
 * Jobs are admitted by what they declare: parallel jobs sharing a lock take turns and the waiting one
 * says whom it waits for (story 3); a job that needs more than the machine has fails at once (story 1).
 */
import { describe, expect, it } from "vitest";
import { Project } from "./harness.js";

describe("resources in a run", () => {
  it("runs jobs that share a lock one at a time, and says who holds it", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `name: swarm
jobs:
  deploy-a:
    resources: { locks: [swarm] }
    run: echo "a start" >> trace; sleep 0.5; echo "a end" >> trace
  deploy-b:
    resources: { locks: [swarm] }
    run: echo "b start" >> trace; sleep 0.5; echo "b end" >> trace
  light:
    run: echo light >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    // Never both inside the lock; the light job did not wait for it.
    const starts = trace.filter((line) => line.endsWith("start"));
    expect(trace.indexOf(starts[1]!)).toBeGreaterThan(trace.indexOf(`${starts[0]![0]} end`));
    expect(trace.indexOf("light")).toBeLessThan(trace.indexOf(`${starts[0]![0]} end`));
    expect(result.stdout).toMatch(
      /deploy-[ab]: queued: waits for lock swarm \(1 of 1 held by run \S+ job deploy-[ab] since/,
    );
  });

  it("fails a job that needs more memory than the machine has, at once and with the reason", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `name: huge
jobs:
  unpack:
    resources: { memory: 64TiB }
    run: echo unpacked >> trace
`,
    );
    const started = Date.now();
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(result.stdout).toMatch(
      /unpack failed: job unpack of run \S+ needs 64 TiB of memory but the pool has/,
    );
    expect(project.trace()).toEqual([]);
  });
});
