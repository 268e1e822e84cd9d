/**
 * examples/backport.yml (story 1) through the real `slipway` binary: the agent fixes, submits, waits
 * for the build and reads its result until a build passes, then opens the merge request once; `show`
 * tells it iteration by iteration; a `kill -9` in the middle of an iteration's wait loses nothing.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runId } from "../cli/harness.js";
import { project } from "./project.js";

/** What the fake agent, build service and forge were asked to do, in order. */
const calls = (p: ReturnType<typeof project>) => p.read(".state/backport/calls").split("\n").filter(Boolean);

/** Every call a run with `n` iterations makes, once each. */
const story = (n: number) => [
  "prepare podman c10s",
  ...Array.from({ length: n }, (_, i) => [`fix ${i + 1}`, `submit ${i + 1}`]).flat(),
  "open-mr RHEL-1234 c10s",
];

describe("examples/backport.yml (story 1)", () => {
  it("fixes again after a failed build, then opens the merge request with the build that passed", async () => {
    const p = project();
    const result = await p.run(["run", "backport.yml", "--name", "RHEL-1234-c10s-1"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^run \S+ \(RHEL-1234-c10s-1\): backport, 3 jobs$/m);
    expect(result.stdout).toMatch(/attempts#1\.build \| build 1: building/);
    expect(result.stdout).toMatch(
      /attempts: iteration 2 \(last build failed: patch does not apply cleanly: hunk #1 FAILED/,
    );
    expect(result.stdout).toMatch(
      /attempts#2\.fix \| iteration 2: reworking the patch after: patch does not apply cleanly: hunk #1/,
    );
    expect(result.stdout).toMatch(/attempts#2\.result \| build 2 passed: podman-1\.0-2\.c10s/);
    expect(p.read(".state/backport/merge-requests/RHEL-1234-c10s.md")).toContain(
      "Built and verified as podman-1.0-2.c10s by run RHEL-1234-c10s-1.",
    );
    expect(calls(p)).toEqual(story(2));
    // The run name stands for the run id in other commands.
    const show = await p.run(["show", "RHEL-1234-c10s-1"]);
    expect(show.stdout).toMatch(/status {4}completed/);
  });

  it("with fail_first=3 passes in the fourth iteration, and `show` tells the story iteration by iteration", async () => {
    const p = project();
    const result = await p.run(["run", "backport.yml", "-i", "fail_first=3", "-i", "build_seconds=0"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(calls(p)).toEqual(story(4));

    const id = runId(result.stdout);
    const show = await p.run(["show", id]);
    expect(show.code, show.stderr).toBe(0);
    const lines = show.stdout.split("\n");
    const at = (pattern: RegExp) => {
      const index = lines.findIndex((line) => pattern.test(line));
      expect(index, `no line matching ${pattern} in:\n${show.stdout}`).toBeGreaterThanOrEqual(0);
      return index;
    };
    const order = [
      at(/^prepare +completed/),
      at(/^attempts +completed +1 +\S+ +- +4 iterations$/),
      ...[1, 2, 3].map((i) =>
        at(
          new RegExp(
            `^  iteration ${i} +\\S+ +result=failed error=patch does not apply cleanly: hunk #${i} FAILED`,
          ),
        ),
      ),
      at(/^ {2}iteration 4 +\S+ +result=passed nvr=podman-1\.0-4\.c10s$/),
      at(/^open-merge-request +completed/),
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // Each iteration lists its four jobs under it, in order.
    const first = order[2]!;
    expect(lines.slice(first + 1, first + 5).map((line) => line.split(/ {2,}/)[1])).toEqual([
      "fix",
      "submit-build",
      "build",
      "result",
    ]);
    expect(lines.filter((line) => /^ {4}fix +completed/.test(line))).toHaveLength(4);

    const shown = await p.show(id);
    expect(shown.steps.find((s) => s.job === "attempts#4.result")?.output).toMatchObject({
      result: { status: "success", outputs: { result: "passed", nvr: "podman-1.0-4.c10s" } },
    });
  });

  it("gives up after ten iterations with the last reason, and cancels every build it submitted", async () => {
    const p = project();
    const result = await p.run(["run", "backport.yml", "-i", "fail_first=10", "-i", "build_seconds=0"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toContain(
      "attempts failed: gave up after 10 iterations: last build failed: patch does not apply cleanly: hunk #10 FAILED",
    );
    expect(result.stdout.match(/\| cancelled build \d+/g)).toHaveLength(10);
    expect(p.read(".state/backport/merge-requests/RHEL-1234-c10s.md")).toBe("");
  });

  it("after kill -9 in the third iteration's wait, resume goes on in that iteration: nothing before it runs again", async () => {
    const p = project();
    // Builds take an hour unless the test says they are done (it sets their time to 0), so the crash
    // lands in the third build's wait whatever the machine's speed.
    const finish = (build: number) =>
      writeFileSync(join(p.dir, ".state", "backport", "builds", String(build), "seconds"), "0\n");
    const running = p.start(["run", "backport.yml", "-i", "fail_first=3", "-i", "build_seconds=3600"]);
    for (const build of [1, 2]) {
      await running.waitFor(new RegExp(`attempts#${build}\\.build \\| build ${build}: building`));
      finish(build);
    }
    await running.waitFor(/attempts#3\.build \| build 3: building/);
    const id = await running.runId();
    running.child.kill("SIGKILL");
    await running.done;
    expect(calls(p)).toEqual(story(3).slice(0, -1));
    finish(3);

    const resumed = p.start(["resume"]);
    await resumed.waitFor(/attempts#4\.build \| build 4: building/);
    finish(4);
    const result = await resumed.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toContain(`resuming run ${id}`);
    expect(result.stdout).not.toMatch(/attempts#[12]\./);
    // Iterations 1 and 2 did not run again; the third's fix and submission neither: its wait went on.
    expect(calls(p)).toEqual(story(4));
    expect(p.read(".state/backport/merge-requests/RHEL-1234-c10s.md")).toContain(
      "Built and verified as podman-1.0-4.c10s",
    );
    const shown = await p.show(id);
    expect(shown.status).toBe("completed");
    for (const step of [
      "attempts#1.fix",
      "attempts#2.submit-build",
      "attempts#3.fix",
      "attempts#3.submit-build",
    ])
      expect(shown.steps.find((s) => s.job === step)?.attempt, step).toBe(1);
  });

  it("backport-signal.yml waits for the build-finished signal in each iteration and reads its payload", async () => {
    const p = project();
    const running = p.start(["run", "backport-signal.yml", "--name", "RHEL-1234-c10s-2"]);
    await running.waitFor(/attempts#1\.build-finished: waiting for signal "build-finished"/);
    const failed = JSON.stringify({ result: "failure", error: "hunk #1 FAILED at 137" });
    const first = await p.run(["signal", "RHEL-1234-c10s-2", "build-finished", failed]);
    expect(first.code, first.stderr).toBe(0);
    await running.waitFor(/attempts#2\.build-finished: waiting for signal "build-finished"/);
    expect(running.stdout).toMatch(
      /attempts#2\.fix \| iteration 2: reworking the patch after: hunk #1 FAILED at 137/,
    );
    const passed = JSON.stringify({ result: "success", nvr: "podman-1.0-2.c10s" });
    const second = await p.run(["signal", "RHEL-1234-c10s-2", "build-finished", passed]);
    expect(second.code, second.stderr).toBe(0);
    const result = await running.done;
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(runId(result.stdout)).toBeTruthy();
    expect(p.read(".state/backport/merge-requests/RHEL-1234-c10s.md")).toContain(
      "Built and verified as podman-1.0-2.c10s by run RHEL-1234-c10s-2.",
    );
    expect(calls(p)).toEqual(story(2));
  });
});
