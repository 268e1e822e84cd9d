/**
 * The rest of the file format, end to end: opt-in matrix legs and tiers (story 2: build only what
 * production pulls), `if:` skips, secrets kept out of logs and events, retries, timeouts, polls.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Project, processesWith, runId, uniqueSleep } from "./harness.js";

const IMAGES = `name: images
inputs:
  multiarch: { type: boolean, default: false }
jobs:
  build:
    matrix:
      image: [app, worker]
      platform: [linux/amd64]
      include:
        - image: app
          platform: linux/arm64
          if: \${{ inputs.multiarch }}
    run: echo "build \${{ matrix.image }} \${{ matrix.platform }} $MATRIX_PLATFORM" >> trace
  publish:
    needs: [build]
    run: echo publish >> trace
  e2e:
    tier: extra
    needs: [publish]
    run: echo e2e >> trace
`;

describe("pipeline features", () => {
  it("builds only the default matrix legs and leaves opt-in tiers out", async () => {
    const project = new Project();
    project.write("pipe.yml", IMAGES);
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    expect(trace.slice(0, 2).sort()).toEqual([
      "build app linux/amd64 linux/amd64",
      "build worker linux/amd64 linux/amd64",
    ]);
    expect(trace.slice(2)).toEqual(["publish"]);
    expect(result.stdout).toMatch(/not run: e2e \(tier "extra" not requested/);
  });

  it("adds the opt-in matrix leg with --input and the tier with --tier", async () => {
    const project = new Project();
    project.write("pipe.yml", IMAGES);
    const result = await project.run(["run", "pipe.yml", "--input", "multiarch=true", "--tier", "extra"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const trace = project.trace();
    expect(trace.slice(0, 3).sort()).toEqual([
      "build app linux/amd64 linux/amd64",
      "build app linux/arm64 linux/arm64",
      "build worker linux/amd64 linux/amd64",
    ]);
    // publish needs every leg, e2e needs publish.
    expect(trace.slice(3)).toEqual(["publish", "e2e"]);
  });

  it("skips a job whose if is false, and the jobs that need it", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `inputs:
  notify: { type: boolean, default: false }
jobs:
  build:
    run: echo build >> trace
  notify:
    needs: [build]
    if: \${{ inputs.notify }}
    run: echo notify >> trace
  after-notify:
    needs: [notify]
    run: echo after-notify >> trace
  independent:
    needs: [build]
    run: echo independent >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["build", "independent"]);
    expect(result.stdout).toMatch(/skipped: notify, after-notify/);
    const shown = await project.show(runId(result.stdout));
    expect(shown.status).toBe("completed");
    const notify = shown.steps.find((s) => s.job === "notify")!;
    expect(notify.output?.notify).toMatchObject({
      status: "skipped",
      reason: `if: \${{ inputs.notify }} is false`,
    });
    const after = shown.steps.find((s) => s.job === "after-notify")!;
    expect(after.output?.["after-notify"]).toMatchObject({
      status: "skipped",
      reason: "needs notify, which was skipped",
    });

    const opted = await project.run(["run", "pipe.yml", "--input", "notify=true"]);
    expect(opted.code, opted.stdout + opted.stderr).toBe(0);
    expect(project.count("notify")).toBe(1);
    expect(project.count("after-notify")).toBe(1);
  });

  it("skips a wait whose if is false, and one whose needed job was skipped, instead of waiting", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `inputs:
  gated: { type: boolean, default: false }
jobs:
  build:
    run: echo build >> trace
  approve:
    needs: [build]
    if: \${{ inputs.gated }}
    wait: { signal: approved, timeout: 1h }
  deploy:
    needs: [build]
    if: \${{ inputs.gated }}
    run: echo deploy >> trace
  confirm:
    needs: [deploy]
    wait: { signal: confirmed }
  report:
    needs: [approve, confirm]
    run: echo report >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // Nothing waited for an hour: both waits were skipped, and so was what needs them.
    expect(project.trace()).toEqual(["build"]);
    const shown = await project.show(runId(result.stdout));
    expect(shown.steps.find((s) => s.job === "approve")!.output?.approve).toMatchObject({
      status: "skipped",
      reason: `if: \${{ inputs.gated }} is false`,
    });
    expect(shown.steps.find((s) => s.job === "confirm")!.output?.confirm).toMatchObject({
      status: "skipped",
      reason: "needs deploy, which was skipped",
    });
    expect(shown.steps.find((s) => s.job === "report")!.output?.report).toMatchObject({ status: "skipped" });
  });

  it("never hands a job Slipway's own credentials from the environment", async () => {
    const project = new Project();
    project.write("pipe.yml", "jobs:\n  env:\n    run: env > seen\n");
    const result = await project.run(["run", "pipe.yml"], {
      SLIPWAY_TOKEN: "tok-of-the-server",
      SLIPWAY_ADMIN_PASSWORD: "pw-1",
      PLAIN_SETTING: "kept",
    });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    const seen = project.read("seen");
    expect(seen).toContain("PLAIN_SETTING=kept");
    expect(seen).toContain("SLIPWAY_RUN_ID=");
    expect(seen).not.toContain("tok-of-the-server");
    expect(seen).not.toContain("pw-1");
  });

  it("gives jobs their secrets but keeps them out of logs, events and state", async () => {
    const project = new Project();
    const token = "tok-5f1d2a9c7e";
    const key = "key-8b3e61d04a";
    project.write("key.txt", `${key}\n`);
    project.write(
      "pipe.yml",
      `secrets:
  TOKEN: { env: DEPLOY_TOKEN }
  KEY: { file: key.txt }
jobs:
  deploy:
    run: |
      echo "token is $TOKEN"
      echo "key is $KEY" >&2
      echo "$TOKEN $KEY" > seen
      echo "header=Bearer $TOKEN" >> "$SLIPWAY_OUTPUT"
  use:
    needs: [deploy]
    run: echo "\${{ needs.deploy.outputs.header }}" >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml", "--json"], { DEPLOY_TOKEN: token });
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // The job did get the real values.
    expect(project.read("seen")).toBe(`${token} ${key}\n`);
    // An output holding a secret would be stored and put into command lines: it is passed on masked.
    expect(project.trace()).toEqual(["Bearer ***"]);
    // Events show the masked lines.
    const events = result.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as { type?: string; data?: { message?: string } });
    const messages = events.filter((e) => e.type === "action:progress").map((e) => e.data?.message);
    expect(messages).toContain("token is ***");
    expect(messages).toContain("key is ***");
    expect(result.stdout).not.toContain(token);
    expect(result.stdout).not.toContain(key);

    const logs = await project.run(["logs", runId(result.stdout), "deploy"]);
    expect(logs.code, logs.stderr).toBe(0);
    expect(logs.stdout).toMatch(/^==> deploy \(attempt 1\) <==$/m);
    expect(logs.stdout).toMatch(/^\S+ out token is \*\*\*$/m);
    expect(logs.stdout).toMatch(/^\S+ err key is \*\*\*$/m);
    // Nothing Slipway keeps (database, engine log, job logs) holds either secret.
    for (const file of filesUnder(join(project.dir, ".slipway"))) {
      const text = readFileSync(file, "latin1");
      expect(text.includes(token) || text.includes(key), file).toBe(false);
    }
  });

  it("fails a run whose secret is missing, naming the variable and not running the job", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `secrets:
  TOKEN: { env: DEPLOY_TOKEN_${process.pid} }
jobs:
  deploy:
    run: echo deploy >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain(`environment variable DEPLOY_TOKEN_${process.pid} is not set`);
    expect(project.trace()).toEqual([]);
  });

  it("retries a job that fails once, and shows every attempt in slipway logs", async () => {
    const project = new Project();
    project.tool(
      "flaky",
      `echo "flaky $SLIPWAY_ATTEMPT" >> trace
if [ ! -e once ]; then touch once; echo "registry timeout"; exit 1; fi
echo "pushed"`,
    );
    project.write(
      "pipe.yml",
      `jobs:
  push:
    run: ./flaky
    retries: 2
  after:
    needs: [push]
    run: echo after >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["flaky 1", "flaky 2", "after"]);
    expect(result.stdout).toMatch(/push: attempt 1 failed, retrying: failed \(exit 1\): registry timeout/);
    const id = runId(result.stdout);
    expect((await project.show(id)).steps.find((s) => s.job === "push")?.attempt).toBe(2);

    const logs = await project.run(["logs", id, "push"]);
    expect(logs.code, logs.stderr).toBe(0);
    const text = logs.stdout;
    expect(text.indexOf("==> push (attempt 1) <==")).toBeGreaterThanOrEqual(0);
    expect(text.indexOf("registry timeout")).toBeGreaterThan(text.indexOf("==> push (attempt 1) <=="));
    expect(text.indexOf("==> push (attempt 2) <==")).toBeGreaterThan(text.indexOf("registry timeout"));
    expect(text.indexOf("pushed")).toBeGreaterThan(text.indexOf("==> push (attempt 2) <=="));
    expect(text).not.toContain("after");

    const unknown = await project.run(["logs", id, "nope"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('no job "nope"');
  });

  it("kills the whole process group of a job that times out", async () => {
    const project = new Project();
    const sleep = uniqueSleep();
    project.write(
      "pipe.yml",
      `jobs:
  hang:
    timeout: 500ms
    run: echo hang >> trace; sleep ${sleep} & wait
`,
    );
    // Without the timeout the job would sleep for 301 s: `run` gives up long before.
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/hang failed: timed out/);
    expect(processesWith(`sleep ${sleep}`)).toEqual([]);
    expect(project.trace()).toEqual(["hang"]);
  });

  it("polls until the check says done, and passes the check's outputs on", async () => {
    const project = new Project();
    project.tool(
      "check",
      `n=$(( $(grep -c '^check' trace 2>/dev/null || true) + 1 ))
echo "check $n" >> trace
if [ "$n" -lt 3 ]; then echo "build queued"; exit 75; fi
echo "result=green" >> "$SLIPWAY_OUTPUT"`,
    );
    project.write(
      "pipe.yml",
      `jobs:
  wait-build:
    poll: { run: ./check, every: 100ms, timeout: 30s }
  report:
    needs: [wait-build]
    run: echo "report \${{ needs.wait-build.outputs.result }}" >> trace
`,
    );
    const result = await project.run(["run", "pipe.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(project.trace()).toEqual(["check 1", "check 2", "check 3", "report green"]);
  });

  it("follows a run's output with slipway logs -f until the run ends", async () => {
    const project = new Project();
    project.write(
      "pipe.yml",
      `jobs:
  first:
    run: echo "first says hi"
  gate:
    needs: [first]
    wait: { signal: go, timeout: 1m }
  second:
    needs: [gate]
    run: echo "second says bye"
`,
    );
    const running = project.start(["run", "pipe.yml"]);
    await running.waitFor(/gate: waiting for signal/);
    const id = runId(running.stdout);
    const follow = project.start(["logs", id, "-f"]);
    await follow.waitFor(/first says hi/);
    expect(follow.stdout).not.toContain("second says bye");
    expect((await project.run(["signal", id, "go"])).code).toBe(0);
    const followed = await follow.done;
    expect(followed.code, followed.stderr).toBe(0);
    expect(followed.stdout).toMatch(/==> first \(attempt 1\) <==\n\S+ out first says hi\n/);
    expect(followed.stdout).toMatch(/==> second \(attempt 1\) <==\n\S+ out second says bye\n/);
    expect((await running.done).code).toBe(0);
  });
});

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}
