/**
 * Pull requests, comments and writers of one repository, as GitHub, Gitea and GitLab show them: the REST
 * answers (served on a FakeForge) and the webhook deliveries, in the shapes each forge documents, so one
 * table-driven test covers the three.
 */
import { signBody } from "../src/triggers/webhooks.js";
import type { FakeForge, ForgeFailure } from "./forge.js";

export type DialectKind = "github" | "gitea" | "forgejo" | "gitlab";

/** A pull request (GitLab: merge request) as the test sets it up; a fork's head lives in the author's fork. */
export interface FakePull {
  number: number;
  sha: string;
  /** The target branch. */
  base: string;
  /** The head branch, in the fork for a fork's pull request. */
  head: string;
  fork: boolean;
  author: string;
}

/** A comment (GitLab: note) on a pull request. */
export interface FakeComment {
  id: number;
  number: number;
  body: string;
  author: string;
  /** When it was written (epoch ms). */
  at: number;
}

/** What the forge knows of the repository; the test changes it and the routes answer from it. */
export interface FakeRepo {
  /** The repository's path as its source's URL names it (`owner/name`, or longer). */
  path: string;
  pulls: FakePull[];
  comments: FakeComment[];
  /** Logins with write access (GitHub: collaborators; Gitea: write permission; GitLab: Developer). */
  writers: Set<string>;
  /** Every login the forge knows (writers and others). */
  people: string[];
}

/** A webhook delivery as the forge sends it, before it is signed. */
export interface Delivery {
  headers: Record<string, string>;
  body: string;
}

export interface ForgeDialect {
  kind: DialectKind;
  /** The ref the forge keeps a pull request's head under in the base repository (a fork's too). */
  pullRef(number: number): string;
  /** Serves `repo` on `forge` as this forge's REST API does. */
  serve(forge: FakeForge, repo: FakeRepo): void;
  pullRequestHook(repo: FakeRepo, pull: FakePull, action: "opened" | "synchronize", id: string): Delivery;
  commentHook(repo: FakeRepo, comment: FakeComment, id: string): Delivery;
  /** The header that proves the sender knows `secret`: an HMAC of the body, or GitLab's token. */
  sign(body: string, secret: string): Record<string, string>;
  /** The forge's answer when a client is over its rate limit, asking it to come back in 2 s. */
  rateLimited(): ForgeFailure;
}

const FORK_OWNER = "mallory";
/** The pull request numbers the routes answer for one by one (a route is one path). */
const NUMBERS = [1, 2, 3, 4, 5, 6, 7, 8, 9];
const iso = (at: number) => new Date(at).toISOString();
const pullOf = (repo: FakeRepo, number: number) => repo.pulls.find((p) => p.number === number);

/** GitHub's owner/name of the head repository and whether it is a fork. */
function headRepo(repo: FakeRepo, pull: FakePull) {
  const name = repo.path.split("/").at(-1)!;
  const fullName = pull.fork ? `${FORK_OWNER}/${name}` : repo.path;
  return { full_name: fullName, clone_url: `https://forge.example/${fullName}.git`, fork: pull.fork };
}

const github: ForgeDialect = {
  kind: "github",
  pullRef: (number) => `refs/pull/${number}/head`,
  serve(forge, repo) {
    const association = (login: string) => (repo.writers.has(login) ? "COLLABORATOR" : "NONE");
    const pull = (p: FakePull) => ({
      number: p.number,
      state: "open",
      user: { login: p.author },
      author_association: association(p.author),
      head: { sha: p.sha, ref: p.head, repo: headRepo(repo, p) },
      base: { ref: p.base, repo: { full_name: repo.path } },
    });
    const root = `/repos/${repo.path}`;
    forge.routes.set(`GET ${root}/pulls`, () => repo.pulls.map(pull));
    for (const p of NUMBERS)
      forge.routes.set(`GET ${root}/pulls/${p}`, () => {
        const found = pullOf(repo, p);
        return found && pull(found);
      });
    forge.routes.set(`GET ${root}/issues/comments`, (_request, query) =>
      repo.comments
        .filter((c) => c.at >= Date.parse(query.get("since") ?? "1970-01-01T00:00:00Z"))
        .map((c) => ({
          id: c.id,
          body: c.body,
          user: { login: c.author },
          author_association: association(c.author),
          issue_url: `https://api.forge.example${root}/issues/${c.number}`,
          created_at: iso(c.at),
        })),
    );
    // Not a collaborator: 404, as GitHub answers.
    for (const login of repo.people)
      forge.routes.set(`GET ${root}/collaborators/${login}/permission`, () =>
        repo.writers.has(login) ? { permission: "write", user: { login } } : undefined,
      );
  },
  pullRequestHook(repo, p, action, id) {
    const body = {
      action,
      number: p.number,
      pull_request: {
        number: p.number,
        state: "open",
        user: { login: p.author },
        author_association: repo.writers.has(p.author) ? "COLLABORATOR" : "NONE",
        head: { sha: p.sha, ref: p.head, repo: headRepo(repo, p) },
        base: { ref: p.base, repo: { full_name: repo.path } },
      },
      repository: { full_name: repo.path },
      sender: { login: p.author },
    };
    return {
      headers: { "x-github-event": "pull_request", "x-github-delivery": id },
      body: JSON.stringify(body),
    };
  },
  commentHook(repo, c, id) {
    // An issue comment carries no head commit: Slipway asks the API for the pull request.
    const body = {
      action: "created",
      issue: {
        number: c.number,
        pull_request: { url: `https://api.forge.example/repos/${repo.path}/pulls/${c.number}` },
      },
      comment: {
        id: c.id,
        body: c.body,
        user: { login: c.author },
        author_association: repo.writers.has(c.author) ? "COLLABORATOR" : "NONE",
        created_at: iso(c.at),
      },
      repository: { full_name: repo.path },
      sender: { login: c.author },
    };
    return {
      headers: { "x-github-event": "issue_comment", "x-github-delivery": id },
      body: JSON.stringify(body),
    };
  },
  sign: (body, secret) => ({ "x-hub-signature-256": signBody("github", secret, body) }),
  rateLimited: () => ({
    status: 429,
    headers: {
      "retry-after": "2",
      "x-ratelimit-limit": "5000",
      "x-ratelimit-remaining": "0",
      "x-ratelimit-reset": String(Math.ceil(Date.now() / 1_000) + 2),
    },
  }),
};

/** Gitea's pull request (Forgejo's is the same). */
function giteaPull(repo: FakeRepo, p: FakePull) {
  const name = repo.path.split("/").at(-1)!;
  const head = p.fork
    ? {
        id: 99,
        full_name: `${FORK_OWNER}/${name}`,
        clone_url: `https://forge.example/${FORK_OWNER}/${name}.git`,
      }
    : { id: 1, full_name: repo.path, clone_url: `https://forge.example/${repo.path}.git` };
  return {
    id: 1000 + p.number,
    number: p.number,
    state: "open",
    user: { login: p.author },
    head: { ref: p.head, sha: p.sha, repo: head },
    base: { ref: p.base, repo: { id: 1, full_name: repo.path } },
  };
}

const gitea: ForgeDialect = {
  kind: "gitea",
  pullRef: (number) => `refs/pull/${number}/head`,
  serve(forge, repo) {
    const root = `/repos/${repo.path}`;
    forge.routes.set(`GET ${root}/pulls`, () => repo.pulls.map((p) => giteaPull(repo, p)));
    for (const p of NUMBERS)
      forge.routes.set(`GET ${root}/pulls/${p}`, () => {
        const found = pullOf(repo, p);
        return found && giteaPull(repo, found);
      });
    forge.routes.set(`GET ${root}/issues/comments`, (_request, query) =>
      repo.comments
        .filter((c) => c.at >= Date.parse(query.get("since") ?? "1970-01-01T00:00:00Z"))
        .map((c) => ({
          id: c.id,
          body: c.body,
          user: { login: c.author },
          pull_request_url: `https://forge.example/${repo.path}/pulls/${c.number}`,
          issue_url: "",
          created_at: iso(c.at),
        })),
    );
    // Anyone may read a public repository: Gitea answers `read` for them.
    for (const login of repo.people)
      forge.routes.set(`GET ${root}/collaborators/${login}/permission`, () => ({
        permission: repo.writers.has(login) ? "write" : "read",
      }));
  },
  pullRequestHook(repo, p, action, id) {
    const body = {
      action: action === "synchronize" ? "synchronized" : action,
      number: p.number,
      pull_request: giteaPull(repo, p),
      repository: { id: 1, full_name: repo.path },
      sender: { login: p.author },
    };
    return {
      headers: { "x-gitea-event": "pull_request", "x-gitea-delivery": id },
      body: JSON.stringify(body),
    };
  },
  commentHook(repo, c, id) {
    const pull = pullOf(repo, c.number);
    const body = {
      action: "created",
      issue: { number: c.number, pull_request: { merged: false } },
      ...(pull && { pull_request: giteaPull(repo, pull) }),
      comment: { id: c.id, body: c.body, user: { login: c.author }, created_at: iso(c.at) },
      repository: { id: 1, full_name: repo.path },
      sender: { login: c.author },
      is_pull: true,
    };
    return {
      headers: { "x-gitea-event": "issue_comment", "x-gitea-delivery": id },
      body: JSON.stringify(body),
    };
  },
  sign: (body, secret) => ({ "x-gitea-signature": signBody("gitea", secret, body) }),
  rateLimited: () => ({ status: 429, headers: { "retry-after": "2" } }),
};

const PROJECT_ID = 5;
const FORK_PROJECT_ID = 77;

/** The fields GitLab's merge request API and its hooks share. */
function mergeRequest(p: FakePull) {
  return {
    iid: p.number,
    state: "opened",
    sha: p.sha,
    source_branch: p.head,
    target_branch: p.base,
    source_project_id: p.fork ? FORK_PROJECT_ID : PROJECT_ID,
    target_project_id: PROJECT_ID,
    author: { username: p.author },
  };
}

const userId = (repo: FakeRepo, login: string) => 100 + repo.people.indexOf(login);

const gitlab: ForgeDialect = {
  kind: "gitlab",
  pullRef: (number) => `refs/merge-requests/${number}/head`,
  serve(forge, repo) {
    const root = `/projects/${encodeURIComponent(repo.path)}`;
    forge.routes.set(`GET ${root}/merge_requests`, () => repo.pulls.map(mergeRequest));
    for (const p of NUMBERS) {
      forge.routes.set(`GET ${root}/merge_requests/${p}`, () => {
        const found = pullOf(repo, p);
        return found && mergeRequest(found);
      });
      forge.routes.set(`GET ${root}/merge_requests/${p}/notes`, () =>
        repo.comments
          .filter((c) => c.number === p)
          .map((c) => ({
            id: c.id,
            body: c.body,
            system: false,
            author: { username: c.author },
            created_at: iso(c.at),
            noteable_type: "MergeRequest",
          })),
      );
    }
    forge.routes.set(`GET /projects/${FORK_PROJECT_ID}`, () => ({
      id: FORK_PROJECT_ID,
      http_url_to_repo: `https://forge.example/${FORK_OWNER}/app.git`,
    }));
    forge.routes.set("GET /users", (_request, query) => {
      const login = query.get("username") ?? "";
      return repo.people.includes(login) ? [{ id: userId(repo, login), username: login }] : [];
    });
    // Not a member: 404, as GitLab answers.
    for (const login of repo.people)
      forge.routes.set(`GET ${root}/members/all/${userId(repo, login)}`, () =>
        repo.writers.has(login) ? { id: userId(repo, login), username: login, access_level: 30 } : undefined,
      );
  },
  pullRequestHook(_repo, p, action, id) {
    const mr = mergeRequest(p);
    const body = {
      object_kind: "merge_request",
      event_type: "merge_request",
      user: { username: p.author },
      project: { id: PROJECT_ID },
      object_attributes: {
        ...mr,
        action: action === "opened" ? "open" : "update",
        // An update that moved commits names the head before it.
        ...(action === "synchronize" && { oldrev: "f".repeat(40) }),
        last_commit: { id: p.sha },
        source: { git_http_url: `https://forge.example/${p.fork ? FORK_OWNER : "acme"}/app.git` },
      },
    };
    return {
      headers: { "x-gitlab-event": "Merge Request Hook", "x-gitlab-event-uuid": id },
      body: JSON.stringify(body),
    };
  },
  commentHook(repo, c, id) {
    const pull = pullOf(repo, c.number);
    const body = {
      object_kind: "note",
      event_type: "note",
      user: { username: c.author },
      project: { id: PROJECT_ID },
      object_attributes: { id: c.id, note: c.body, noteable_type: "MergeRequest", created_at: iso(c.at) },
      ...(pull && {
        merge_request: {
          ...mergeRequest(pull),
          last_commit: { id: pull.sha },
          source: { git_http_url: `https://forge.example/${pull.fork ? FORK_OWNER : "acme"}/app.git` },
        },
      }),
    };
    return {
      headers: { "x-gitlab-event": "Note Hook", "x-gitlab-event-uuid": id },
      body: JSON.stringify(body),
    };
  },
  sign: (_body, secret) => ({ "x-gitlab-token": secret }),
  rateLimited: () => ({
    status: 429,
    headers: {
      "retry-after": "2",
      "ratelimit-limit": "600",
      "ratelimit-remaining": "0",
      "ratelimit-reset": String(Math.ceil(Date.now() / 1_000) + 2),
    },
  }),
};

export const DIALECTS: readonly ForgeDialect[] = [github, gitea, gitlab];

/** Forgejo answers as Gitea does, and names its delivery headers after itself. */
export const FORGEJO: ForgeDialect = {
  ...gitea,
  kind: "forgejo",
  pullRequestHook: (repo, pull, action, id) => renamed(gitea.pullRequestHook(repo, pull, action, id)),
  commentHook: (repo, comment, id) => renamed(gitea.commentHook(repo, comment, id)),
  sign: (body, secret) => ({ "x-forgejo-signature": signBody("forgejo", secret, body) }),
};

function renamed(delivery: Delivery): Delivery {
  const headers = Object.fromEntries(
    Object.entries(delivery.headers).map(([name, value]) => [name.replace(/^x-gitea-/, "x-forgejo-"), value]),
  );
  return { ...delivery, headers };
}
