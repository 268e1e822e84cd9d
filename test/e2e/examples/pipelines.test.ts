/**
 * The YAML examples run as their comments say, through the real `slipway` binary: the release of
 * story 2 publishes the app image last and rolls back, the recipe CI of story 3 fails fast on a
 * crash loop. The backport of story 1 is in backport.test.ts.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { project } from "./project.js";

/** Files under `dir`, relative to it, sorted; none when it does not exist. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true }) as string[])
    .filter((path) => statSync(join(dir, path)).isFile())
    .sort();
}

/** Position of the first line matching `pattern` in a run's plain output; fails when there is none. */
function lineOf(stdout: string, pattern: RegExp): number {
  const index = stdout.split("\n").findIndex((line) => pattern.test(line));
  expect(index, `no line matching ${pattern} in:\n${stdout}`).toBeGreaterThanOrEqual(0);
  return index;
}

describe("examples/release.yml (story 2)", () => {
  it("builds every image, smoke-tests the worker and publishes the app image last", async () => {
    const p = project();
    const result = await p.run(["run", "release.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    // Only the amd64 legs: arm64 is opt-in.
    expect(result.stdout.match(/^\S+ build \(\w+, linux\/amd64\): done$/gm)).toHaveLength(3);
    expect(result.stdout).not.toContain("linux/arm64");
    const appStarted = lineOf(result.stdout, /publish-app: started/);
    for (const before of [/smoke-worker: done/, /publish-worker: done/, /publish-embeddings: done/])
      expect(lineOf(result.stdout, before)).toBeLessThan(appStarted);

    const registry = join(p.dir, ".registry");
    const published = files(registry);
    for (const image of ["app", "worker", "embeddings"]) {
      expect(published).toContain(join(image, "tags", "1.4.0"));
      expect(
        published.filter((f) => f.startsWith(`${image}/sha256-`) || f.startsWith(`${image}/cksum-`)),
      ).toEqual([expect.stringMatching(/linux-amd64\.img$/)]);
    }
  });

  it("builds the arm64 legs when asked", async () => {
    const p = project();
    const result = await p.run(["run", "release.yml", "--input", "multiarch=true", "--input", "tag=2.0.0"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/, 10 jobs$/m);
    expect(result.stdout).toMatch(/build \(embeddings, linux\/arm64\): done/);
    const images = files(join(p.dir, ".registry")).filter((f) => f.endsWith(".img"));
    expect(images).toHaveLength(6);
  });

  it("undoes the publishes already made when the app image fails to publish", async () => {
    const p = project();
    const result = await p.run(["run", "release.yml", "--input", "fail_at=publish"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(/^run \S+ compensated/m);
    expect(result.stdout).toContain("publish-app failed: failed (exit 1): error: pushing app:1.4.0");
    expect(result.stdout).toMatch(/publish-worker: undone/);
    expect(result.stdout).toMatch(/publish-embeddings: undone/);
    // Both undos ran and each said what it removed; the registry is as empty as before the run.
    expect(result.stdout.match(/\| unpublished (worker|embeddings)@/g)).toHaveLength(2);
    expect(files(join(p.dir, ".registry"))).toEqual([]);
  });
});

describe("examples/release.yml, a failed re-release (story 2)", () => {
  it("leaves the previous release live: every tag points at what it pointed at before", async () => {
    const p = project();
    const good = await p.run(["run", "release.yml"]);
    expect(good.code, good.stdout + good.stderr).toBe(0);
    const registry = join(p.dir, ".registry");
    const live = files(registry);
    const tagOf = (image: string) => readFileSync(join(registry, image, "tags", "1.4.0"), "utf8");
    const before = Object.fromEntries(["app", "worker", "embeddings"].map((i) => [i, tagOf(i)]));

    // The same tag again: new builds (new digests), and the app push fails after the other two are out.
    const again = await p.run(["run", "release.yml", "--input", "fail_at=publish"]);
    expect(again.code, again.stdout + again.stderr).toBe(1);
    expect(again.stdout).toMatch(/\| unpublished worker@\S+: worker:1\.4\.0 is \S+ again/);
    expect(again.stdout).toMatch(/\| unpublished embeddings@\S+: embeddings:1\.4\.0 is \S+ again/);
    expect(Object.fromEntries(["app", "worker", "embeddings"].map((i) => [i, tagOf(i)]))).toEqual(before);
    // The re-release's images are gone; the previous release's are all there.
    expect(files(registry)).toEqual(live);
  });
});

describe("examples/recipe-ci.yml (story 3)", () => {
  it("deploys, waits until the stack is up and runs the light tier only", async () => {
    const p = project();
    const result = await p.run(["run", "recipe-ci.yml"]);
    expect(result.code, result.stdout + result.stderr).toBe(0);
    expect(result.stdout).toMatch(/deploy ready: up after \d+ checks/);
    expect(result.stdout).toMatch(/test-smoke \| smoke test 3\/3: ok/);
    expect(result.stdout).toContain('not run: test-e2e (tier "extra" not requested');
    // The teardown needs both tiers: it ran after the light one, and the stack is gone.
    expect(result.stdout).toMatch(/teardown \| removed stack gitea/);
    expect(files(join(p.dir, ".state", "recipe", "stacks"))).toEqual([]);
  });

  it("fails within seconds on a crash loop, with the reason, and tears the stack down", async () => {
    const p = project();
    // Within seconds, not the 20-minute timeout: `run` gives up long before that.
    const result = await p.run(["run", "recipe-ci.yml", "--input", "crashloop=true"]);
    expect(result.code, result.stdout + result.stderr).toBe(1);
    expect(result.stdout).toMatch(
      /deploy ready failed: crash loop: 3 probe failures within 60s \(exit 1\): service gitea_db exited with code 1/,
    );
    // The probe failed after the deploy completed: the rollback undoes the deploy, tearing the stack down.
    expect(result.stdout).toMatch(/deploy \| removed stack gitea/);
    expect(files(join(p.dir, ".state", "recipe", "stacks"))).toEqual([]);
  });
});
