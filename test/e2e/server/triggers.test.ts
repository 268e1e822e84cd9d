/**
 * Runs started by git pushes (story 3) in a real `slipway serve`: a real bare repository on disk, pushed
 * to by the test, polled with `git ls-remote`. A push to a matching branch starts exactly one run, with
 * the pushed commit as `event.sha` and a workspace at that commit; a push to another branch starts none;
 * several commits in one push start one run for the newest, or one per commit when the pipeline asks.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { RunDetail, RunSummary } from "../../../src/runs/schemas.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { commit, git } from "./git.js";
import { type Server, startServer } from "./server.js";

async function runsOf(server: Server, pipeline: string): Promise<RunSummary[]> {
  return server.json<RunSummary[]>("GET", `/runs?pipeline=${pipeline}`);
}

async function triggers(server: Server): Promise<TriggersResponse> {
  return server.json<TriggersResponse>("GET", "/triggers");
}

/** Waits for a poll that began after now, so whatever was pushed before has been seen. */
async function nextPoll(server: Server): Promise<void> {
  const since = Date.now();
  await eventually(
    async () =>
      (await triggers(server)).sources.every((s) => (s.lastPollAt ?? 0) > since && s.outcome === "ok"),
    "a poll after the push",
  );
}

describe("triggers: git pushes polled in slipway serve", () => {
  it("starts one run per matching push, at the pushed commit, in a workspace of it", async () => {
    const project = new Project();
    const repo = join(project.dir, "repo.git");
    const work = join(project.dir, "work");
    mkdirSync(work);
    git(project.dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    project.write("work/app.txt", "v1\n");
    git(work, "add", "app.txt");
    commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");

    const trace = join(project.dir, "trace");
    project.write(
      "ci.yml",
      `name: ci
run-name: ci-\${{ event.branch }}-\${{ event.sha }}
on:
  push: { branches: [main] }
jobs:
  build:
    run: echo "ci \${{ event.sha }} $(git rev-parse HEAD) $SLIPWAY_WORKSPACE $PWD" >> ${trace}
`,
    );
    project.write(
      "each.yml",
      `name: each
on:
  push: { branches: ["each/**"], commits: each }
jobs:
  build:
    run: echo "each \${{ event.sha }} $(git rev-parse HEAD)" >> ${trace}
`,
    );
    project.write(
      "slipway.yml",
      `sources:
  app:
    url: ./repo.git
    poll: 200ms
    pipelines: [ci.yml, each.yml]
`,
    );
    const server = await startServer(project, ["--config", "slipway.yml"]);
    // The first poll notes where the branches are; pushes after it start runs.
    await nextPoll(server);

    // A push to main: one run of ci, at that commit, in a checkout of it.
    project.write("work/app.txt", "v2\n");
    git(work, "commit", "--quiet", "-am", "second");
    const second = git(work, "rev-parse", "HEAD");
    git(work, "push", "--quiet", "origin", "main");
    const [run] = await eventually(async () => {
      const runs = await runsOf(server, "ci");
      return runs.length > 0 && runs;
    }, "a run of ci for the push");
    expect(run!.name).toBe(`ci-main-${second}`);
    const done = await server.status(run!.id, "completed");
    expect(done.spec?.event).toMatchObject({ kind: "push", branch: "main", sha: second, source: "app" });
    const workspace = done.spec?.workspace;
    expect(workspace).toContain(join(".slipway", "workspaces"));
    expect(project.trace()).toEqual([`ci ${second} ${second} ${workspace} ${workspace}`]);
    const shown = await project.run(["show", run!.id, ...server.flags]);
    expect(shown.stdout).toContain(`event     push main@${second.slice(0, 12)} (app)`);
    // The workspace goes once the run has ended well.
    await eventually(() => !existsSync(workspace!), "the workspace to be removed");

    // A push to another branch starts nothing, and says why.
    git(work, "checkout", "--quiet", "-b", "feature");
    const feature = commit(work, "feature work");
    git(work, "push", "--quiet", "origin", "feature");
    // An event is recorded first and decided after (its verdicts come with the decision).
    const seen = await eventually(async () => {
      const events = (await triggers(server)).events;
      const event = events.find((e) => e.summary === `push feature@${feature.slice(0, 12)}`);
      return event && event.verdicts.length > 0 && event;
    }, "the push to feature to be seen and decided");
    expect(seen.verdicts).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          pipeline: "ci",
          verdict: "ignored",
          reason: "branch feature matches no `on.push.branches`",
        }),
      ]),
    );

    const listed = await project.run(["triggers", ...server.flags]);
    expect(listed.stdout).toMatch(/^app +git +every 200ms +\S+ \S+ +ok /m);
    expect(listed.stdout).toMatch(
      new RegExp(`push feature@${feature.slice(0, 12)} +ci +ignored +branch feature`),
    );

    // Two commits in one push (several pushes between two polls): one run, for the newest.
    git(work, "checkout", "--quiet", "main");
    commit(work, "third");
    const fourth = commit(work, "fourth");
    git(work, "push", "--quiet", "origin", "main");
    await eventually(async () => (await runsOf(server, "ci")).length === 2, "a second run of ci");
    await nextPoll(server);
    const ci = await runsOf(server, "ci");
    expect(ci).toHaveLength(2);
    const latest = await server.status(ci[0]!.id, "completed");
    expect(latest.spec?.event?.sha).toBe(fourth);

    // `commits: each`: a new branch runs its head, then two commits in one push run one each, in order.
    git(work, "checkout", "--quiet", "-b", "each/x");
    git(work, "push", "--quiet", "origin", "each/x");
    await eventually(
      async () => (await runsOf(server, "each")).length === 1,
      "a run of each for the new branch",
    );
    const fifth = commit(work, "fifth");
    const sixth = commit(work, "sixth");
    git(work, "push", "--quiet", "origin", "each/x");
    const each = await eventually(async () => {
      const runs = await runsOf(server, "each");
      return runs.length === 3 && runs;
    }, "one run of each per pushed commit");
    const shas = await Promise.all(
      each.map(async (r) => (await server.status(r.id, "completed")).spec?.event?.sha as string),
    );
    expect(shas.slice(0, 2).sort()).toEqual([fifth, sixth].sort());
    await nextPoll(server);
    expect(await runsOf(server, "each")).toHaveLength(3);
    expect(await runsOf(server, "ci")).toHaveLength(2);
    for (const sha of [fifth, sixth]) expect(project.count(`each ${sha} ${sha}`)).toBe(1);
    expect((await server.json<RunDetail>("GET", `/runs/${each[0]!.id}`)).spec?.workspace).toBeDefined();

    // Shutdown stops polling cleanly: no git process outlives the server.
    server.process.child.kill("SIGTERM");
    expect((await server.process.done).code).toBe(0);
  });
});
