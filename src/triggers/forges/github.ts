/** GitHub's REST API (github.com, or GitHub Enterprise Server at `<host>/api/v3`). */
import type { Person } from "../event.js";
import {
  type CommentInfo,
  type Forge,
  type ForgeOptions,
  type PullRequestInfo,
  type RunStatusReport,
  repositoryOf,
} from "./forge.js";
import { ForgeHttp, unlessRefused } from "./http.js";

interface GithubPull {
  number: number;
  user: { login: string } | null;
  author_association?: string;
  head: { sha: string; ref: string; repo: { full_name: string; clone_url: string; fork: boolean } | null };
  base: { ref: string; repo: { full_name: string } };
}

interface GithubComment {
  id: number;
  body: string;
  user: { login: string } | null;
  author_association?: string;
  issue_url: string;
  created_at: string;
}

/** `author_association` values that mean the author can push to the repository. */
const WRITERS = new Set(["OWNER", "MEMBER", "COLLABORATOR"]);

export class GithubForge implements Forge {
  readonly kind = "github" as const;
  readonly #http: ForgeHttp;
  readonly #repo: string;

  constructor(options: ForgeOptions) {
    const { path, api } = repositoryOf("github", options.url);
    this.#repo = `/repos/${path}`;
    this.#http = new ForgeHttp({
      ...options.http,
      root: options.api ?? api,
      auth: {
        ...(options.token && { authorization: `Bearer ${options.token}` }),
        "x-github-api-version": "2022-11-28",
      },
    });
  }

  get http(): ForgeHttp {
    return this.#http;
  }

  async openPullRequests(): Promise<PullRequestInfo[]> {
    const pulls = await this.#http.get<GithubPull[]>(
      `${this.#repo}/pulls?state=open&sort=updated&direction=desc&per_page=100`,
    );
    return (pulls ?? []).map(pullInfo);
  }

  async pullRequest(number: number): Promise<PullRequestInfo | undefined> {
    const pull = await this.#http.get<GithubPull>(`${this.#repo}/pulls/${number}`);
    return pull && pullInfo(pull);
  }

  async commentsSince(since: number, open: readonly PullRequestInfo[]): Promise<CommentInfo[]> {
    const numbers = new Set(open.map((p) => p.number));
    // One call for the whole repository; comments on issues that are not open pull requests drop out.
    const comments = await this.#http.get<GithubComment[]>(
      `${this.#repo}/issues/comments?since=${new Date(since).toISOString()}&sort=created&direction=asc&per_page=100`,
    );
    return (comments ?? [])
      .map((c) => ({
        id: String(c.id),
        body: c.body,
        author: person(c.user?.login, c.author_association),
        number: Number(c.issue_url.slice(c.issue_url.lastIndexOf("/") + 1)),
        at: Date.parse(c.created_at),
      }))
      .filter((c) => numbers.has(c.number) && c.at > since);
  }

  /**
   * The event's `author_association` first (OWNER, MEMBER, COLLABORATOR); else the collaborator
   * permission API, which a token without push access may not be allowed to read (then: unknown).
   */
  async canWrite(author: Person): Promise<boolean | undefined> {
    if (author.association !== undefined && WRITERS.has(author.association)) return true;
    const answer = await unlessRefused(() =>
      this.#http.get<{ permission: string }>(
        `${this.#repo}/collaborators/${encodeURIComponent(author.login)}/permission`,
      ),
    );
    // Not a collaborator, or not for this token to see: the association alone decides.
    if (answer === undefined) return author.association === undefined ? undefined : false;
    return ["admin", "maintain", "write"].includes(answer.permission);
  }

  async reportStatus(sha: string, report: RunStatusReport): Promise<void> {
    await this.#http.post(`${this.#repo}/statuses/${sha}`, {
      state: report.state,
      target_url: report.url,
      description: report.description.slice(0, 140),
      context: report.context,
    });
  }

  async reply(number: number, body: string): Promise<void> {
    await this.#http.post(`${this.#repo}/issues/${number}/comments`, { body });
  }
}

function pullInfo(p: GithubPull): PullRequestInfo {
  return {
    number: p.number,
    sha: p.head.sha,
    base: p.base.ref,
    head: p.head.ref,
    // A deleted fork has no repo: treat it as a fork, the cautious reading.
    fork: p.head.repo === null || p.head.repo.full_name !== p.base.repo.full_name,
    headUrl: p.head.repo?.clone_url ?? "",
    author: person(p.user?.login, p.author_association),
  };
}

function person(login: string | undefined, association: string | undefined): Person {
  return { login: login ?? "", ...(association !== undefined && { association }) };
}
