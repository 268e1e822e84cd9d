/**
 * Reporting back to the forge (opt-in `report:`), against a local server that answers as GitHub does:
 * a commit status per triggered run (pending, then its outcome, with a link), a reply to a comment
 * command (and, with `refusals`, to one that started nothing), each said once however often the event
 * is seen; a forge that fails leaves the run alone, is logged and shown, and is retried with backoff;
 * a restart finishes what was left to report.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseServeConfig } from "../../../src/runs/config.js";
import type { RunDetail } from "../../../src/runs/schemas.js";
import type { RunService, SubmitOptions } from "../../../src/runs/service.js";
import { MemoryTriggerStore } from "../../../src/storage/memory-triggers.js";
import { SqliteStorage } from "../../../src/storage/sqlite/sqlite-storage.js";
import type { ReportRecord } from "../../../src/storage/triggers.js";
import type { RunStatus } from "../../../src/storage/types.js";
import { ManualClock } from "../../../src/testing/clock.js";
import { parseSources, type SourceConfig } from "../../../src/triggers/config.js";
import { Dispatcher } from "../../../src/triggers/dispatcher.js";
import type { TriggerEvent } from "../../../src/triggers/event.js";
import { MAX_REPORT_FAILURES, Reporter } from "../../../src/triggers/reporter.js";
import { TriggerService } from "../../../src/triggers/service.js";
import type { Workspaces } from "../../../src/triggers/workspaces.js";
import { fakeForgeForFile } from "../../forge.js";
import { tempDir } from "../../helpers.js";
import { run as cli } from "../cli/cli.js";

const forge = fakeForgeForFile();

const SHA = "c".repeat(40);
const WRITE_ENV = "SLIPWAY_TEST_REPORT_TOKEN";
process.env[WRITE_ENV] = "write-token";

/** Runs that record submissions and whose status the test sets. */
function fakeRuns() {
  const statuses = new Map<string, RunStatus>();
  const submitted: SubmitOptions[] = [];
  const byKey = new Map<string, string>();
  const runs = {
    detached: true,
    async submit(_what: unknown, options: SubmitOptions = {}) {
      const known = options.key === undefined ? undefined : byKey.get(options.key);
      if (known) return { id: known, name: `ci-${known}`, pipeline: "ci", jobs: 1 };
      const id = `run-${submitted.length + 1}`;
      submitted.push(options);
      statuses.set(id, "running");
      if (options.key !== undefined) byKey.set(options.key, id);
      return { id, name: `ci-${id}`, pipeline: "ci", jobs: 1 };
    },
    async list() {
      return [];
    },
    async show(id: string) {
      const status = statuses.get(id);
      if (status === undefined) throw new Error(`no run ${id}`);
      return {
        id,
        status,
        cause:
          status === "compensated"
            ? { kind: "failure", action: "test", error: { message: "exit 1\nmore" } }
            : null,
      } as unknown as RunDetail;
    },
  };
  return { runs: runs as unknown as RunService, statuses, submitted };
}

const workspaces = {
  prepare: async (_source: SourceConfig, sha: string) => `/ws/${sha}`,
  readAt: async () => {
    throw new Error("no repository");
  },
  remove: () => {},
} as unknown as Workspaces;

function setup(options: { refusals?: boolean; store?: MemoryTriggerStore } = {}) {
  const dir = tempDir();
  const file = join(dir, "ci.yml");
  writeFileSync(
    file,
    `name: ci
on:
  pull_request: {}
  comment: { command: "!testme", flags: { --extra: { tier: extra } } }
jobs:
  a: { run: x }
  b: { run: y, tier: extra }
`,
  );
  const source: SourceConfig = {
    name: "app",
    url: "https://github.com/acme/app.git",
    kind: "github",
    api: forge.url,
    credentials: { env: "SLIPWAY_TEST_READ_ONLY" },
    pollMs: 1000,
    allow: [],
    keepFailedMs: 0,
    report: {
      credentials: { env: WRITE_ENV },
      status: true,
      comments: true,
      refusals: options.refusals ?? false,
    },
    pipelines: [{ file }],
  };
  const { runs, statuses, submitted } = fakeRuns();
  const store = options.store ?? new MemoryTriggerStore();
  const clock = new ManualClock(1_000_000);
  const logged: string[] = [];
  const reporter = new Reporter({
    runs,
    store,
    sources: [source],
    clock,
    runUrl: (id) => `https://ci.example.org/api/v1/runs/${id}`,
    log: (line) => logged.push(line),
  });
  const dispatcher = new Dispatcher({
    runs,
    store,
    sources: [source],
    workspaces,
    clock,
    reports: reporter,
  });
  forge.routes.set(`POST /repos/acme/app/statuses/${SHA}`, () => ({ id: 1 }));
  forge.routes.set("POST /repos/acme/app/issues/4/comments", () => ({ id: 2 }));
  return { source, runs, statuses, submitted, store, clock, logged, reporter, dispatcher };
}

const base = { source: "app", at: 0, arrival: { via: "poll" as const } };
const pr = { number: 4, sha: SHA, base: "main", head: "fix", fork: false, headUrl: "u" };
function comment(id: string, body: string, login = "ana", association = "MEMBER"): TriggerEvent {
  return { ...base, kind: "comment", id, body, author: { login, association }, pullRequest: pr };
}

const posted = () => forge.requests.map((r) => [r.path, r.body]);

describe("reporting back to the forge", () => {
  it("sets a commit status per run (pending, then the outcome, with a link) and answers the command once", async () => {
    const { dispatcher, reporter, statuses, clock } = setup();
    const [decision] = await dispatcher.deliver([comment("c1", "!testme --extra")]);
    expect(decision).toMatchObject({ verdict: "started", runId: "run-1" });
    await reporter.settle();
    const link = "https://ci.example.org/api/v1/runs/run-1";
    expect(posted()).toEqual([
      [
        "/repos/acme/app/issues/4/comments",
        {
          body: `Slipway started ci with extra at ${SHA.slice(0, 12)}: run [ci-run-1](${link}).`,
        },
      ],
      [
        `/repos/acme/app/statuses/${SHA}`,
        { state: "pending", target_url: link, description: "running", context: "slipway/ci" },
      ],
    ]);
    // Written with the report's token, never the read-only one.
    expect(forge.requests.every((r) => r.headers.authorization === "Bearer write-token")).toBe(true);

    // Seen again (the next poll, a webhook): nothing said twice.
    forge.requests = [];
    await dispatcher.deliver([comment("c1", "!testme --extra")]);
    await reporter.tick();
    await reporter.settle();
    expect(posted()).toEqual([]);

    // Still running when looked at again: nothing new; then it ends, and the forge is told once.
    await clock.advance(2_000);
    await reporter.tick();
    expect(posted()).toEqual([]);
    statuses.set("run-1", "compensated");
    await clock.advance(2_000);
    await reporter.tick();
    await clock.advance(2_000);
    await reporter.tick();
    expect(posted()).toEqual([
      [
        `/repos/acme/app/statuses/${SHA}`,
        { state: "failure", target_url: link, description: "failed: test: exit 1", context: "slipway/ci" },
      ],
    ]);
  });

  it("answers a refused command with why, only when asked to, and never a comment that is no command", async () => {
    const quiet = setup();
    await quiet.dispatcher.deliver([comment("c1", "!testme", "eve", "NONE")]);
    await quiet.reporter.settle();
    expect(posted()).toEqual([]);

    const told = setup({ refusals: true });
    const decisions = await told.dispatcher.deliver([
      comment("c2", "!testme", "eve", "NONE"),
      comment("c3", "!testme --turbo"),
      comment("c4", "looks good to me"),
      comment("c2", "!testme", "eve", "NONE"),
    ]);
    expect(decisions.map((d) => d.verdict)).toEqual(["ignored", "ignored", "ignored", "ignored"]);
    await told.reporter.settle();
    expect(posted()).toEqual([
      [
        "/repos/acme/app/issues/4/comments",
        {
          body: "Slipway did not start ci: eve may not run commands: write access unknown to this token, association NONE, and not on the allow-list.",
        },
      ],
      [
        "/repos/acme/app/issues/4/comments",
        {
          body: "Slipway did not start ci: unknown flag --turbo (flags: --extra, --input name=value).",
        },
      ],
    ]);
  });

  it("never fails a run: a failing forge is logged, shown, retried with backoff, and given up in the end", async () => {
    const { dispatcher, reporter, store, clock, logged, runs } = setup();
    forge.failures = [{ status: 500 }];
    const [decision] = await dispatcher.deliver([
      { ...base, kind: "pull_request", action: "opened", ...pr, author: { login: "ana" } },
    ]);
    expect(decision).toMatchObject({ verdict: "started", runId: "run-1" });
    await reporter.settle();
    expect(logged.join("\n")).toMatch(
      /reporting ci to app failed \(1 in a row\): POST \/repos\/acme\/app\/statuses\/c+: 500: try later; retrying in 5s/,
    );
    const service = new TriggerService({ runs, store, sources: [], dataDir: tempDir(), clock });
    expect((await service.status()).reports).toEqual([
      expect.objectContaining({ pipeline: "ci", runId: "run-1", state: null, failures: 1, done: false }),
    ]);

    // Not before its time; then it goes through.
    await reporter.tick();
    expect(forge.requests).toHaveLength(1);
    await clock.advance(5_000);
    await reporter.tick();
    expect(posted().at(-1)).toEqual([
      `/repos/acme/app/statuses/${SHA}`,
      expect.objectContaining({ state: "pending" }),
    ]);
    expect((await service.status()).reports[0]).toMatchObject({ state: "pending", failures: 0, error: null });

    // A forge that keeps failing: retried, each time later, until the retries run out.
    forge.failures = Array.from({ length: MAX_REPORT_FAILURES }, () => ({ status: 503 }));
    const run = (await store.recentReports(1))[0]!;
    await store.putReport({ ...run, state: null });
    for (let i = 0; i < MAX_REPORT_FAILURES; i++) {
      await clock.advance(10 * 60_000);
      await reporter.tick();
    }
    expect((await service.status()).reports[0]).toMatchObject({
      failures: MAX_REPORT_FAILURES,
      done: true,
      error: expect.stringContaining("503"),
    });
    expect(logged.at(-1)).toMatch(/giving up$/);
  });

  it("reports a run's end after a restart, from what storage kept", async () => {
    const dir = tempDir();
    const storage = new SqliteStorage({ path: join(dir, "db.sqlite") });
    await storage.init();
    try {
      const store = storage.triggers();
      const first = setup();
      const record: ReportRecord = {
        key: "app:pr:4:c",
        pipeline: "ci",
        source: "app",
        runId: "run-1",
        sha: SHA,
        number: 4,
        reply: "hello",
        state: null,
        done: false,
        failures: 0,
        error: null,
        nextAt: 5,
        at: 5,
      };
      expect(await store.recordReport(record)).toBe(true);
      expect(await store.recordReport({ ...record, reply: "again" })).toBe(false);
      expect(await store.dueReports(4, 10)).toEqual([]);
      expect(await store.dueReports(5, 10)).toEqual([record]);

      // A new server process: the run ended meanwhile.
      await first.runs.submit({ file: "f", source: "s" }, {});
      first.statuses.set("run-1", "completed");
      const reporter = new Reporter({
        runs: first.runs,
        store,
        sources: [first.source],
        clock: first.clock,
      });
      await reporter.tick();
      expect(posted()).toEqual([
        ["/repos/acme/app/issues/4/comments", { body: "hello" }],
        [
          `/repos/acme/app/statuses/${SHA}`,
          { state: "success", description: "completed", context: "slipway/ci" },
        ],
      ]);
      expect(await store.recentReports(5)).toEqual([
        expect.objectContaining({ reply: null, state: "success", done: true }),
      ]);
      expect(await store.dueReports(Number.MAX_SAFE_INTEGER, 10)).toEqual([]);
    } finally {
      await storage.close();
    }
  });
});

describe("slipway triggers", () => {
  it("lists the reports a forge refused, with their error, apart from the events", async () => {
    const db = join(tempDir(), "slipway.db");
    const storage = new SqliteStorage({ path: db });
    await storage.init();
    await storage.triggers().recordReport({
      key: "app:push:refs/heads/main:c",
      pipeline: "ci",
      source: "app",
      runId: "run-1",
      sha: SHA,
      number: null,
      reply: null,
      state: null,
      done: true,
      failures: MAX_REPORT_FAILURES,
      error: "POST /repos/acme/app/statuses/c: 403: Resource not accessible by integration",
      nextAt: 0,
      at: Date.UTC(2026, 11, 5, 12),
    });
    await storage.close();
    const listed = await cli("triggers", "--db", db);
    expect(listed.code).toBe(0);
    expect(listed.out).toMatch(/REPORT FAILED +SOURCE +PIPELINE +RUN +TRIES +ERROR/);
    expect(listed.out).toMatch(
      /2026-12-05 12:00:00Z +app +ci +run-1 +8 \(gave up\) +POST \/repos\/acme\/app\/statuses\/c: 403: Resource not accessible/,
    );
  });
});

describe("the report: setting", () => {
  const parse = (report: string, kind = "github") =>
    parseSources(
      `sources:\n  app:\n    url: https://github.com/acme/app.git\n    kind: ${kind}\n    pipelines: [ci.yml]\n    report:\n${report}\n`,
      "slipway.yml",
      "/srv",
    );

  it("is off unless given, needs a token of its own, and says what it reports", () => {
    expect(parse("      credentials: { env: W }")[0]!.report).toEqual({
      credentials: { env: "W" },
      status: true,
      comments: true,
      refusals: false,
    });
    expect(
      parse("      credentials: { file: w.txt }\n      comments: false\n      refusals: true")[0]!.report,
    ).toEqual({ credentials: { file: "/srv/w.txt" }, status: true, comments: false, refusals: true });
    expect(() => parse("      status: true")).toThrow(/`report` of source `app` needs `credentials`/);
    expect(() => parse("      credentials: ghp_secret")).toThrow(/never the value itself/);
    expect(() => parse("      credentials: { env: W }", "git")).toThrow(
      /a plain `git` source has no forge to report to/,
    );
    expect(() => parse("      credentials: { env: W }\n      statuses: true")).toThrow(/statuses/);
  });

  it("public_url: an http(s) URL, its trailing slash dropped", () => {
    const dir = tempDir();
    expect(parseServeConfig("public_url: https://ci.example.org/slipway/\n", "s.yml", dir).publicUrl).toBe(
      "https://ci.example.org/slipway",
    );
    expect(() => parseServeConfig("public_url: ci.example.org\n", "s.yml", dir)).toThrow(
      /`public_url` must be an http\(s\) URL/,
    );
  });
});
