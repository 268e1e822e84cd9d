/**
 * Schedules of a pipeline that lives in the repository (`path:`): read at the default branch's head by
 * each poll, fired at their minute on an injected clock, at that head commit; an edit pushed to the
 * branch moves the schedule at the next poll. Real git (a bare repository on disk): the pipeline is
 * only in the repository.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunService, SubmitOptions } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import { ManualClock } from "../../../src/testing/clock.js";
import type { SourceConfig } from "../../../src/triggers/config.js";
import { TriggerService } from "../../../src/triggers/service.js";
import { git } from "../../e2e/server/git.js";
import { eventually, tempDir } from "../../helpers.js";

function fakeRuns(): RunService & { submitted: { file: string; options: SubmitOptions }[] } {
  const submitted: { file: string; options: SubmitOptions }[] = [];
  return {
    submitted,
    detached: true,
    async submit(what: { file: string }, options: SubmitOptions = {}) {
      submitted.push({ file: what.file, options });
      return { id: `run-${submitted.length}`, name: null, pipeline: "nightly", jobs: 1 };
    },
    async list() {
      return [];
    },
    async show() {
      return { status: "running", endedAt: null, createdAt: 0 };
    },
  } as unknown as RunService & { submitted: { file: string; options: SubmitOptions }[] };
}

const nightly = (cron: string) =>
  `name: nightly\non:\n  schedule:\n    - { cron: '${cron}', time_zone: Europe/Berlin }\njobs:\n  a: { run: x }\n`;

describe("schedules of pipelines in the repository", () => {
  it("are read at the default branch's head each poll and fire at their minute, at that commit", async () => {
    const dir = tempDir();
    const repo = join(dir, "app.git");
    const work = join(dir, "work");
    mkdirSync(join(work, ".slipway"), { recursive: true });
    git(dir, "init", "--quiet", "--bare", "-b", "main", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    writeFileSync(join(work, ".slipway", "nightly.yml"), nightly("30 3 * * *"));
    git(work, "add", ".");
    git(work, "commit", "--quiet", "-m", "nightly at 03:30");
    git(work, "push", "--quiet", "origin", "main");
    const first = git(work, "rev-parse", "HEAD");

    const source: SourceConfig = {
      name: "app",
      url: repo,
      kind: "git",
      pollMs: 60_000,
      allow: [],
      keepFailedMs: 0,
      pipelines: [{ path: ".slipway/nightly.yml" }],
    };
    const runs = fakeRuns();
    // 03:29:30 in Berlin (CET, UTC+1) on 2026-01-10.
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 2, 29, 30));
    const service = new TriggerService({
      runs,
      store: new MemoryTriggerStore(),
      sources: [source],
      dataDir: join(dir, "data"),
      clock,
      random: () => 0,
      sweepMs: 3_600_000,
    });
    try {
      service.start();
      // The first poll reads the pipeline at main's head.
      await eventually(() => service.schedules().length === 1, "the schedule read from the repository");
      expect(service.schedules()).toEqual([
        expect.objectContaining({ source: "app", pipeline: "nightly", cron: "30 3 * * *" }),
      ]);
      expect(runs.submitted).toEqual([]);

      await clock.advanceTo(Date.UTC(2026, 0, 10, 2, 30, 30));
      await eventually(() => runs.submitted.length === 1, "the 03:30 run");
      const [run] = runs.submitted;
      expect(run!.options.event).toMatchObject({
        kind: "schedule",
        source: "app",
        sha: first,
        schedule: { cron: "30 3 * * *", minute: Date.UTC(2026, 0, 10, 2, 30) },
      });
      // The repository's own file, in the run's checkout of the head commit.
      expect(run!.file).toBe(join(run!.options.workspace!, ".slipway", "nightly.yml"));

      // Moved to 03:45 on main: the next poll reads it, and it fires then (not at 03:30 any more).
      writeFileSync(join(work, ".slipway", "nightly.yml"), nightly("45 3 * * *"));
      git(work, "commit", "--quiet", "-am", "nightly at 03:45");
      git(work, "push", "--quiet", "origin", "main");
      const second = git(work, "rev-parse", "HEAD");
      await clock.advanceTo(Date.UTC(2026, 0, 10, 2, 31, 30));
      await eventually(() => service.schedules()[0]?.cron === "45 3 * * *", "the moved schedule");
      await clock.advanceTo(Date.UTC(2026, 0, 10, 2, 45, 30));
      await eventually(() => runs.submitted.length === 2, "the 03:45 run");
      expect(runs.submitted[1]!.options.event).toMatchObject({
        sha: second,
        schedule: { cron: "45 3 * * *", minute: Date.UTC(2026, 0, 10, 2, 45) },
      });
      expect((await service.status()).schedules).toEqual([
        expect.objectContaining({ pipeline: "nightly", lastFiredFor: Date.UTC(2026, 0, 10, 2, 45) }),
      ]);
    } finally {
      await service.stop();
    }
  });
});
