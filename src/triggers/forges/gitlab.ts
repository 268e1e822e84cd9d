/** GitLab's REST API (`<host>/api/v4`): merge requests stand for pull requests, notes for comments. */
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

interface GitlabMergeRequest {
  iid: number;
  sha: string;
  source_branch: string;
  target_branch: string;
  source_project_id: number;
  target_project_id: number;
  author: { username: string } | null;
}

interface GitlabNote {
  id: number;
  body: string;
  system: boolean;
  author: { username: string } | null;
  created_at: string;
}

/** Developer (30) and above may push. */
const DEVELOPER = 30;
/** GitLab's commit status states (a reported run has started: GitLab calls that `running`). */
const STATES = { pending: "running", success: "success", failure: "failed", error: "failed" } as const;

export class GitlabForge implements Forge {
  readonly kind = "gitlab" as const;
  readonly #http: ForgeHttp;
  readonly #project: string;
  /** Clone URLs of fork projects by id, asked once. */
  readonly #cloneUrls = new Map<number, string>();

  constructor(options: ForgeOptions) {
    const { path, api } = repositoryOf("gitlab", options.url);
    this.#project = `/projects/${encodeURIComponent(path)}`;
    this.#http = new ForgeHttp({
      ...options.http,
      root: options.api ?? api,
      auth: options.token ? { "private-token": options.token } : {},
    });
  }

  get http(): ForgeHttp {
    return this.#http;
  }

  async openPullRequests(): Promise<PullRequestInfo[]> {
    const mrs = await this.#http.get<GitlabMergeRequest[]>(
      `${this.#project}/merge_requests?state=opened&order_by=updated_at&sort=desc&per_page=100`,
    );
    return Promise.all((mrs ?? []).map((mr) => this.#info(mr)));
  }

  async pullRequest(number: number): Promise<PullRequestInfo | undefined> {
    const mr = await this.#http.get<GitlabMergeRequest>(`${this.#project}/merge_requests/${number}`);
    return mr && this.#info(mr);
  }

  /** GitLab lists notes per merge request only: one request per open merge request. */
  async commentsSince(since: number, open: readonly PullRequestInfo[]): Promise<CommentInfo[]> {
    const found: CommentInfo[] = [];
    for (const mr of open) {
      const notes = await this.#http.get<GitlabNote[]>(
        `${this.#project}/merge_requests/${mr.number}/notes?order_by=created_at&sort=asc&per_page=100`,
      );
      for (const note of notes ?? []) {
        const at = Date.parse(note.created_at);
        if (!note.system && at > since)
          found.push({
            id: String(note.id),
            body: note.body,
            author: { login: note.author?.username ?? "" },
            number: mr.number,
            at,
          });
      }
    }
    return found.sort((a, b) => a.at - b.at);
  }

  /** The member's access level in the project (inherited included): Developer or above may trigger. */
  async canWrite(author: Person): Promise<boolean | undefined> {
    return unlessRefused(async () => {
      const users = await this.#http.get<{ id: number }[]>(
        `/users?username=${encodeURIComponent(author.login)}`,
      );
      const id = users?.[0]?.id;
      if (id === undefined) return false;
      const member = await this.#http.get<{ access_level: number }>(`${this.#project}/members/all/${id}`);
      return member !== undefined && member.access_level >= DEVELOPER;
    });
  }

  async reportStatus(sha: string, report: RunStatusReport): Promise<void> {
    await this.#http.post(`${this.#project}/statuses/${sha}`, {
      state: STATES[report.state],
      target_url: report.url,
      description: report.description,
      name: report.context,
    });
  }

  async reply(number: number, body: string): Promise<void> {
    await this.#http.post(`${this.#project}/merge_requests/${number}/notes`, { body });
  }

  async #info(mr: GitlabMergeRequest): Promise<PullRequestInfo> {
    const fork = mr.source_project_id !== mr.target_project_id;
    return {
      number: mr.iid,
      sha: mr.sha,
      base: mr.target_branch,
      head: mr.source_branch,
      fork,
      headUrl: fork ? await this.#cloneUrl(mr.source_project_id) : "",
      author: { login: mr.author?.username ?? "" },
    };
  }

  async #cloneUrl(projectId: number): Promise<string> {
    let url = this.#cloneUrls.get(projectId);
    if (url === undefined) {
      const project = await this.#http.get<{ http_url_to_repo: string }>(`/projects/${projectId}`);
      url = project?.http_url_to_repo ?? "";
      this.#cloneUrls.set(projectId, url);
    }
    return url;
  }
}
