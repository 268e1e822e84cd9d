/**
 * Reporting back to the forge through a real `slipway serve` (story 3, opt-in `report:`): a GitHub-kind
 * source whose pushes are polled from a real bare repository and whose API is a local server answering
 * as GitHub does. A push's run gets a commit status, pending and then success, linking to the run at the
 * server's address; a `!testme` comment gets a reply linking to the run it started; everything is
 * written with the report's token, never the read-only one.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RunSummary } from "../../../src/runs/schemas.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { FakeForge, type ForgeRequest } from "../../forge.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { commit, git } from "./git.js";
import { startServer } from "./server.js";

let forge: FakeForge | undefined;
afterEach(async () => {
  await forge?.stop();
  forge = undefined;
});

describe("reporting back to the forge from slipway serve", () => {
  it("sets commit statuses for a push's run and answers a comment command, with links to the runs", async () => {
    const project = new Project();
    // The repository's path names it as a forge URL does: .../acme/app.git.
    const repo = join(project.dir, "acme", "app.git");
    const work = join(project.dir, "work");
    mkdirSync(work);
    git(project.dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");

    forge = new FakeForge();
    await forge.start();
    const path = `/repos${repo.replace(/\.git$/, "")}`;
    let pulls: unknown[] = [];
    let comments: unknown[] = [];
    forge.routes.set(`GET ${path}/pulls`, () => pulls);
    forge.routes.set(`GET ${path}/issues/comments`, () => comments);
    forge.routes.set(`POST ${path}/issues/4/comments`, () => ({ id: 1 }));
    project.write(
      "ci.yml",
      `name: ci
on:
  push: { branches: [main] }
  comment: "!testme"
jobs:
  build: { run: "while [ ! -e ${join(project.dir, "go")} ]; do sleep 0.05; done" }
`,
    );
    project.write(
      "slipway.yml",
      `sources:
  app:
    url: file://${repo}
    kind: github
    api: ${forge.url}
    credentials: { env: APP_READ_TOKEN }
    poll: 300ms
    report:
      credentials: { env: APP_WRITE_TOKEN }
    pipelines: [ci.yml]
`,
    );
    const server = await startServer(project, ["--config", "slipway.yml"], {
      env: { APP_READ_TOKEN: "read-token", APP_WRITE_TOKEN: "write-token" },
    });
    const triggers = () => server.json<TriggersResponse>("GET", "/triggers");
    await eventually(async () => (await triggers()).sources[0]?.outcome === "ok", "the first poll");

    const sha = commit(work, "second");
    forge.routes.set(`POST ${path}/statuses/${sha}`, () => ({ id: 1 }));
    git(work, "push", "--quiet", "origin", "main");
    const [run] = await eventually(async () => {
      const runs = await server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
      return runs.length > 0 && runs;
    }, "the push's run");
    const link = `${server.url}/api/v1/runs/${run!.id}`;
    const posts = (suffix: string): ForgeRequest[] =>
      forge!.requests.filter((r) => r.method === "POST" && r.path.endsWith(suffix));
    // Pending while the run runs (its job waits for the file `go`), success once it has completed.
    await eventually(() => posts(`/statuses/${sha}`).length === 1, "the pending status");
    project.write("go", "");
    await server.status(run!.id, "completed");
    await eventually(() => posts(`/statuses/${sha}`).length === 2, "the success status");
    expect(posts(`/statuses/${sha}`).map((r) => r.body)).toEqual([
      { state: "pending", target_url: link, description: "running", context: "slipway/ci" },
      { state: "success", target_url: link, description: "completed", context: "slipway/ci" },
    ]);
    // Reads with the read-only token, writes with the report's.
    expect(new Set(forge.requests.map((r) => `${r.method} ${String(r.headers.authorization)}`))).toEqual(
      new Set(["GET Bearer read-token", "POST Bearer write-token"]),
    );

    // A writer's `!testme` on a pull request of the repository: the reply links to the run.
    pulls = [
      {
        number: 4,
        user: { login: "ana" },
        author_association: "MEMBER",
        head: { sha, ref: "fix", repo: { full_name: "acme/app", clone_url: repo, fork: false } },
        base: { ref: "main", repo: { full_name: "acme/app" } },
      },
    ];
    comments = [
      {
        id: 77,
        body: "!testme",
        user: { login: "ana" },
        author_association: "MEMBER",
        issue_url: `${forge.url}${path}/issues/4`,
        created_at: new Date().toISOString(),
      },
    ];
    const [reply] = await eventually(() => {
      const found = posts("/issues/4/comments");
      return found.length > 0 && found;
    }, "the reply to !testme");
    const commented = await eventually(async () => {
      const runs = await server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
      return runs.find((r) => r.id !== run!.id);
    }, "the comment's run");
    const replyLink = `${server.url}/api/v1/runs/${commented.id}`;
    expect(reply!.body).toEqual({
      body: `Slipway started ci at ${sha.slice(0, 12)}: run [${commented.id}](${replyLink}).`,
    });
    await server.status(commented.id, "completed");
    await eventually(
      async () => (await triggers()).reports.every((r) => r.done),
      "the comment's run reported",
    );
    expect(posts(`/statuses/${sha}`).at(-1)!.body).toMatchObject({ state: "success", target_url: replyLink });
    expect((await triggers()).reports).toEqual([
      expect.objectContaining({ runId: commented.id, state: "success", done: true, error: null }),
      expect.objectContaining({ runId: run!.id, state: "success", done: true, error: null }),
    ]);
  });
});
