/**
 * Who may start what. Pushes come from people with write access by definition. A pull request from
 * the repository itself is trusted; one from a fork by anyone else waits until a writer approves its
 * exact head commit (`!approve`), and a new push needs approval again. A comment command runs only
 * for a writer (as the forge reports it to a read-only token) or someone on the allow-list. Code from
 * a fork stays untrusted even once approved: its runs get no credentials and no secrets.
 */
import type { Person, TriggerEvent } from "./event.js";

export interface TrustPolicy {
  /** Logins trusted as writers whatever the forge says. */
  allow: readonly string[];
  /** The comment that approves a fork's head commit. */
  approveCommand: string;
}

export const DEFAULT_APPROVE_COMMAND = "!approve";

/** What the forge can tell about an author; undefined when the token cannot see it. */
export type WriteAccess = (author: Person) => Promise<boolean | undefined>;

/** Head commits approved by a writer, per pull request. */
export type Approved = (pullRequest: number, sha: string) => boolean;

export type Judgement =
  /** Start it. `untrustedCode`: the commit comes from a fork, so no credentials or secrets. */
  | { verdict: "start"; untrustedCode: boolean; why: string }
  | { verdict: "await-approval"; pullRequest: number; sha: string; why: string }
  /** A writer approved this head commit: record it, and start what waits for it. */
  | { verdict: "approve"; pullRequest: number; sha: string; by: string; why: string }
  | { verdict: "ignore"; why: string };

export async function judge(
  event: TriggerEvent,
  policy: TrustPolicy,
  canWrite: WriteAccess,
  approved: Approved,
): Promise<Judgement> {
  switch (event.kind) {
    case "push":
      return { verdict: "start", untrustedCode: false, why: "a push to the repository" };
    case "schedule":
      return { verdict: "start", untrustedCode: false, why: "a schedule of the pipeline" };
    case "pull_request":
      if (!event.fork)
        return { verdict: "start", untrustedCode: false, why: "a pull request from the repository" };
      return fromFork(event.number, event.sha, event.author, policy, canWrite, approved);
    case "comment": {
      const writer = await isWriter(event.author, policy, canWrite);
      const body = event.body.trim();
      if (firstWord(body) === policy.approveCommand) {
        if (!writer.yes)
          return { verdict: "ignore", why: `${event.author.login} may not approve: ${writer.why}` };
        const { number, sha, moved } = event.pullRequest;
        if (moved === true)
          return {
            verdict: "ignore",
            why: `#${number} got a new head (${sha.slice(0, 12)}) in the same poll that found ${event.author.login}'s approval: which commit was approved cannot be told, approve again`,
          };
        return {
          verdict: "approve",
          pullRequest: number,
          sha,
          by: event.author.login,
          why: `approved by ${event.author.login}`,
        };
      }
      if (!writer.yes)
        return { verdict: "ignore", why: `${event.author.login} may not run commands: ${writer.why}` };
      const pr = event.pullRequest;
      if (!pr.fork)
        return { verdict: "start", untrustedCode: false, why: `asked by ${event.author.login}, a writer` };
      // A writer asked, but the code is a fork's: its head commit still needs an approval.
      if (approved(pr.number, pr.sha))
        return {
          verdict: "start",
          untrustedCode: true,
          why: `asked by ${event.author.login}; fork commit approved`,
        };
      return {
        verdict: "await-approval",
        pullRequest: pr.number,
        sha: pr.sha,
        why: `fork commit ${pr.sha.slice(0, 12)} waits for a writer's ${policy.approveCommand}`,
      };
    }
  }
}

async function fromFork(
  number: number,
  sha: string,
  author: Person,
  policy: TrustPolicy,
  canWrite: WriteAccess,
  approved: Approved,
): Promise<Judgement> {
  const writer = await isWriter(author, policy, canWrite);
  if (writer.yes)
    return { verdict: "start", untrustedCode: true, why: `a fork pull request by ${author.login}, a writer` };
  if (approved(number, sha)) return { verdict: "start", untrustedCode: true, why: "fork commit approved" };
  return {
    verdict: "await-approval",
    pullRequest: number,
    sha,
    why: `a fork pull request by ${author.login} (${writer.why}): commit ${sha.slice(0, 12)} waits for a writer's ${policy.approveCommand}`,
  };
}

async function isWriter(
  author: Person,
  policy: TrustPolicy,
  canWrite: WriteAccess,
): Promise<{ yes: boolean; why: string }> {
  if (policy.allow.includes(author.login)) return { yes: true, why: "on the allow-list" };
  const access = await canWrite(author);
  if (access === true) return { yes: true, why: "has write access" };
  const as = author.association === undefined ? "" : `, association ${author.association}`;
  return access === false
    ? { yes: false, why: `no write access${as}` }
    : { yes: false, why: `write access unknown to this token${as}, and not on the allow-list` };
}

function firstWord(text: string): string {
  return text.split(/\s+/, 1)[0] ?? "";
}
