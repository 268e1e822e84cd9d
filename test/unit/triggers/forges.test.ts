/**
 * The forge REST clients against a local server that answers as GitHub, Gitea and GitLab document:
 * pull requests opened and pushed to, comments, permissions, conditional requests, errors and rate
 * limits, and the opt-in status reports and replies.
 */
import { describe, expect, it } from "vitest";
import { createForge } from "../../../src/triggers/forges/create.js";
import type { Forge } from "../../../src/triggers/forges/forge.js";
import { ForgeError } from "../../../src/triggers/forges/http.js";
import { pollForge } from "../../../src/triggers/forges/poll.js";
import { fakeForgeForFile } from "../../forge.js";

const forge = fakeForgeForFile();

const SHA1 = "a".repeat(40);
const SHA2 = "b".repeat(40);

function githubPull(number: number, sha: string, fork = false) {
  return {
    number,
    user: { login: fork ? "stranger" : "alice" },
    author_association: fork ? "NONE" : "COLLABORATOR",
    head: {
      sha,
      ref: "feature",
      repo: {
        full_name: fork ? "stranger/app" : "acme/app",
        clone_url: `https://github.com/${fork ? "stranger" : "acme"}/app.git`,
        fork,
      },
    },
    base: { ref: "main", repo: { full_name: "acme/app" } },
  };
}

describe("GitHub", () => {
  const NOW = 1_700_000_000_000;
  const github = (): Forge =>
    createForge("github", {
      url: "https://github.com/acme/app.git",
      api: forge.url,
      token: "ro-token",
      http: { now: () => NOW },
    });

  it("polls pull requests: a baseline first, then opened and pushed-to ones, idle polls answered 304", async () => {
    let pulls = [githubPull(1, SHA1)];
    let comments: unknown[] = [];
    forge.routes.set("GET /repos/acme/app/pulls", () => pulls);
    forge.routes.set("GET /repos/acme/app/issues/comments", () => comments);
    const client = github();

    const first = await pollForge(client, "app", undefined, 1_000);
    expect(first.events).toEqual([]);
    expect(first.state.heads).toEqual({ "1": SHA1 });

    pulls = [githubPull(1, SHA2), githubPull(2, SHA1, true)];
    const second = await pollForge(client, "app", first.state, 2_000);
    expect(second.events).toMatchObject([
      {
        kind: "pull_request",
        action: "synchronize",
        number: 1,
        sha: SHA2,
        fork: false,
        arrival: { via: "poll" },
      },
      {
        kind: "pull_request",
        action: "opened",
        number: 2,
        fork: true,
        headUrl: "https://github.com/stranger/app.git",
        author: { login: "stranger", association: "NONE" },
      },
    ]);

    // Nothing changed: the forge answers 304 to the conditional requests, and no event comes out.
    const http = (client as unknown as { http: { notModified: number } }).http;
    const before = http.notModified;
    const idle = await pollForge(client, "app", second.state, 3_000);
    expect(idle.events).toEqual([]);
    expect(http.notModified - before).toBe(2);
    const lastPulls = forge.requests.filter((r) => r.path.startsWith("/repos/acme/app/pulls")).at(-1)!;
    expect(lastPulls.headers["if-none-match"]).toMatch(/^"/);
    expect(lastPulls.headers.authorization).toBe("Bearer ro-token");

    comments = [
      {
        id: 77,
        body: "!testme --extra",
        user: { login: "alice" },
        author_association: "COLLABORATOR",
        issue_url: "https://api.github.com/repos/acme/app/issues/1",
        created_at: new Date(2_500).toISOString(),
      },
      {
        id: 78,
        body: "!testme",
        user: { login: "alice" },
        author_association: "COLLABORATOR",
        issue_url: "https://api.github.com/repos/acme/app/issues/99",
        created_at: new Date(2_600).toISOString(),
      },
    ];
    const withComment = await pollForge(client, "app", idle.state, 4_000);
    // The comment on issue 99 (not an open pull request) is dropped; the other carries its PR's head.
    expect(withComment.events).toEqual([
      {
        source: "app",
        at: 4_000,
        arrival: { via: "poll" },
        kind: "comment",
        id: "77",
        body: "!testme --extra",
        author: { login: "alice", association: "COLLABORATOR" },
        pullRequest: {
          number: 1,
          sha: SHA2,
          base: "main",
          head: "feature",
          fork: false,
          headUrl: "https://github.com/acme/app.git",
        },
      },
    ]);
    expect(withComment.state.commentsSeen).toBe(2_500);

    // A comment found in the same poll as a new head may be about the head before: it says so.
    pulls = [githubPull(1, SHA1)];
    const moved = await pollForge(client, "app", withComment.state, 5_000);
    expect(moved.events).toMatchObject([
      { kind: "pull_request", action: "synchronize", sha: SHA1 },
      { kind: "comment", id: "77", pullRequest: { sha: SHA1, moved: true } },
    ]);
  });

  it("knows writers from the event's association, else from the permission API where the token may read it", async () => {
    const client = github();
    expect(await client.canWrite({ login: "alice", association: "OWNER" })).toBe(true);
    forge.routes.set("GET /repos/acme/app/collaborators/bob/permission", () => ({ permission: "write" }));
    forge.routes.set("GET /repos/acme/app/collaborators/carol/permission", () => ({ permission: "read" }));
    expect(await client.canWrite({ login: "bob", association: "CONTRIBUTOR" })).toBe(true);
    expect(await client.canWrite({ login: "carol", association: "NONE" })).toBe(false);
    // A read-only token refused the permission API: the association decides.
    forge.failures.push({ status: 403 });
    expect(await client.canWrite({ login: "dave", association: "NONE" })).toBe(false);
    forge.failures.push({ status: 403 });
    expect(await client.canWrite({ login: "dave" })).toBeUndefined();
  });

  it("sorts errors: down and rate-limited are transient with a time to come back; a bad request is not", async () => {
    forge.routes.set("GET /repos/acme/app/pulls", () => []);
    const client = github();
    forge.failures.push({ status: 500 });
    const down = await client.openPullRequests().catch((e: unknown) => e);
    expect(down).toBeInstanceOf(ForgeError);
    expect(down).toMatchObject({ status: 500, transient: true, message: expect.stringContaining("500") });

    forge.failures.push({ status: 429, headers: { "retry-after": "7" } });
    expect(await client.openPullRequests().catch((e: unknown) => e)).toMatchObject({
      status: 429,
      retryAfterMs: 7_000,
      transient: true,
    });

    const reset = NOW / 1_000 + 120;
    forge.failures.push({
      status: 403,
      headers: { "x-ratelimit-remaining": "0", "x-ratelimit-reset": String(reset) },
    });
    const limited = (await client.openPullRequests().catch((e: unknown) => e)) as ForgeError;
    expect(limited.transient).toBe(true);
    expect(limited.message).toMatch(/rate-limited/);
    expect(limited.retryAfterMs).toBe(120_000);

    forge.failures.push({ status: 401 });
    expect(await client.openPullRequests().catch((e: unknown) => e)).toMatchObject({
      status: 401,
      transient: false,
    });
    // And then it recovers.
    expect(await client.openPullRequests()).toEqual([]);
  });

  it("cannot reach a forge that is not there: a transient error naming why", async () => {
    const client = createForge("github", { url: "https://github.com/acme/app", api: "http://127.0.0.1:1" });
    const error = (await client.openPullRequests().catch((e: unknown) => e)) as ForgeError;
    expect(error).toBeInstanceOf(ForgeError);
    expect(error.status).toBe(0);
    expect(error.transient).toBe(true);
    expect(error.message).toMatch(/cannot reach the forge/);
  });

  it("reports a run's status and answers a comment, when turned on", async () => {
    forge.routes.set(`POST /repos/acme/app/statuses/${SHA1}`, () => ({ id: 1 }));
    forge.routes.set("POST /repos/acme/app/issues/1/comments", () => ({ id: 2 }));
    const client = github();
    await client.reportStatus(SHA1, {
      state: "success",
      url: "http://ci/runs/r1",
      description: "recipe-ci completed",
      context: "slipway/recipe-ci",
    });
    await client.reply(1, "Started run r1");
    expect(forge.requests.map((r) => [r.method, r.path, r.body])).toEqual([
      [
        "POST",
        `/repos/acme/app/statuses/${SHA1}`,
        {
          state: "success",
          target_url: "http://ci/runs/r1",
          description: "recipe-ci completed",
          context: "slipway/recipe-ci",
        },
      ],
      ["POST", "/repos/acme/app/issues/1/comments", { body: "Started run r1" }],
    ]);
  });
});

describe("Gitea", () => {
  const gitea = () =>
    createForge("gitea", { url: "http://gitea.local/recipes/app", api: forge.url, token: "t" });
  const pull = (number: number, sha: string, fork: boolean) => ({
    number,
    user: { login: "alice" },
    head: {
      sha,
      ref: "faster",
      repo: { id: fork ? 99 : 12, full_name: "x/app", clone_url: "http://gitea/x/app.git" },
    },
    base: { ref: "main", repo: { id: 12, full_name: "recipes/app" } },
  });

  it("polls pull requests and comments, and asks the permission API who may write", async () => {
    let pulls = [pull(7, SHA1, false)];
    forge.routes.set("GET /repos/recipes/app/pulls", () => pulls);
    forge.routes.set("GET /repos/recipes/app/issues/comments", () => [
      {
        id: 88,
        body: "!testme",
        user: { login: "alice" },
        pull_request_url: "http://gitea.local/recipes/app/pulls/7",
        created_at: new Date(5_000).toISOString(),
      },
    ]);
    forge.routes.set("GET /repos/recipes/app/collaborators/alice/permission", () => ({
      permission: "write",
    }));
    forge.routes.set("GET /repos/recipes/app/collaborators/eve/permission", () => ({ permission: "read" }));
    const client = gitea();
    const first = await pollForge(client, "app", undefined, 1_000);
    pulls = [pull(7, SHA2, false), pull(8, SHA1, true)];
    const { events } = await pollForge(client, "app", first.state, 6_000);
    expect(events).toMatchObject([
      { kind: "pull_request", action: "synchronize", number: 7, fork: false },
      { kind: "pull_request", action: "opened", number: 8, fork: true },
      { kind: "comment", id: "88", pullRequest: { number: 7, sha: SHA2 } },
    ]);
    expect(forge.requests[0]!.headers.authorization).toBe("token t");
    expect(await client.canWrite({ login: "alice" })).toBe(true);
    expect(await client.canWrite({ login: "eve" })).toBe(false);
    expect(await client.canWrite({ login: "nobody" })).toBe(false);
  });
});

describe("GitLab", () => {
  const gitlab = () =>
    createForge("gitlab", { url: "https://gitlab.local/group/sub/app.git", api: forge.url, token: "glpat" });
  const project = `/projects/${encodeURIComponent("group/sub/app")}`;

  it("polls merge requests and their notes, finds a fork's clone URL, and reads member access levels", async () => {
    let mrs = [
      {
        iid: 3,
        sha: SHA1,
        source_branch: "feat",
        target_branch: "main",
        source_project_id: 5,
        target_project_id: 5,
        author: { username: "root" },
      },
    ];
    forge.routes.set(`GET ${project}/merge_requests`, () => mrs);
    forge.routes.set(`GET ${project}/merge_requests/3/notes`, () => [
      {
        id: 1,
        body: "changed the description",
        system: true,
        author: { username: "root" },
        created_at: new Date(9_000).toISOString(),
      },
      {
        id: 2,
        body: "!testme --extra",
        system: false,
        author: { username: "root" },
        created_at: new Date(9_000).toISOString(),
      },
    ]);
    forge.routes.set(`GET ${project}/merge_requests/4/notes`, () => []);
    forge.routes.set("GET /projects/77", () => ({
      http_url_to_repo: "https://gitlab.local/stranger/app.git",
    }));
    forge.routes.set("GET /users", () => [{ id: 1 }]);
    forge.routes.set(`GET ${project}/members/all/1`, () => ({ access_level: 30 }));
    const client = gitlab();
    const first = await pollForge(client, "app", undefined, 1_000);
    mrs = [
      ...mrs,
      {
        iid: 4,
        sha: SHA2,
        source_branch: "x",
        target_branch: "main",
        source_project_id: 77,
        target_project_id: 5,
        author: { username: "stranger" },
      },
    ];
    const { events } = await pollForge(client, "app", first.state, 10_000);
    expect(events).toMatchObject([
      {
        kind: "pull_request",
        action: "opened",
        number: 4,
        fork: true,
        headUrl: "https://gitlab.local/stranger/app.git",
      },
      {
        kind: "comment",
        id: "2",
        body: "!testme --extra",
        pullRequest: { number: 3, sha: SHA1, fork: false },
      },
    ]);
    expect(forge.requests[0]!.path).toMatch(/^\/projects\/group%2Fsub%2Fapp\/merge_requests\?state=opened/);
    expect(forge.requests[0]!.headers["private-token"]).toBe("glpat");
    expect(await client.canWrite({ login: "root" })).toBe(true);
  });

  it("maps a failure to GitLab's `failed` state", async () => {
    forge.routes.set(`POST ${project}/statuses/${SHA1}`, () => ({}));
    await gitlab().reportStatus(SHA1, {
      state: "failure",
      url: "u",
      description: "d",
      context: "slipway/ci",
    });
    expect(forge.requests[0]!.body).toEqual({
      state: "failed",
      target_url: "u",
      description: "d",
      name: "slipway/ci",
    });
  });
});
