/** Workspaces are removed when their run ends: at once after success, `keep_failed` after a failure, at once when pruned. */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunService } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { Workspaces } from "../../../src/triggers/workspaces.js";
import { tempDir } from "../../helpers.js";

describe("workspaces", () => {
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
