/** `on_failure: hold`: a failed run keeps what completed, and `slipway retry` continues from the failed job. */
import { describe, expect, it } from "vitest";
import { Project, runId } from "./harness.js";

describe("on_failure: hold", () => {
  it("keeps completed jobs after a failure and retries only from the failed job", async () => {
    const project = new Project();
    project.tool(
      "migrate",
      `echo migrate >> trace
if [ ! -e fixed ]; then echo "schema lock held" >&2; exit 1; fi`,
    );
    project.write(
      "pipe.yml",
      `name: held
on_failure: hold
jobs:
  build:
    run: echo build >> trace
    undo: echo "undo build" >> trace
  push:
    needs: [build]
    run: echo push >> trace
    undo: echo "undo push" >> trace
  migrate:
    needs: [push]
    run: ./migrate
  release:
    needs: [migrate]
    run: echo release >> trace
`,
    );
    const first = await project.run(["run", "pipe.yml"]);
    expect(first.code, first.stdout + first.stderr).toBe(1);
    const id = runId(first.stdout);
    expect(first.stdout).toContain(`slipway retry ${id}`);
    expect(project.trace()).toEqual(["build", "push", "migrate"]);
    const held = await project.show(id);
    expect(held.status).toBe("failed");
    expect(held.cause?.kind === "failure" && held.cause.error.message).toContain("schema lock held");
    expect(Object.fromEntries(held.steps.map((s) => [s.job, s.status]))).toMatchObject({
      build: "completed",
      push: "completed",
      migrate: "failed",
    });

    // Resuming is the wrong verb for a held run: it says which one to use.
    const resumed = await project.run(["resume", id]);
    expect(resumed.code).toBe(1);
    expect(resumed.stderr).toContain(`slipway retry ${id}`);

    project.write("fixed", "");
    const retried = await project.run(["retry", id]);
    expect(retried.code, retried.stdout + retried.stderr).toBe(0);
    expect(project.trace()).toEqual(["build", "push", "migrate", "migrate", "release"]);
    const done = await project.show(id);
    expect(done.status).toBe("completed");
    expect(done.steps.find((s) => s.job === "build")?.attempt).toBe(1);

    // A completed run is not retried again.
    const again = await project.run(["retry", id]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("only a held run");
    expect(project.count("release")).toBe(1);
  });
});
