/**
 * Story 2 (the release that went out half-built): a late failure undoes what earlier jobs did, in
 * reverse dependency order, and a publish-last job never runs unless every job it needs succeeded.
 */
import { describe, expect, it } from "vitest";
import { Project, runId } from "./harness.js";

/** `./t WORDS`: appends WORDS as one line to trace; `./t --fail WORDS` then exits 1. */
function withTraceTool(project: Project): void {
  project.tool(
    "t",
    `fail=0; if [ "$1" = --fail ]; then fail=1; shift; fi
echo "$*" >> trace
if [ "$fail" = 1 ]; then echo "$* broke" >&2; exit 1; fi`,
  );
}

describe("rollback", () => {
  it("undoes completed jobs in reverse dependency order when the last job fails", async () => {
    const project = new Project();
    withTraceTool(project);
    project.write(
      "pipe.yml",
      `name: release
jobs:
  fetch:
    run: ./t fetch
    undo: ./t undo fetch
  build-app:
    needs: [fetch]
    run: ./t build-app
    undo: ./t undo build-app
  build-worker:
    needs: [fetch]
    run: ./t build-worker
    undo: ./t undo build-worker
  deploy:
    needs: [build-app, build-worker]
    run: ./t deploy
    undo: ./t undo deploy
  smoke:
    needs: [deploy]
    run: ./t --fail smoke
    undo: ./t undo smoke
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stderr).toBe(1);

    const trace = project.trace();
    // What ran, each once; the failed job is not undone (it did nothing to undo).
    expect(trace.slice(0, 4).sort()).toEqual(["build-app", "build-worker", "deploy", "fetch"].sort());
    expect(trace[0]).toBe("fetch");
    expect(trace[3]).toBe("deploy");
    expect(trace[4]).toBe("smoke");
    const undos = trace.slice(5);
    expect(undos.sort()).toEqual(["undo build-app", "undo build-worker", "undo deploy", "undo fetch"].sort());
    // Reverse dependency order: deploy before both builds, both builds before fetch.
    const at = (line: string) => trace.indexOf(line);
    expect(at("undo deploy")).toBeLessThan(at("undo build-app"));
    expect(at("undo deploy")).toBeLessThan(at("undo build-worker"));
    expect(at("undo build-app")).toBeLessThan(at("undo fetch"));
    expect(at("undo build-worker")).toBeLessThan(at("undo fetch"));
    expect(trace).not.toContain("undo smoke");

    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("compensated");
    expect(shown.cause).toMatchObject({ kind: "failure", action: "smoke" });
    expect(shown.cause?.kind === "failure" && shown.cause.error.message).toContain("smoke broke");
    const status = Object.fromEntries(shown.steps.map((s) => [s.job, s.status]));
    expect(status).toEqual({
      fetch: "undone",
      "build-app": "undone",
      "build-worker": "undone",
      deploy: "undone",
      smoke: "failed",
    });
    expect(result.stdout).toMatch(/smoke failed: failed \(exit 1\): smoke broke/);
  });

  it("never runs a publish-last job when a job it needs fails, and undoes the others", async () => {
    const project = new Project();
    withTraceTool(project);
    // The embeddings build fails only once both other builds are done, so their undos are due.
    project.tool(
      "embeddings",
      `for _ in $(seq 200); do
  if grep -qx app trace 2>/dev/null && grep -qx worker trace 2>/dev/null; then break; fi
  sleep 0.05
done
./t --fail embeddings`,
    );
    project.write(
      "pipe.yml",
      `name: images
jobs:
  app:
    run: ./t app
    undo: ./t undo app
  worker:
    run: ./t worker
    undo: ./t undo worker
  embeddings:
    run: ./embeddings
    undo: ./t undo embeddings
  publish:
    needs: [app, worker, embeddings]
    run: ./t publish
    undo: ./t undo publish
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stderr).toBe(1);

    const trace = project.trace();
    expect(trace).not.toContain("publish");
    expect(trace).not.toContain("undo publish");
    expect(trace).not.toContain("undo embeddings");
    expect(project.count("undo app")).toBe(1);
    expect(project.count("undo worker")).toBe(1);
    expect(trace.indexOf("undo app")).toBeGreaterThan(trace.indexOf("embeddings"));

    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("compensated");
    expect(shown.cause).toMatchObject({ kind: "failure", action: "embeddings" });
    const publish = shown.steps.find((s) => s.job === "publish");
    // Never started: either not recorded at all or recorded without ever running.
    expect(publish === undefined || !["completed", "undone", "running"].includes(publish.status)).toBe(true);
  });

  it("needs attention (exit 3) when an undo keeps failing; resume runs the undo again once fixed", async () => {
    const project = new Project();
    withTraceTool(project);
    project.tool(
      "teardown",
      `echo "undo push" >> trace
if [ ! -e registry-up ]; then echo "registry unreachable" >&2; exit 1; fi`,
    );
    project.write(
      "pipe.yml",
      `name: push
jobs:
  build:
    run: ./t build
    undo: ./t undo build
  push:
    needs: [build]
    run: ./t push
    undo: ./teardown
  deploy:
    needs: [push]
    run: ./t --fail deploy
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(3);
    const id = runId(result.stdout);
    expect(result.stdout).toContain(`slipway resume ${id}`);
    // Three undo attempts, and build's undo waits behind the one that failed.
    expect(project.trace()).toEqual(["build", "push", "deploy", "undo push", "undo push", "undo push"]);
    const stuck = await project.show(id);
    expect(stuck.status).toBe("needs_attention");
    const push = stuck.steps.find((s) => s.job === "push")!;
    expect(push.status).toBe("undo_failed");
    expect(push.undoError).toContain("registry unreachable");

    project.write("registry-up", "");
    const resumed = await project.run(["resume", id]);
    // The run still failed: undone now, but failed.
    expect(resumed.code, resumed.stdout + resumed.stderr).toBe(1);
    expect(project.trace().slice(6)).toEqual(["undo push", "undo build"]);
    expect((await project.show(id)).status).toBe("compensated");
  });
});
