/**
 * Story 3 (the CI queue one broken deploy wedged): a service that crash-loops fails its job at once,
 * with the reason, instead of waiting out a 20-minute deploy timeout.
 */

import { describe, expect, it } from "vitest";
import { eventually } from "../../wait.js";
import { Project, runId } from "./harness.js";

describe("ready probes", () => {
  it("fails a crash-looping service within seconds, with the probe's last output in the reason", async () => {
    const project = new Project();
    // Each check counts itself, so the reason can be seen to carry the last one's output.
    project.tool(
      "probe",
      `n=$(( $(grep -c '^probe' trace 2>/dev/null || true) + 1 ))
echo "probe $n" >> trace
echo "db: connection refused (check $n)"
exit 1`,
    );
    project.write(
      "pipe.yml",
      `name: recipe
jobs:
  deploy:
    run: echo deploy >> trace
    undo: echo "undo deploy" >> trace
    ready:
      run: ./probe
      every: 200ms
      timeout: 20m
      crash_loop: { failures: 3, within: 60s }
  test:
    needs: [deploy]
    run: echo test >> trace
`,
    );
    // Within seconds, not the 20-minute timeout: `run` gives up long before that.
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    // The service did start: the probe is a step of its own after the deploy, so the rollback undoes the deploy.
    expect(project.trace()).toEqual(["deploy", "probe 1", "probe 2", "probe 3", "undo deploy"]);

    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("compensated");
    expect(shown.cause).toMatchObject({ kind: "failure", action: "deploy.ready" });
    const reason = shown.cause?.kind === "failure" ? shown.cause.error.message : "";
    expect(reason).toMatch(/crash loop: 3 probe failures within 60s/);
    expect(reason).toContain("exit 1");
    expect(reason).toContain("db: connection refused (check 3)");
    expect(shown.steps.find((s) => s.job === "deploy.ready")?.error).toBe(reason);
    expect(shown.steps.find((s) => s.job === "deploy")?.status).toBe("undone");
  });

  it("waits through not-yet answers (exit 75) and then succeeds", async () => {
    const project = new Project();
    project.tool(
      "probe",
      `n=$(( $(grep -c '^probe' trace 2>/dev/null || true) + 1 ))
echo "probe $n" >> trace
if [ "$n" -lt 3 ]; then echo "starting"; exit 75; fi`,
    );
    project.write(
      "pipe.yml",
      `name: recipe
jobs:
  deploy:
    run: echo deploy >> trace
    ready: { run: ./probe, every: 100ms, timeout: 1m, crash_loop: { failures: 2, within: 1m } }
  test:
    needs: [deploy]
    run: echo test >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["deploy", "probe 1", "probe 2", "probe 3", "test"]);
  });

  it("tears the deploy down when the run is interrupted while its probe still waits", async () => {
    const project = new Project();
    project.tool("probe", `echo probe >> trace\necho "starting"\nexit 75`);
    project.write(
      "pipe.yml",
      `name: recipe
jobs:
  deploy:
    run: echo deploy >> trace
    undo: echo "undo deploy" >> trace
    ready: { run: ./probe, every: 100ms, timeout: 20m }
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await eventually(() => project.trace().includes("probe"), "the probe");
    running.child.kill("SIGINT");
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(130);
    // The deploy completed and its probe is a step of its own: the cancel undoes the deploy.
    expect(project.trace().filter((line) => line !== "probe")).toEqual(["deploy", "undo deploy"]);
    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("cancelled");
    expect(shown.steps.map((s) => [s.job, s.status])).toEqual([
      ["deploy", "undone"],
      ["deploy.ready", "failed"],
    ]);
  });
});
