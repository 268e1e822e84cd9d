/**
 * What Slipway asks of a forge's REST API, the same for GitHub, Gitea/Forgejo and GitLab: the open
 * pull requests and their heads, new comments on them, whether an author may write, and (opt-in,
 * with a token that can write) reporting a run's status and answering a comment.
 */
import type { Person } from "../event.js";
import type { ForgeKind } from "../webhooks.js";
import type { ForgeHttpOptions } from "./http.js";

export interface PullRequestInfo {
  number: number;
  /** Head commit. */
  sha: string;
  base: string;
  head: string;
  fork: boolean;
  headUrl: string;
  author: Person;
}

export interface CommentInfo {
  id: string;
  body: string;
  author: Person;
  /** The pull request (GitLab: merge request iid) it is on. */
  number: number;
  /** When it was written (epoch ms). */
  at: number;
}

export type StatusState = "pending" | "success" | "failure" | "error";

export interface RunStatusReport {
  state: StatusState;
  /** Link to the run (none when the server does not know where people reach it). */
  url?: string;
  description: string;
  /** What the status is called on the forge, e.g. `slipway/recipe-ci`. */
  context: string;
}

export interface Forge {
  readonly kind: ForgeKind;
  /** Open pull requests, most recently updated first. */
  openPullRequests(): Promise<PullRequestInfo[]>;
  pullRequest(number: number): Promise<PullRequestInfo | undefined>;
  /** Comments on the given open pull requests written after `since` (epoch ms), oldest first. */
  commentsSince(since: number, open: readonly PullRequestInfo[]): Promise<CommentInfo[]>;
  /** Whether the author has write access, as far as this token can see; undefined when it cannot tell. */
  canWrite(author: Person): Promise<boolean | undefined>;
  reportStatus(sha: string, report: RunStatusReport): Promise<void>;
  reply(number: number, body: string): Promise<void>;
}

export interface ForgeOptions {
  /** The repository's web or clone URL, e.g. `https://github.com/acme/app.git`. */
  url: string;
  /** Read-only by default; write access only where reporting is turned on. */
  token?: string;
  /** The API root when it is not where the URL says (a test server, an unusual install). */
  api?: string;
  http?: Partial<Pick<ForgeHttpOptions, "fetch" | "timeoutMs" | "now">>;
}

/** The repository a URL names, and where its forge's API is by default. */
export function repositoryOf(kind: ForgeKind, url: string): { path: string; api: string } {
  const parsed = new URL(url);
  const path = parsed.pathname.replace(/^\/+|\/+$/g, "").replace(/\.git$/, "");
  if (!/^[^/]+\/.+$/.test(path)) throw new Error(`${url} does not name a repository (owner/name)`);
  const host = `${parsed.protocol}//${parsed.host}`;
  switch (kind) {
    case "github":
      return { path, api: parsed.host === "github.com" ? "https://api.github.com" : `${host}/api/v3` };
    case "gitea":
    case "forgejo":
      return { path, api: `${host}/api/v1` };
    case "gitlab":
      return { path, api: `${host}/api/v4` };
    case "git":
      throw new Error("a plain git source has no REST API: it is polled with git ls-remote");
  }
}
