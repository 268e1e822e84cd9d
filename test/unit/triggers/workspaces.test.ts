/**
 * Workspaces: a checkout of the event's commit that borrows the mirror's objects (real git: what is
 * tested is what git makes of it), fetched into the mirror first when it lacks the commit; git's upkeep
 * of the mirror at the sweep, not in the fetch. Removed when their run ends: at once after success,
 * `keep_failed` after a failure, at once when pruned.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it, vi } from "vitest";
import type { RunService } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { TriggerService } from "../../../src/triggers/service.js";
import { Workspaces } from "../../../src/triggers/workspaces.js";
import { commit, git } from "../../e2e/server/git.js";
import { tempDir } from "../../helpers.js";

function sourceAt(url: string) {
  return {
    name: "app",
    url,
    kind: "git" as const,
    pollMs: 1_000,
    allow: [],
    keepFailedMs: 60_000,
    pipelines: [],
  };
}

const noRuns = {
  async show() {
    throw new Error("no runs");
  },
} as unknown as RunService;

/** Loose objects in an object store. */
function looseObjects(objects: string): number {
  return readdirSync(objects)
    .filter((d) => /^[0-9a-f]{2}$/.test(d))
    .reduce((n, d) => n + readdirSync(join(objects, d)).length, 0);
}

/** Packs in a bare repository. */
function packs(repo: string): number {
  return readdirSync(join(repo, "objects", "pack")).filter((f) => f.endsWith(".pack")).length;
}

describe("workspaces", () => {
  it("check out the commit, borrowing the mirror's objects, fetching it when the mirror lacks it", async () => {
    const dir = tempDir();
    const repo = join(dir, "repo.git");
    const work = join(dir, "work");
    mkdirSync(work);
    git(dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    writeFileSync(join(work, "app.txt"), "v1\n");
    git(work, "add", "app.txt");
    const first = commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");
    const source = sourceAt(repo);
    const data = join(dir, "data");
    const workspaces = new Workspaces({
      dataDir: data,
      store: new MemoryTriggerStore(),
      clock: new ManualClock(0),
      sources: [source],
    });

    // No mirror yet: made and fetched, then a checkout of the commit whose objects are the mirror's.
    const one = await workspaces.prepare(source, first, "trigger:one");
    expect(one).toBe(join(data, "workspaces", "trigger-one"));
    expect(git(one, "rev-parse", "HEAD")).toBe(first);
    expect(git(one, "status", "--porcelain")).toBe("");
    expect(readFileSync(join(one, "app.txt"), "utf8")).toBe("v1\n");
    expect(readFileSync(join(one, ".git", "objects", "info", "alternates"), "utf8").trim()).toBe(
      join(workspaces.mirrorOf(source), "objects"),
    );
    expect(looseObjects(join(one, ".git", "objects"))).toBe(0);
    expect(readdirSync(join(one, ".git", "objects", "pack"))).toEqual([]);
    // No hook templates: nothing of git's samples, nothing that could run.
    expect(existsSync(join(one, ".git", "hooks"))).toBe(false);

    // A commit the mirror lacks (a webhook's push, before a poll fetched it) is fetched first.
    writeFileSync(join(work, "app.txt"), "v2\n");
    git(work, "add", "app.txt");
    const second = commit(work, "second");
    git(work, "push", "--quiet", "origin", "main");
    const two = await workspaces.prepare(source, second, "trigger:two");
    expect(git(two, "rev-parse", "HEAD")).toBe(second);
    expect(readFileSync(join(two, "app.txt"), "utf8")).toBe("v2\n");

    // The same key again: the workspace a run already started in is left as it is.
    writeFileSync(join(one, "made-by-the-job"), "");
    expect(await workspaces.prepare(source, first, "trigger:one")).toBe(one);
    expect(existsSync(join(one, "made-by-the-job"))).toBe(true);

    // A commit nobody has: refused, and nothing half-made is left behind.
    await expect(workspaces.prepare(source, "0".repeat(40), "trigger:none")).rejects.toThrow(
      /git checkout: fatal: reference is not a tree/,
    );
    expect(readdirSync(join(data, "workspaces")).sort()).toEqual(["trigger-one", "trigger-two"]);
  });

  it("fetch a webhook's push into the mirror as it is received, and the checkout waits for that fetch", async () => {
    const dir = tempDir();
    const repo = join(dir, "repo.git");
    const work = join(dir, "work");
    mkdirSync(work);
    git(dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    const first = commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");
    const source = sourceAt(repo);
    const service = new TriggerService({
      runs: noRuns,
      store: new MemoryTriggerStore(),
      sources: [source],
      dataDir: join(dir, "data"),
      clock: new ManualClock(0),
    });
    const fetchFor = vi.spyOn(service.workspaces, "fetchFor");
    const fetch = vi.spyOn(service.workspaces, "fetch");
    const hooks = service.hooks((error) => {
      throw error;
    });
    const push = (sha: string) => [
      {
        source: "app",
        at: 0,
        arrival: { via: "webhook" as const, delivery: sha },
        kind: "push" as const,
        ref: "refs/heads/main",
        branch: "main",
        sha,
      },
    ];
    hooks.prefetch(push(first));
    await hooks.deliver(push(first));
    // Started with the delivery, before any run wants the commit...
    expect(fetchFor).toHaveBeenCalledTimes(1);
    // ...and the workspace takes the commit from that fetch instead of fetching again.
    const workspace = await service.workspaces.prepare(source, first, "trigger:k");
    expect(git(workspace, "rev-parse", "HEAD")).toBe(first);

    // Once the mirror is there, a push fetches its own ref only (the next poll fetches the rest).
    git(work, "checkout", "--quiet", "-b", "other");
    const other = commit(work, "elsewhere");
    git(work, "push", "--quiet", "origin", "other");
    git(work, "checkout", "--quiet", "main");
    const second = commit(work, "second");
    git(work, "push", "--quiet", "origin", "main");
    hooks.prefetch(push(second));
    const again = await service.workspaces.prepare(source, second, "trigger:k2");
    expect(git(again, "rev-parse", "HEAD")).toBe(second);
    const mirror = service.workspaces.mirrorOf(source);
    expect(git(mirror, "rev-parse", "refs/heads/main")).toBe(second);
    expect(() => git(mirror, "cat-file", "-e", other)).toThrow();
    expect(fetch).not.toHaveBeenCalled();
    await service.stop();
  });

  it("leave git's upkeep of the mirror to the sweep, off the way from a push to its run", async () => {
    const dir = tempDir();
    const repo = join(dir, "repo.git");
    const work = join(dir, "work");
    mkdirSync(work);
    git(dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");
    const source = sourceAt(repo);
    const workspaces = new Workspaces({
      dataDir: join(dir, "data"),
      store: new MemoryTriggerStore(),
      clock: new ManualClock(0),
      sources: [source],
    });
    const mirror = workspaces.mirrorOf(source);
    await workspaces.fetch(source);
    // Each fetch keeps its pack, and more than one pack is git's cue for upkeep (repacking into one).
    git(mirror, "config", "fetch.unpackLimit", "1");
    git(mirror, "config", "gc.autoPackLimit", "1");
    // In the foreground, so it is done when the sweep is.
    git(mirror, "config", "gc.autoDetach", "false");
    for (const message of ["second", "third"]) {
      commit(work, message);
      git(work, "push", "--quiet", "origin", "main");
      await workspaces.fetch(source);
    }
    expect(packs(mirror)).toBe(2);
    await workspaces.sweep(noRuns);
    expect(packs(mirror)).toBe(1);
  });

  it("go when their run ends well or is pruned, and stay keep_failed after a failure", async () => {
    const dir = tempDir();
    const store = new MemoryTriggerStore();
    const clock = new ManualClock(1_000_000);
    const source = {
      name: "app",
      url: "/r",
      kind: "git" as const,
      pollMs: 1_000,
      allow: [],
      keepFailedMs: 60_000,
      pipelines: [],
    };
    const workspaces = new Workspaces({ dataDir: dir, store, clock, sources: [source] });
    const runs: Record<string, { status: string; endedAt: number | null; createdAt: number }> = {
      ok: { status: "completed", endedAt: clock.now(), createdAt: 0 },
      bad: { status: "compensated", endedAt: clock.now(), createdAt: 0 },
      busy: { status: "running", endedAt: null, createdAt: 0 },
    };
    const service = {
      async show(id: string) {
        const run = runs[id];
        if (!run) throw new Error(`no run ${id}`);
        return run;
      },
    } as unknown as RunService;
    const paths: Record<string, string> = {};
    for (const id of ["ok", "bad", "busy", "pruned"]) {
      paths[id] = join(dir, "workspaces", id);
      mkdirSync(paths[id]!, { recursive: true });
      await store.recordEvent({ key: `k-${id}`, source: "app", kind: "push", event: {}, seenAt: 0 });
      await store.putVerdict({
        key: `k-${id}`,
        pipeline: "ci",
        verdict: "started",
        reason: null,
        runId: id,
        workspace: paths[id]!,
        at: clock.now(),
      });
    }
    expect(await workspaces.sweep(service)).toBe(2);
    expect(["ok", "bad", "busy", "pruned"].map((id) => existsSync(paths[id]!))).toEqual([
      false,
      true,
      true,
      false,
    ]);
    await clock.advance(60_000);
    expect(await workspaces.sweep(service)).toBe(1);
    expect(existsSync(paths.bad!)).toBe(false);
    expect((await store.workspaces()).map((v) => v.runId)).toEqual(["busy"]);
  });
});
