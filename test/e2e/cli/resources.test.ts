/**
 * Jobs are admitted by what they declare: parallel jobs sharing a lock take turns and the waiting one
 * says whom it waits for (story 3); a job that needs more than the machine has fails at once (story 1).
 */
import { describe, expect, it } from "vitest";
import { within } from "../../wait.js";
import { Project, runId } from "./harness.js";

describe("resources in a run", () => {
  it("runs jobs that share a lock one at a time, and says who holds it", async () => {
    const project = new Project();
    // The lock is held until the light job ran, so it ran beside the lock and not after it, and until
    // the test saw the other deploy say it is queued (at most 30 s).
    project.tool(
      "hold",
      "for _ in $(seq 600); do [ -e light.done ] && [ -e release ] && exit 0; sleep 0.05; done; exit 1",
    );
    project.write(
      "pipe.yml",
      `name: swarm
jobs:
  deploy-a:
    resources: { locks: [swarm] }
    run: echo "a start" >> trace; ./hold; echo "a end" >> trace
  deploy-b:
    resources: { locks: [swarm] }
    run: echo "b start" >> trace; ./hold; echo "b end" >> trace
  light:
    run: echo light >> trace; touch light.done
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await running.waitFor(
      /deploy-[ab]: queued: waits for lock swarm \(1 of 1 held by run \S+ job deploy-[ab] since/,
    );
    project.write("release", "");
    const result = await within(running.done, "the run");
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    // Never both inside the lock; the light job did not wait for it.
    const starts = trace.filter((line) => line.endsWith("start"));
    expect(trace.indexOf(starts[1]!)).toBeGreaterThan(trace.indexOf(`${starts[0]![0]} end`));
    expect(trace.indexOf("light")).toBeLessThan(trace.indexOf(`${starts[0]![0]} end`));
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
    // A job that waited for memory instead would never end: `run` gives up long before.
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(
      /unpack failed: job unpack of run \S+ needs 64 TiB of memory but the pool has/,
    );
    expect(project.trace()).toEqual([]);
  });

  it("measures each job's peak memory, and memory: auto asks for the recent p95 plus a margin", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `name: unpack
jobs:
  unpack:
    resources: { memory: auto }
    run: node -e 'const b = Buffer.alloc(300 * 2 ** 20, 1); setTimeout(() => console.log(b.length), 800)'
`,
    );
    const results: { peak: number; admitted: number }[] = [];
    let last = "";
    for (let i = 0; i < 2; i++) {
      const run = await project.run(["run", "pipe.yml"]);
      expect(run.code, run.stdout + run.stderr).toBe(0);
      last = runId(run.stdout);
      const shown = await project.show(last);
      const output = shown.steps[0]!.output!.unpack as unknown as {
        peakRssBytes: number;
        admittedMemoryBytes: number;
      };
      results.push({ peak: output.peakRssBytes, admitted: output.admittedMemoryBytes });
    }
    // The process tree held the 300 MiB buffer: that is what was measured.
    for (const { peak } of results) expect(peak).toBeGreaterThan(300 * 2 ** 20);
    // Nothing measured yet: 1 GiB. Then the p95 of what was measured, plus 20%.
    expect(results[0]!.admitted).toBe(2 ** 30);
    expect(results[1]!.admitted / results[0]!.peak).toBeGreaterThan(1.15);
    expect(results[1]!.admitted / results[0]!.peak).toBeLessThan(1.3);
    const text = await project.run(["show", last]);
    expect(text.stdout).toMatch(/unpack +completed +1 +\S+ +auto \d+ MiB \/ \d+(\.\d)? MiB/);
  });

  it("shows the critical path: which jobs the run's time went to, queueing apart", async () => {
    const project = new Project();
    // The builds end only after lint did (at most 15 s), so the critical path goes through them.
    project.tool(
      "after-lint",
      "for _ in $(seq 300); do [ -e lint.done ] && exit 0; sleep 0.05; done; exit 1",
    );
    project.write(
      "pipe.yml",
      `name: release
jobs:
  build-worker:
    resources: { locks: [builder] }
    run: ./after-lint
  build-app:
    resources: { locks: [builder] }
    run: ./after-lint
  lint:
    run: touch lint.done
  publish:
    needs: [build-worker, build-app, lint]
    run: "true"
`,
    );
    const run = await project.run(["run", "pipe.yml"]);
    expect(run.code, run.stdout + run.stderr).toBe(0);
    const shown = await project.run(["show", runId(run.stdout)]);
    // The two builds share a lock: whichever went second waited for the first, then publish.
    expect(shown.stdout).toMatch(/^critical {2}\S+: build-(worker|app) \S+, \S+ queued -> publish \S+$/m);
  });
});
