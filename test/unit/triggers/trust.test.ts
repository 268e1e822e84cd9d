/** Who may start what: pushes, pull requests from the repository and from forks, comment commands, approvals. */
import { describe, expect, it } from "vitest";
import type { CommentEvent, PullRequestEvent, TriggerEvent } from "../../../src/triggers/event.js";
import {
  type Approved,
  DEFAULT_APPROVE_COMMAND,
  judge,
  type WriteAccess,
} from "../../../src/triggers/trust.js";

const policy = { allow: ["release-bot"], approveCommand: DEFAULT_APPROVE_COMMAND };
const writers: WriteAccess = async (author) =>
  author.login === "maintainer" ? true : author.login === "ghost" ? undefined : false;
const none: Approved = () => false;
const base = { source: "app", at: 0, arrival: { via: "poll" as const } };
const SHA = "c".repeat(40);

const pr = (fork: boolean, login: string): TriggerEvent & PullRequestEvent => ({
  ...base,
  kind: "pull_request",
  action: "opened",
  number: 5,
  sha: SHA,
  base: "main",
  head: "feature",
  fork,
  headUrl: "https://forge/x/app.git",
  author: { login },
});

const comment = (body: string, login: string, fork: boolean): TriggerEvent & CommentEvent => ({
  ...base,
  kind: "comment",
  id: "1",
  body,
  author: { login },
  pullRequest: { number: 5, sha: SHA, base: "main", head: "feature", fork, headUrl: "" },
});

describe("trust", () => {
  it("starts pushes and pull requests from the repository itself", async () => {
    const push: TriggerEvent = { ...base, kind: "push", ref: "refs/heads/main", branch: "main", sha: SHA };
    expect(await judge(push, policy, writers, none)).toMatchObject({
      verdict: "start",
      untrustedCode: false,
    });
    expect(await judge(pr(false, "anyone"), policy, writers, none)).toMatchObject({
      verdict: "start",
      untrustedCode: false,
    });
  });

  it("holds a stranger's fork pull request for approval of its exact head commit", async () => {
    const judged = await judge(pr(true, "stranger"), policy, writers, none);
    expect(judged).toEqual({
      verdict: "await-approval",
      pullRequest: 5,
      sha: SHA,
      why: `a fork pull request by stranger (no write access): commit ${SHA.slice(0, 12)} waits for a writer's !approve`,
    });
    // Approved for that commit: it starts, still as untrusted code. Another commit is not approved.
    const approved: Approved = (n, sha) => n === 5 && sha === SHA;
    expect(await judge(pr(true, "stranger"), policy, writers, approved)).toMatchObject({
      verdict: "start",
      untrustedCode: true,
    });
    const pushedAgain = { ...pr(true, "stranger"), sha: "d".repeat(40) };
    expect((await judge(pushedAgain, policy, writers, approved)).verdict).toBe("await-approval");
  });

  it("a writer's own fork runs without approval, but as untrusted code", async () => {
    expect(await judge(pr(true, "maintainer"), policy, writers, none)).toMatchObject({
      verdict: "start",
      untrustedCode: true,
    });
    expect(await judge(pr(true, "release-bot"), policy, writers, none)).toMatchObject({ verdict: "start" });
  });

  it("runs a comment command for writers and the allow-list only, and says why not for others", async () => {
    expect(await judge(comment("!testme --extra", "maintainer", false), policy, writers, none)).toMatchObject(
      {
        verdict: "start",
        untrustedCode: false,
      },
    );
    expect(await judge(comment("!testme", "release-bot", false), policy, writers, none)).toMatchObject({
      verdict: "start",
    });
    expect(await judge(comment("!testme", "stranger", false), policy, writers, none)).toEqual({
      verdict: "ignore",
      why: "stranger may not run commands: no write access",
    });
    const unknown = await judge(comment("!testme", "ghost", false), policy, writers, none);
    expect(unknown).toMatchObject({ verdict: "ignore", why: expect.stringMatching(/unknown to this token/) });
  });

  it("a writer's command on a fork still needs the commit approved; !approve pins the head commit", async () => {
    expect((await judge(comment("!testme", "maintainer", true), policy, writers, none)).verdict).toBe(
      "await-approval",
    );
    expect(await judge(comment("!approve", "maintainer", true), policy, writers, none)).toEqual({
      verdict: "approve",
      pullRequest: 5,
      sha: SHA,
      by: "maintainer",
      why: "approved by maintainer",
    });
    expect(await judge(comment("!approve", "stranger", true), policy, writers, none)).toMatchObject({
      verdict: "ignore",
      why: "stranger may not approve: no write access",
    });
    // Found in the same poll as a new head: it may have been about the head before, so it approves nothing.
    const moved = comment("!approve", "maintainer", true);
    moved.pullRequest.moved = true;
    expect(await judge(moved, policy, writers, none)).toMatchObject({
      verdict: "ignore",
      why: expect.stringMatching(/^#5 got a new head \(c{12}\) in the same poll .* approve again$/),
    });
  });
});
