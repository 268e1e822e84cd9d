/** The README's examples run as documented: the story 4 build saga completes, rolls back on failure, and the README saga compiles and runs. */
import { execFile } from "node:child_process";
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "../../helpers.js";

const root = fileURLToPath(new URL("../../..", import.meta.url));
const tsx = join(root, "node_modules", ".bin", "tsx");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs an example as `npm run example` does, with a time limit so a hang fails with its output. */
function example(file: string, args: string[], env: Record<string, string> = {}, cwd = root): Promise<Run> {
  // The examples import "slipway" itself, which resolves to dist/: the build must exist.
  expect(existsSync(join(root, "dist", "index.js")), "dist/ is missing: run npm run build first").toBe(true);
  return new Promise((resolve) => {
    execFile(
      tsx,
      [join(root, "examples", file), ...args],
      { cwd, timeout: 60_000, env: { ...process.env, FAIL_AT: "", ...env } },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === "number" ? error.code : -1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((path) => statSync(join(dir, path)).isFile())
    .sort();
}

describe("examples/build-server.ts (story 4)", () => {
  it("builds and activates a version, then rolls a failing build back in reverse order", async () => {
    const dataDir = tempDir();
    const platform = join(dataDir, "platform");
    const active = () => JSON.parse(readFileSync(join(platform, "records", "shop", "active.json"), "utf8"));

    const first = await example("build-server.ts", ["--data-dir", dataDir]);
    expect(first.code, first.stdout + first.stderr).toBe(0);
    expect(first.stdout).toMatch(/Run shop-build-1 \(id \S+\) completed/);
    expect(first.stdout.match(/^ {2}(created|activated) /gm)).toHaveLength(5);
    expect(first.stdout).toContain("layer 4/4");
    expect(active()).toMatchObject({ version: 1, previous: null });
    const afterFirst = files(platform);
    expect(afterFirst.filter((f) => f.startsWith("images/"))).toHaveLength(1);
    expect(afterFirst).toContain(join("records", "shop", "versions", "v1.json"));
    // Every log line of the run carries its human-readable name.
    const logs = readFileSync(join(dataDir, "build-server.log"), "utf8").trim().split("\n");
    expect(logs.length).toBeGreaterThan(0);
    for (const line of logs) expect(JSON.parse(line)).toMatchObject({ runName: "shop-build-1" });

    const second = await example("build-server.ts", ["--data-dir", dataDir], { FAIL_AT: "activate" });
    expect(second.code, second.stdout + second.stderr).toBe(1);
    expect(second.stdout).toMatch(/Run shop-build-2 \(id \S+\) rolled back, because "activate" failed/);
    const undos = [...second.stdout.matchAll(/shop-build-2 {2}(\S+) +undoing$/gm)].map((m) => m[1]);
    expect(undos).toEqual(["create-version", "create-config", "build-image", "receive-source"]);
    expect(second.stdout.match(/^ {2}removed /gm)).toHaveLength(4);
    // What the failed build created is gone; the first build's work and activation are untouched.
    expect(files(platform)).toEqual(afterFirst);
    expect(active()).toMatchObject({ version: 1 });
    // The staged upload of an ended run is deleted.
    expect(files(join(dataDir, "staged"))).toEqual([]);
  });

  it("rejects an unknown --fail-at action with exit code 2", async () => {
    const run = await example("build-server.ts", ["--data-dir", tempDir(), "--fail-at", "deploy"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('no action "deploy"');
  });
});

describe("examples/backport-agent.ts (story 1, as a library)", () => {
  it("edits, builds and waits again until a build passes, then opens the merge request once", async () => {
    const run = await example("backport-agent.ts", ["--fail-first", "3"], {}, tempDir());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout.match(/^attempt \d+/gm)).toEqual(["attempt 1", "attempt 2", "attempt 3", "attempt 4"]);
    // Each attempt reads the previous one's build log.
    expect(run.stdout).toContain(
      'attempt 4: editing the patch after "error: hunk 3 of podman-c10s-backport.v3.patch',
    );
    expect(run.stdout.match(/opening the merge request/g)).toHaveLength(1);
    expect(run.stdout).toContain("done after 4 attempts: merge request RHEL-1234-c10s");
  });

  it("gives up after ten attempts with the last build's failure, cancelling the builds last first", async () => {
    const run = await example("backport-agent.ts", ["--fail-first", "12"], {}, tempDir());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain(
      "compensated: gave up after 10 iterations: last build failed: error: hunk 10 of podman-c10s-backport.v10.patch does not apply",
    );
    const cancelled = [...run.stdout.matchAll(/build of podman-c10s-backport\.v(\d+)\.patch cancelled/g)].map(
      (m) => Number(m[1]),
    );
    expect(cancelled).toEqual([10, 9, 8, 7, 6, 5, 4, 3, 2, 1]);
    expect(run.stdout).not.toContain("opening the merge request");
  });
});

describe("README", () => {
  it("shows exactly the saga of examples/readme-saga.ts, which runs to completion", async () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const shown = /```ts\n([\s\S]*?)```/.exec(readme)?.[1];
    const source = readFileSync(join(root, "examples", "readme-saga.ts"), "utf8");
    // The file's first line is its module comment, which the README leaves out.
    expect(shown).toBe(source.slice(source.indexOf("\n") + 1));

    // Its own directory: the saga uses the default data directory, .slipway under the current one.
    const run = await example("readme-saga.ts", [], {}, tempDir());
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(run.stdout).toContain("status: 'completed'");
    expect(run.stdout).toContain('"runName":"shop-main-1"');
  });

  it("quick start has exactly the two documented commands", () => {
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const quickStart = /## Quick start\n\n```sh\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(quickStart).toBe("npm install && npm run example\nnpm test\n");
  });
});
