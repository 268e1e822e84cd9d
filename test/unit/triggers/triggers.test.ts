/**
 * Triggers without git or a server: which events a pipeline's `on:` takes (globs, comment commands),
 * the dispatcher acting on one event once however often it is seen, and schedules firing at the right
 * minute of their time zone on an injected clock, once after a restart that spanned several firings.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parsePipeline } from "../../../src/pipeline/parse.js";
import type { RunService, SubmitOptions } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import { ManualClock } from "../../../src/testing/clock.js";
import type { SourceConfig } from "../../../src/triggers/config.js";
import { Dispatcher } from "../../../src/triggers/dispatcher.js";
import type { TriggerEvent } from "../../../src/triggers/event.js";
import { matchEvent, matchesAny } from "../../../src/triggers/match.js";
import { TriggerService } from "../../../src/triggers/service.js";
import type { Workspaces } from "../../../src/triggers/workspaces.js";
import { tempDir } from "../../helpers.js";

/** A runs service that only records submissions, one run per idempotency key (as LocalRuns does). */
function fakeRuns(): RunService & { submitted: SubmitOptions[] } {
  const byKey = new Map<string, string>();
  const submitted: SubmitOptions[] = [];
  return {
    submitted,
    detached: true,
    async submit(_what: unknown, options: SubmitOptions = {}) {
      const known = options.key === undefined ? undefined : byKey.get(options.key);
      if (known) return { id: known, name: null, pipeline: "p", jobs: 1 };
      const id = `run-${submitted.length + 1}`;
      submitted.push(options);
      if (options.key !== undefined) byKey.set(options.key, id);
      return { id, name: null, pipeline: "p", jobs: 1 };
    },
    async list(query: { key?: string } = {}) {
      const id = query.key === undefined ? undefined : byKey.get(query.key);
      return id ? [{ id } as never] : [];
    },
  } as unknown as RunService & { submitted: SubmitOptions[] };
}

const noWorkspaces = {
  prepare: async (_source: SourceConfig, sha: string) => `/ws/${sha}`,
  readAt: async () => {
    throw new Error("no repository");
  },
  remove: () => {},
} as unknown as Workspaces;

function on(yaml: string) {
  return parsePipeline(`on:\n${yaml}\njobs:\n  a: { run: x }\n  b: { run: y, tier: heavy }\n`, "p.yml").on;
}

const base = { source: "app", at: 0, arrival: { via: "poll" as const } };
const push = (branch: string, sha = "c1"): TriggerEvent => ({
  ...base,
  kind: "push",
  ref: `refs/heads/${branch}`,
  branch,
  sha,
});

describe("matching events to on:", () => {
  it("filters branches and tags with GitHub's globs", () => {
    expect(matchesAny(["release/*"], "release/1.2")).toBe(true);
    expect(matchesAny(["release/*"], "release/1/2")).toBe(false);
    expect(matchesAny(["release/**"], "release/1/2")).toBe(true);
    expect(matchesAny(["**", "!wip/*"], "wip/x")).toBe(false);
    const branches = on("  push: { branches: [main, 'release/**'] }");
    expect(matchEvent(branches, push("main")).run).toBe(true);
    expect(matchEvent(branches, push("dev"))).toEqual({
      run: false,
      reason: "branch dev matches no `on.push.branches`",
    });
    const tag: TriggerEvent = { ...base, kind: "push", ref: "refs/tags/v1.0", tag: "v1.0", sha: "c" };
    expect(matchEvent(branches, tag).run).toBe(false);
    expect(matchEvent(on("  push: { tags: ['v*'] }"), tag).run).toBe(true);
    expect(matchEvent(on("  push: { tags: ['v*'] }"), push("main")).run).toBe(false);
    expect(matchEvent(on("  push: { branches-ignore: [dev] }"), push("dev")).run).toBe(false);
  });

  it("reads comment commands: flags to tiers and inputs, --input k=v, unknown flags refused", () => {
    const triggers = on("  comment: { command: '!testme', flags: { --extra: { tier: heavy } } }");
    const comment = (body: string): TriggerEvent => ({
      ...base,
      kind: "comment",
      id: "1",
      body,
      author: { login: "ana", association: "MEMBER" },
      pullRequest: { number: 4, sha: "c", base: "main", head: "fix", fork: false, headUrl: "u" },
    });
    expect(matchEvent(triggers, comment("!testme --extra --input recipe=nextcloud\nthanks"))).toEqual({
      run: true,
      tiers: ["heavy"],
      inputs: { recipe: "nextcloud" },
      command: "!testme --extra --input recipe=nextcloud",
    });
    expect(matchEvent(triggers, comment("!testme --turbo"))).toMatchObject({
      run: false,
      reason: "unknown flag --turbo (flags: --extra, --input name=value)",
    });
    expect(matchEvent(triggers, comment("looks good")).run).toBe(false);
  });
});

describe("the dispatcher", () => {
  it("starts one run for an event seen twice (a poll and a webhook), and records every verdict", async () => {
    const dir = tempDir();
    const file = join(dir, "ci.yml");
    writeFileSync(file, "name: ci\non: { push: { branches: [main] } }\njobs:\n  a: { run: x }\n");
    const other = join(dir, "docs.yml");
    writeFileSync(other, "name: docs\non: { push: { branches: [docs] } }\njobs:\n  a: { run: x }\n");
    const source: SourceConfig = {
      name: "app",
      url: "/repo",
      kind: "git",
      pollMs: 1000,
      allow: [],
      keepFailedMs: 0,
      pipelines: [{ file }, { file: other }],
    };
    const runs = fakeRuns();
    const store = new MemoryTriggerStore();
    const dispatcher = new Dispatcher({
      runs,
      store,
      sources: [source],
      workspaces: noWorkspaces,
      clock: new ManualClock(0),
    });
    const first = await dispatcher.deliver([push("main")]);
    const again = await dispatcher.deliver([
      { ...push("main"), arrival: { via: "webhook", delivery: "d1" } },
    ]);
    expect(runs.submitted).toHaveLength(1);
    expect(runs.submitted[0]).toMatchObject({
      event: { kind: "push", branch: "main", sha: "c1", source: "app" },
      workspace: "/ws/c1",
    });
    expect(first).toEqual(again);
    expect(first.map((d) => [d.pipeline, d.verdict, d.runId])).toEqual([
      ["ci", "started", "run-1"],
      ["docs", "ignored", null],
    ]);
    // A comment from someone who may not run commands starts nothing, and says why.
    writeFileSync(file, "name: ci\non: { comment: '!testme' }\njobs:\n  a: { run: x }\n");
    const [stranger] = await dispatcher.deliver([
      {
        ...base,
        kind: "comment",
        id: "9",
        body: "!testme",
        author: { login: "eve", association: "NONE" },
        pullRequest: { number: 4, sha: "c", base: "main", head: "fix", fork: true, headUrl: "u" },
      },
    ]);
    expect(stranger).toMatchObject({
      verdict: "ignored",
      reason: expect.stringMatching(/^eve may not run commands/),
    });
    expect(runs.submitted).toHaveLength(1);
  });
});

describe("forks' pull requests", () => {
  it("wait for a writer's !approve of their exact head commit, then run it without secrets", async () => {
    const dir = tempDir();
    const file = join(dir, "ci.yml");
    writeFileSync(file, "name: ci\non: [pull_request]\njobs:\n  a: { run: x }\n");
    const source: SourceConfig = {
      name: "app",
      url: "/repo",
      kind: "git",
      pollMs: 1000,
      allow: [],
      keepFailedMs: 0,
      pipelines: [{ file }],
    };
    const runs = fakeRuns();
    const store = new MemoryTriggerStore();
    const dispatcher = new Dispatcher({
      runs,
      store,
      sources: [source],
      workspaces: noWorkspaces,
      clock: new ManualClock(0),
    });
    const pr = { number: 7, base: "main", head: "fix", fork: true, headUrl: "https://x/eve/app.git" };
    const opened = (sha: string): TriggerEvent => ({
      ...base,
      kind: "pull_request",
      action: "opened",
      ...pr,
      sha,
      author: { login: "eve", association: "NONE" },
    });
    const approve = (login: string, association: string, sha: string, id: string): TriggerEvent => ({
      ...base,
      kind: "comment",
      id,
      body: "!approve",
      author: { login, association },
      pullRequest: { ...pr, sha },
    });
    const [waits] = await dispatcher.deliver([opened("s1")]);
    expect(waits).toMatchObject({ verdict: "awaiting_approval" });
    const [refused] = await dispatcher.deliver([approve("eve", "NONE", "s1", "c1")]);
    expect(refused).toMatchObject({
      verdict: "ignored",
      reason: expect.stringMatching(/^eve may not approve/),
    });
    expect(runs.submitted).toHaveLength(0);
    await dispatcher.deliver([approve("ana", "MEMBER", "s1", "c2")]);
    expect(runs.submitted).toHaveLength(1);
    expect(runs.submitted[0]).toMatchObject({ untrusted: true, event: { sha: "s1" } });
    // A new push to the fork needs approval again.
    const [again] = await dispatcher.deliver([{ ...opened("s2"), action: "synchronize" } as TriggerEvent]);
    expect(again).toMatchObject({ verdict: "awaiting_approval" });
    expect(runs.submitted).toHaveLength(1);
    // The next poll sees the old approval again, now on a pull request whose head is s2: it approved s1 only.
    const [seenAgain] = await dispatcher.deliver([approve("ana", "MEMBER", "s2", "c2")]);
    expect(seenAgain).toMatchObject({
      verdict: "ignored",
      reason: expect.stringContaining("commit s1 of #7"),
    });
    expect(await store.approvals("app", 7)).toEqual(["s1"]);
    expect(runs.submitted).toHaveLength(1);
  });
});

describe("schedules", () => {
  it("fire at the minute of their time zone, once, and once after a restart that spanned several", async () => {
    const dir = tempDir();
    const file = join(dir, "nightly.yml");
    writeFileSync(
      file,
      "name: nightly\non:\n  schedule:\n    - { cron: '30 3 * * *', time_zone: Europe/Berlin }\njobs:\n  a: { run: x }\n",
    );
    const store = new MemoryTriggerStore();
    const runs = fakeRuns();
    // 03:29:30 in Berlin (CET, UTC+1) on 2026-01-10.
    const clock = new ManualClock(Date.UTC(2026, 0, 10, 2, 29, 30));
    const service = () =>
      new TriggerService({
        runs,
        store,
        sources: [],
        registered: new Map([["nightly", file]]),
        dataDir: dir,
        clock,
        sweepMs: 3_600_000,
      });
    const first = service();
    await first.fireSchedules();
    expect(runs.submitted).toHaveLength(0);
    await clock.advance(40_000);
    await first.fireSchedules();
    await first.fireSchedules();
    expect(runs.submitted).toHaveLength(1);
    expect(runs.submitted[0]!.event).toMatchObject({
      kind: "schedule",
      schedule: { cron: "30 3 * * *", time_zone: "Europe/Berlin", minute: Date.UTC(2026, 0, 10, 2, 30) },
    });

    // Down for three days: the next server fires once, for the latest missed minute.
    await clock.advanceTo(Date.UTC(2026, 0, 13, 12, 0));
    await service().fireSchedules();
    expect(runs.submitted).toHaveLength(2);
    expect(runs.submitted[1]!.event).toMatchObject({ schedule: { minute: Date.UTC(2026, 0, 13, 2, 30) } });

    // Started by its timer: the service fires at the minute without being asked.
    await clock.advanceTo(Date.UTC(2026, 0, 14, 2, 28, 30));
    const running = service();
    running.start();
    await clock.advanceTo(Date.UTC(2026, 0, 14, 2, 31));
    await running.stop();
    expect(runs.submitted).toHaveLength(3);
    expect((await running.status()).schedules).toEqual([
      expect.objectContaining({ pipeline: "nightly", lastFiredFor: Date.UTC(2026, 0, 14, 2, 30) }),
    ]);
  });
});
