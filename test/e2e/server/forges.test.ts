/**
 * Pull requests and comment commands from GitHub, Gitea and GitLab into a real `slipway serve` (story 3):
 * each source's git URL is a real bare repository on disk (its pull requests' heads under the refs the
 * forge keeps them at, so workspaces check them out), and its `api:` a local server answering as the
 * forge documents. One table drives the three forges: pull requests opened and pushed to start runs of
 * their head; a writer's `!testme --extra` runs the extra tier and a stranger's starts nothing, saying
 * why; a fork's pull request waits for a writer's `!approve` of its exact head; signed, forged, unsigned
 * and replayed deliveries; one run for an event seen by webhook and by poll; a forge that fails or
 * rate-limits makes its source back off, say so, and recover.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { RunDetail, RunSummary } from "../../../src/runs/schemas.js";
import { repositoryOf } from "../../../src/triggers/forges/forge.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { FakeForge } from "../../forge.js";
import {
  type Delivery,
  DIALECTS,
  type FakeComment,
  type FakePull,
  type FakeRepo,
  FORGEJO,
  type ForgeDialect,
} from "../../forge-payloads.js";
import { eventually, within } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { commit, git } from "./git.js";
import { type Server, startServer } from "./server.js";

const SECRET = "hook-secret";
const TOKEN = "read-only-token";
const POLL_MS = 250;

/** `trace`: where each run's first job writes its commit and whether the server's environment reached it. */
const pipeline = (trace: string) => `name: ci
run-name: ci-\${{ event.pull_request.number }}-\${{ event.comment.id || event.action }}-\${{ event.sha }}
on:
  pull_request: { branches: [main] }
  comment:
    command: "!testme"
    flags:
      --extra: { tier: extra }
jobs:
  build:
    run: test "$(git rev-parse HEAD)" = "\${{ event.sha }}" && echo "\${{ event.sha }} \${APP_TOKEN:-no-token}" >> ${trace}
  heavy:
    tier: extra
    run: test "$(git rev-parse HEAD)" = "\${{ event.sha }}"
`;

const forges: FakeForge[] = [];
const servers: Server[] = [];
afterEach(async () => {
  // Stopped, not killed: a server stops polling cleanly, so no git process it ran outlives it.
  await Promise.all(servers.splice(0).map((server) => stop(server)));
  await Promise.all(forges.splice(0).map((forge) => forge.stop()));
});

async function stop(server: Server): Promise<void> {
  const { child, done } = server.process;
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  expect((await within(done, "the server to stop")).code).toBe(0);
}

/** A forge source in a running server, and what the test does to it. */
interface Setup {
  project: Project;
  server: Server;
  forge: FakeForge;
  /** What the forge's API answers from. */
  repo: FakeRepo;
  /** A commit on the pull request's head (a new branch for a new number), pushed where the forge keeps it. */
  pushHead(number: number): string;
  runs(): Promise<RunSummary[]>;
  triggers(): Promise<TriggersResponse>;
  /** Waits for a poll that began after now and went well: what the forge shows now has been seen. */
  nextPoll(): Promise<void>;
  /** Waits for the event with this key to have a verdict of `ci`, and returns it. */
  verdict(key: string): Promise<TriggersResponse["events"][number]["verdicts"][number]>;
  /** Waits for the number of runs to reach `count`, and returns the newest's detail once it completed. */
  newRun(count: number): Promise<RunDetail>;
  deliver(delivery: Delivery, signature: Record<string, string>): Promise<Response>;
}

async function setUp(dialect: ForgeDialect, options: { hooks?: boolean } = {}): Promise<Setup> {
  const project = new Project();
  const bare = join(project.dir, "acme", "app.git");
  const work = join(project.dir, "work");
  mkdirSync(work);
  git(project.dir, "init", "--quiet", "--bare", bare);
  git(work, "init", "--quiet", "-b", "main");
  git(work, "remote", "add", "origin", bare);
  const main = commit(work, "first");
  git(work, "push", "--quiet", "origin", "main");
  /** Each pull request's head commit, by number. */
  const heads = new Map<number, string>();

  const forge = new FakeForge();
  await forge.start();
  forges.push(forge);
  // A file URL names the repository as the forge's URL would (its path): the API routes live under it.
  const url = pathToFileURL(bare).href;
  const repo: FakeRepo = {
    path: repositoryOf(dialect.kind, url).path,
    pulls: [],
    comments: [],
    writers: new Set(["alice"]),
    people: ["alice", "mallory"],
  };
  dialect.serve(forge, repo);

  project.write("ci.yml", pipeline(join(project.dir, "trace")));
  project.write(
    "slipway.yml",
    // Jobs may inherit the token (a CI that reads the repository with it); a fork's code still may not.
    `job_env: [APP_TOKEN]
sources:
  app:
    url: ${url}
    kind: ${dialect.kind}
    api: ${forge.url}
    credentials: { env: APP_TOKEN }
    poll: ${POLL_MS}ms
${options.hooks ? "    webhook_secret: { env: APP_HOOK_SECRET }\n" : ""}    pipelines: [ci.yml]
`,
  );
  const server = await startServer(project, ["--config", "slipway.yml"], {
    env: { APP_TOKEN: TOKEN, APP_HOOK_SECRET: SECRET },
  });
  servers.push(server);
  const triggers = () => server.json<TriggersResponse>("GET", "/triggers");
  const runs = () => server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
  const nextPoll = async () => {
    const since = Date.now();
    let last = "";
    await eventually(
      async () => {
        const source = (await triggers()).sources[0];
        last = source?.outcome ?? "never";
        return (source?.lastPollAt ?? 0) > since && source?.outcome === "ok";
      },
      () => `a poll after ${since} that went well (last outcome: ${last})`,
    );
  };
  // The first poll is a baseline (git's refs, the forge's open pull requests): changes after it count.
  await nextPoll();

  return {
    project,
    server,
    forge,
    repo,
    pushHead(number) {
      // An empty commit on the head before (two git processes, not five: a busy machine is slow to start them).
      const parent = heads.get(number) ?? main;
      const sha = git(work, "commit-tree", `${parent}^{tree}`, "-p", parent, "-m", `work on #${number}`);
      git(work, "push", "--quiet", "--force", "origin", `${sha}:${dialect.pullRef(number)}`);
      heads.set(number, sha);
      return sha;
    },
    runs,
    triggers,
    nextPoll,
    async verdict(key) {
      let seen = "nothing";
      return eventually(
        async () => {
          const event = (await triggers()).events.find((e) => e.key === key);
          seen = event ? JSON.stringify(event.verdicts) : "no such event";
          return event?.verdicts.find((v) => v.pipeline === "ci");
        },
        () => `a verdict on ${key} (seen: ${seen})`,
      );
    },
    async newRun(count) {
      let seen = 0;
      const found = await eventually(
        async () => {
          const all = await runs();
          seen = all.length;
          return all.length >= count && all;
        },
        () => `run number ${count} of ci (there are ${seen})`,
      );
      expect(found).toHaveLength(count);
      return server.status(found[0]!.id, "completed");
    },
    deliver(delivery, signature) {
      return fetch(`${server.url}/hooks/app`, {
        method: "POST",
        headers: { "content-type": "application/json", ...delivery.headers, ...signature },
        body: delivery.body,
        signal: AbortSignal.timeout(20_000),
      });
    },
  };
}

const pull = (number: number, sha: string, fork = false): FakePull => ({
  number,
  sha,
  base: "main",
  head: `pr-${number}`,
  fork,
  author: fork ? "mallory" : "alice",
});

const comment = (id: number, number: number, author: string, body: string): FakeComment => ({
  id,
  number,
  body,
  author,
  at: Date.now(),
});

/** Signed, forged, unsigned and replayed deliveries of a pull request and a comment; then the poll sees them too. */
async function deliveries(dialect: ForgeDialect): Promise<void> {
  const s = await setUp(dialect, { hooks: true });
  const sha = s.pushHead(3);
  const pr = pull(3, sha);

  // Forged and unsigned: 401, nothing recorded (not even the delivery id).
  const opened = dialect.pullRequestHook(s.repo, pr, "opened", "delivery-pr");
  for (const signature of [dialect.sign(opened.body, "a guess"), {}]) {
    const refused = await s.deliver(opened, signature);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { message: string }).message).toMatch(/does not match|missing/);
  }
  expect((await s.triggers()).events).toEqual([]);

  const accepted = await s.deliver(opened, dialect.sign(opened.body, SECRET));
  expect(accepted.status).toBe(202);
  const replayed = await s.deliver(opened, dialect.sign(opened.body, SECRET));
  expect(replayed.status).toBe(200);
  expect(await replayed.json()).toMatchObject({ replayed: true });
  const run = await s.newRun(1);
  expect(run.spec?.event).toMatchObject({ kind: "pull_request", sha, pull_request: { number: 3 } });

  // The poll finds the same pull request: no second run.
  s.repo.pulls.push(pr);
  await s.nextPoll();
  expect(await s.runs()).toHaveLength(1);
  expect((await s.triggers()).events.filter((e) => e.key === `app:pr:3:${sha}`)).toHaveLength(1);

  // A comment command likewise.
  const command = comment(701, 3, "alice", "!testme --extra");
  const said = dialect.commentHook(s.repo, command, "delivery-comment");
  for (const signature of [dialect.sign(said.body, "a guess"), {}])
    expect((await s.deliver(said, signature)).status).toBe(401);
  expect((await s.triggers()).events.some((e) => e.key === "app:comment:701")).toBe(false);
  expect((await s.deliver(said, dialect.sign(said.body, SECRET))).status).toBe(202);
  expect(await (await s.deliver(said, dialect.sign(said.body, SECRET))).json()).toMatchObject({
    replayed: true,
  });
  const extra = await s.newRun(2);
  expect(extra.spec).toMatchObject({
    tiers: ["extra"],
    event: { kind: "comment", sha, comment: { id: "701", author: "alice" } },
  });
  s.repo.comments.push(command);
  await s.nextPoll();
  expect(await s.runs()).toHaveLength(2);
}

describe.each(DIALECTS)("$kind pull requests and comments in slipway serve", (dialect) => {
  // The CLI prints the API's answer, whatever the forge: checked on one (each `slipway` call is a
  // process start, slow on a busy machine).
  const cli = dialect === DIALECTS[0];
  it("runs a pull request's head when opened and pushed to; a writer's `!testme --extra` runs the extra tier, a stranger's nothing", async () => {
    const s = await setUp(dialect);

    const first = s.pushHead(1);
    s.repo.pulls.push(pull(1, first));
    const opened = await s.newRun(1);
    expect(opened.name).toBe(`ci-1-opened-${first}`);
    expect(opened.spec).toMatchObject({ tiers: [], workspace: expect.any(String) });
    expect(opened.spec?.event).toMatchObject({
      kind: "pull_request",
      source: "app",
      action: "opened",
      sha: first,
      branch: "pr-1",
      pull_request: { number: 1, sha: first, base: "main", head: "pr-1", fork: false, author: "alice" },
    });
    // The repository's own code: the job inherits what `job_env:` lets it (here the source's token).
    expect(s.project.count(`${first} ${TOKEN}`)).toBe(1);
    if (cli) {
      const shown = await s.project.run(["show", opened.id, "--json", ...s.server.flags]);
      expect(JSON.parse(shown.stdout)).toMatchObject({
        spec: { event: { kind: "pull_request", pull_request: { number: 1, sha: first } } },
      });
    }
    // The forge was asked with the source's token.
    const auth = s.forge.requests.at(-1)!.headers;
    expect(JSON.stringify(auth)).toContain(TOKEN);

    const second = s.pushHead(1);
    s.repo.pulls[0]!.sha = second;
    const pushed = await s.newRun(2);
    expect(pushed.spec?.event).toMatchObject({
      kind: "pull_request",
      action: "synchronize",
      sha: second,
      pull_request: { number: 1, sha: second },
    });

    // A writer's command: the extra tier's job runs too, at the pull request's head.
    s.repo.comments.push(comment(501, 1, "alice", "!testme --extra"));
    const extra = await s.newRun(3);
    expect(extra.spec?.tiers).toEqual(["extra"]);
    expect(extra.spec?.event).toMatchObject({
      kind: "comment",
      sha: second,
      pull_request: { number: 1, sha: second },
      comment: { id: "501", author: "alice", command: "!testme --extra" },
    });
    expect(extra.steps.map((step) => [step.job, step.status])).toEqual(
      expect.arrayContaining([
        ["build", "completed"],
        ["heavy", "completed"],
      ]),
    );

    // A stranger's: nothing starts, and the verdict says who and why.
    s.repo.comments.push(comment(502, 1, "mallory", "!testme --extra"));
    expect(await s.verdict("app:comment:502")).toMatchObject({
      verdict: "ignored",
      runId: null,
      reason: expect.stringMatching(/^mallory may not run commands: no write access/),
    });
    expect(await s.runs()).toHaveLength(3);
    if (cli)
      expect((await s.project.run(["triggers", ...s.server.flags])).stdout).toMatch(
        /comment "!testme --extra" by mallory on #1 +ci +ignored +mallory may not run commands/,
      );
  });

  it("holds a fork's pull request until a writer's `!approve`, runs that commit only, and holds the next push again", async () => {
    const s = await setUp(dialect);

    const first = s.pushHead(2);
    s.repo.pulls.push(pull(2, first, true));
    expect(await s.verdict(`app:pr:2:${first}`)).toMatchObject({
      verdict: "awaiting_approval",
      reason: expect.stringContaining(`commit ${first.slice(0, 12)} waits for a writer's !approve`),
    });
    expect((await s.triggers()).awaitingApproval).toEqual([
      expect.objectContaining({ key: `app:pr:2:${first}`, pipeline: "ci" }),
    ]);
    if (cli)
      expect((await s.project.run(["triggers", ...s.server.flags])).stdout).toMatch(
        new RegExp(
          `pull_request #2 opened ${first.slice(0, 12)} +ci +awaiting_approval +a fork pull request by mallory`,
        ),
      );

    // The fork's author may not approve their own code.
    s.repo.comments.push(comment(601, 2, "mallory", "!approve"));
    await eventually(async () => {
      const event = (await s.triggers()).events.find((e) => e.key === "app:comment:601");
      return event?.verdicts[0]?.reason?.startsWith("mallory may not approve");
    }, "mallory's !approve to be refused");
    expect(await s.runs()).toHaveLength(0);

    // A writer's approval starts what waited, at the approved commit.
    s.repo.comments.push(comment(602, 2, "alice", "!approve"));
    const run = await s.newRun(1);
    expect(run.spec?.event).toMatchObject({
      kind: "pull_request",
      action: "opened",
      sha: first,
      pull_request: { number: 2, sha: first, fork: true, author: "mallory" },
    });
    expect((await s.triggers()).awaitingApproval).toEqual([]);
    // A fork's code, approved or not, gets none of the server's environment: no credentials.
    expect(s.project.trace()).toEqual([`${first} no-token`]);

    // A new push to the fork waits for a new approval; the old one approved the old commit only.
    const second = s.pushHead(2);
    s.repo.pulls[0]!.sha = second;
    expect(await s.verdict(`app:pr:2:${second}`)).toMatchObject({ verdict: "awaiting_approval" });
    await s.nextPoll();
    await s.nextPoll();
    expect(await s.runs()).toHaveLength(1);
    expect((await s.triggers()).awaitingApproval).toEqual([
      expect.objectContaining({ key: `app:pr:2:${second}` }),
    ]);

    // An approval and a push seen in one look at the forge: which commit the writer meant cannot be
    // told, so nothing is approved (polls are held meanwhile, so the next one sees both).
    s.forge.failing = { status: 500 };
    await eventually(async () => (await s.triggers()).sources[0]!.failures > 0, "a poll held");
    s.repo.comments.push(comment(603, 2, "alice", "!approve"));
    const third = s.pushHead(2);
    s.repo.pulls[0]!.sha = third;
    s.forge.failing = undefined;
    expect(await s.verdict(`app:pr:2:${third}`)).toMatchObject({ verdict: "awaiting_approval" });
    const ambiguous = await eventually(
      async () => (await s.triggers()).events.find((e) => e.key === "app:comment:603")?.verdicts[0],
      "the approval seen with the push",
    );
    expect(ambiguous).toMatchObject({ verdict: "ignored", reason: expect.stringContaining("approve again") });
    await s.nextPoll();
    expect(await s.runs()).toHaveLength(1);
    // Approved again, once the writer has seen the new head: it runs.
    s.repo.comments.push(comment(604, 2, "alice", "!approve"));
    expect((await s.newRun(2)).spec?.event).toMatchObject({ sha: third });
  });

  it("takes signed deliveries only, once each; an event seen by webhook and by poll runs once", () =>
    deliveries(dialect));

  it("backs off while the forge fails or rate-limits, says so, then recovers and starts the run", async () => {
    const s = await setUp(dialect);
    const source = async () => (await s.triggers()).sources[0]!;

    s.forge.failing = { status: 500 };
    const down = await eventually(async () => {
      const state = await source();
      return state.failures >= 2 && state;
    }, "two failed polls in a row");
    expect(down.outcome).toMatch(/: 500.* backing off \d+s \(failure \d+ in a row\)$/);
    // Each failure waits longer: twice the interval, then four times... up to sixteen times.
    expect(down.nextPollAt! - down.lastPollAt!).toBeGreaterThanOrEqual(
      Math.min(2 ** down.failures, 16) * POLL_MS,
    );

    // A pull request opened meanwhile is found once the forge answers again.
    const sha = s.pushHead(4);
    s.repo.pulls.push(pull(4, sha));
    s.forge.failing = dialect.rateLimited();
    const limited = await eventually(async () => {
      const state = await source();
      return state.outcome?.includes("429") && state;
    }, "a rate-limited poll");
    expect(limited.outcome).toMatch(/: 429 \(rate-limited\).* backing off \d+s/);
    // The forge's Retry-After is believed.
    expect(limited.nextPollAt! - limited.lastPollAt!).toBeGreaterThanOrEqual(2_000);
    if (cli)
      expect((await s.project.run(["triggers", ...s.server.flags])).stdout).toMatch(
        /429 \(rate-limited\).* backing off/,
      );
    expect(await s.runs()).toHaveLength(0);

    s.forge.failing = undefined;
    const run = await s.newRun(1);
    expect(run.spec?.event).toMatchObject({ kind: "pull_request", action: "opened", sha });
    expect(await source()).toMatchObject({ outcome: "ok", failures: 0 });
  });
});

// Forgejo is Gitea's API; its deliveries carry its own headers.
describe("forgejo deliveries in slipway serve", () => {
  it("takes signed deliveries only, once each; an event seen by webhook and by poll runs once", () =>
    deliveries(FORGEJO));
});
