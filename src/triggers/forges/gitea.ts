/** Gitea's and Forgejo's REST API (`<host>/api/v1`), which share their shape. */
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

interface GiteaPull {
  number: number;
  user: { login: string } | null;
  head: { sha: string; ref: string; repo: { id: number; full_name: string; clone_url: string } | null };
  base: { ref: string; repo: { id: number; full_name: string } };
}

interface GiteaComment {
  id: number;
  body: string;
  user: { login: string } | null;
  issue_url?: string;
  pull_request_url?: string;
  created_at: string;
}

export class GiteaForge implements Forge {
  readonly #http: ForgeHttp;
  readonly #repo: string;

  constructor(
    readonly kind: "gitea" | "forgejo",
    options: ForgeOptions,
  ) {
    const { path, api } = repositoryOf(kind, options.url);
    this.#repo = `/repos/${path}`;
    this.#http = new ForgeHttp({
      ...options.http,
      root: options.api ?? api,
      auth: options.token ? { authorization: `token ${options.token}` } : {},
    });
  }

  get http(): ForgeHttp {
    return this.#http;
  }

  async openPullRequests(): Promise<PullRequestInfo[]> {
    const pulls = await this.#http.get<GiteaPull[]>(
      `${this.#repo}/pulls?state=open&sort=recentupdate&limit=50`,
    );
    return (pulls ?? []).map(pullInfo);
  }

  async pullRequest(number: number): Promise<PullRequestInfo | undefined> {
    const pull = await this.#http.get<GiteaPull>(`${this.#repo}/pulls/${number}`);
    return pull && pullInfo(pull);
  }

  async commentsSince(since: number, open: readonly PullRequestInfo[]): Promise<CommentInfo[]> {
    const numbers = new Set(open.map((p) => p.number));
    const comments = await this.#http.get<GiteaComment[]>(
      `${this.#repo}/issues/comments?since=${new Date(since).toISOString()}&limit=50`,
    );
    return (comments ?? [])
      .map((c) => {
        const url = c.pull_request_url || c.issue_url || "";
        return {
          id: String(c.id),
          body: c.body,
          author: { login: c.user?.login ?? "" },
          number: Number(url.slice(url.lastIndexOf("/") + 1)),
          at: Date.parse(c.created_at),
        };
      })
      .filter((c) => numbers.has(c.number) && c.at > since)
      .sort((a, b) => a.at - b.at);
  }

  /** The collaborator permission API: `owner`, `admin` or `write` may trigger. */
  async canWrite(author: Person): Promise<boolean | undefined> {
    let found = true;
    const answer = await unlessRefused(async () => {
      const permission = await this.#http.get<{ permission: string }>(
        `${this.#repo}/collaborators/${encodeURIComponent(author.login)}/permission`,
      );
      found = permission !== undefined;
      return permission;
    });
    if (answer === undefined) return found ? undefined : false;
    return ["owner", "admin", "write"].includes(answer.permission);
  }

  async reportStatus(sha: string, report: RunStatusReport): Promise<void> {
    await this.#http.post(`${this.#repo}/statuses/${sha}`, {
      state: report.state,
      target_url: report.url,
      description: report.description,
      context: report.context,
    });
  }

  async reply(number: number, body: string): Promise<void> {
    await this.#http.post(`${this.#repo}/issues/${number}/comments`, { body });
  }
}

function pullInfo(p: GiteaPull): PullRequestInfo {
  return {
    number: p.number,
    sha: p.head.sha,
    base: p.base.ref,
    head: p.head.ref,
    fork: p.head.repo === null || p.head.repo.id !== p.base.repo.id,
    headUrl: p.head.repo?.clone_url ?? "",
    author: { login: p.user?.login ?? "" },
  };
}
