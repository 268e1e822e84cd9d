/**
 * Stopping runs from outside (story 3: tear down on cancel or interrupt, sweep orphans after a crash):
 * Ctrl-C, `slipway cancel` from another terminal, and `kill -9` followed by `slipway resume`.
 */

import { describe, expect, it } from "vitest";
import { eventually } from "../../wait.js";
import { Project, processesWith, runId, uniqueSleep } from "./harness.js";

/** A pipeline whose `deploy` job starts a background sleep (a grandchild of the CLI) and waits for it. */
function sleepingPipeline(project: Project, sleep: string): void {
  project.write(
    "pipe.yml",
    `name: stack
jobs:
  prepare:
    run: echo prepare >> trace
    undo: echo "undo prepare" >> trace
  deploy:
    needs: [prepare]
    run: echo deploy >> trace; sleep ${sleep} & wait
    undo: echo "undo deploy" >> trace
  test:
    needs: [deploy]
    run: echo test >> trace
`,
  );
}

describe("interrupts", () => {
  it("on SIGINT stops the running job's processes, undoes completed jobs and exits 130", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    sleepingPipeline(project, sleep);
    const running = project.start(["run", "pipe.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the deploy job's sleep");
    running.child.kill("SIGINT");
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(130);
    expect(result.stderr).toMatch(/SIGINT: cancelling/);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    // deploy was stopped, not completed: only prepare had something to undo.
    expect(project.trace()).toEqual(["prepare", "deploy", "undo prepare"]);
    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("cancelled");
    expect(shown.cause).toMatchObject({ kind: "cancel", reason: "interrupted (SIGINT)" });
  });

  it("on `slipway cancel` from another process stops the job, undoes and exits 1", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    sleepingPipeline(project, sleep);
    const running = project.start(["run", "pipe.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the deploy job's sleep");
    const id = await running.runId();
    const cancel = await project.run(["cancel", id, "--reason", "wrong branch"]);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect(cancel.stdout).toMatch(/the process running it is stopping its jobs/);
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    expect(project.trace()).toEqual(["prepare", "deploy", "undo prepare"]);
    const shown = await project.show(id);
    expect(shown.status).toBe("cancelled");
    expect(shown.cause).toMatchObject({ kind: "cancel", reason: "wrong branch" });
  });

  it("on a second SIGINT exits at once; resume finishes the interrupted rollback", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    const undoSleep = uniqueSleep();
    // prepare's first undo hangs, so the second Ctrl-C lands while the rollback is under way.
    project.tool(
      "undo-prepare",
      `echo "undo prepare" >> trace
if [ ! -e undo.once ]; then touch undo.once; sleep ${undoSleep} & wait; fi
echo "undo prepare done" >> trace`,
    );
    project.write(
      "pipe.yml",
      `name: stack
jobs:
  prepare:
    run: echo prepare >> trace
    undo: ./undo-prepare
  deploy:
    needs: [prepare]
    run: echo deploy >> trace; sleep ${sleep} & wait
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the deploy job's sleep");
    const id = await running.runId();
    running.child.kill("SIGINT");
    await eventually(() => processesWith(`sleep ${undoSleep}`).length > 0, "the undo's sleep");
    running.child.kill("SIGINT");
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(130);
    expect(result.stderr).toMatch(/SIGINT again: stopping now/);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    expect((await project.show(id)).status).toBe("compensating");

    const resumed = await project.run(["resume", id]);
    expect(processesWith(`sleep ${undoSleep}`)).toEqual([]);
    expect(resumed.stderr).toMatch(/killed \d+ leftover process\(es\)/);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(1);
    expect(project.trace()).toEqual([
      "prepare",
      "deploy",
      "undo prepare",
      "undo prepare",
      "undo prepare done",
    ]);
    expect((await project.show(id)).status).toBe("cancelled");
  });

  it("after kill -9, resume kills the dead run's leftover processes and finishes without rerunning completed jobs", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    // The first attempt of deploy hangs in a sleep; the one after the crash finds its marker and goes on.
    project.tool(
      "deploy",
      `echo "deploy started" >> trace
if [ ! -e deploy.once ]; then touch deploy.once; sleep ${sleep} & wait; fi
echo "deploy done" >> trace`,
    );
    project.write(
      "pipe.yml",
      `name: stack
jobs:
  prepare:
    run: echo prepare >> trace
    undo: echo "undo prepare" >> trace
  deploy:
    needs: [prepare]
    run: ./deploy
  test:
    needs: [deploy]
    run: echo test >> trace
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await eventually(() => processesWith(`sleep ${sleep}`).length > 0, "the deploy job's sleep");
    const id = await running.runId();
    running.child.kill("SIGKILL");
    await running.done;
    // The job's process group outlives the CLI: that is what the sweep is for.
    const [orphan] = processesWith(`sleep ${sleep}`);
    expect(orphan).toBeDefined();

    const resumed = project.start(["resume"]);
    await resumed.waitFor(/killed \d+ leftover process\(es\) of a crashed job/);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    const result = await resumed.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`resuming run ${id}`);
    expect(project.trace()).toEqual(["prepare", "deploy started", "deploy started", "deploy done", "test"]);
    const shown = await project.show(id);
    expect(shown.status).toBe("completed");
    expect(shown.steps.find((s) => s.job === "prepare")?.attempt).toBe(1);
    expect(shown.steps.find((s) => s.job === "deploy")?.attempt).toBe(2);
  });

  it("leaves a run of a live process alone: resume skips it, and two runs share one project", async () => {
    const project = new Project();
    project.tool(
      "hold",
      `echo held >> trace; for _ in $(seq 600); do [ -e go ] && exit 0; sleep 0.05; done; exit 1`,
    );
    project.write(
      "held.yml",
      "name: held\njobs:\n  hold:\n    run: ./hold\n  after:\n    needs: [hold]\n    run: echo after >> trace\n",
    );
    project.write("quick.yml", "name: quick\njobs:\n  only:\n    run: echo quick >> trace\n");
    const held = project.start(["run", "held.yml"]);
    await eventually(() => project.count("held") === 1, "the held job");
    const id = await held.runId();

    // Another terminal runs its own pipeline meanwhile, and resume finds nothing of its own to do.
    const quick = await project.run(["run", "quick.yml"]);
    expect(quick.code, quick.stdout + quick.stderr).toBe(0);
    const resumed = await project.run(["resume"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`run ${id} is being run by a live process`);
    expect(resumed.stdout).not.toContain("resuming");

    project.write("go", "");
    const result = await held.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["held", "quick", "after"]);
  });

  it("leaves a waiting run that a live terminal follows alone (it owns nothing while it waits)", async () => {
    const project = new Project();
    project.write(
      "gated.yml",
      "name: gated\njobs:\n  approve:\n    wait: { signal: go, timeout: 1m }\n  after:\n    needs: [approve]\n    run: echo after >> trace\n",
    );
    const gated = project.start(["run", "gated.yml"]);
    await gated.waitFor(/approve: waiting for signal "go"/);
    const id = runId(gated.stdout);
    const resumed = await project.run(["resume"]);
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(
      `run ${id} is being followed by a live process (pid ${gated.child.pid})`,
    );
    expect(resumed.stdout).not.toContain("resuming");

    expect((await project.run(["signal", id, "go"])).code).toBe(0);
    const result = await gated.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["after"]);
  });
});
