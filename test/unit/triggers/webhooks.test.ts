/** Webhook deliveries: signatures over the raw body, delivery ids, and the forges' documented payloads as events. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { eventKey, type TriggerEvent } from "../../../src/triggers/event.js";
import {
  deliveryId,
  type ForgeKind,
  parseDelivery,
  signBody,
  verifyDelivery,
} from "../../../src/triggers/webhooks.js";

const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}.json`, import.meta.url), "utf8");
const headers =
  (values: Record<string, string>) =>
  (name: string): string | undefined =>
    values[name];
const bytes = (text: string) => Buffer.from(text, "utf8");
const SECRET = "It's a Secret to Everybody";

describe("webhook signatures", () => {
  // The example GitHub documents for validating deliveries: this secret and body give this signature.
  it("accepts GitHub's documented example signature", () => {
    const signature = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const result = verifyDelivery(
      "github",
      SECRET,
      headers({ "x-hub-signature-256": signature }),
      bytes("Hello, World!"),
    );
    expect(result).toEqual({ ok: true });
  });

  it.each(["github", "gitea", "forgejo"] as const)(
    "%s: a signature of another body or secret is refused",
    (kind) => {
      const body = fixture("github-push");
      const name = kind === "github" ? "x-hub-signature-256" : `x-${kind}-signature`;
      const good = signBody(kind, SECRET, body);
      expect(verifyDelivery(kind, SECRET, headers({ [name]: good }), bytes(body))).toEqual({ ok: true });
      // One byte changed in the body, the wrong secret, a missing or malformed header: all refused, with why.
      const tampered = bytes(body.replace("main", "mainx"));
      expect(verifyDelivery(kind, SECRET, headers({ [name]: good }), tampered)).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/does not match the body/),
      });
      const other = signBody(kind, "another secret", body);
      expect(verifyDelivery(kind, SECRET, headers({ [name]: other }), bytes(body)).ok).toBe(false);
      expect(verifyDelivery(kind, SECRET, headers({}), bytes(body))).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/^missing X-/),
      });
      expect(verifyDelivery(kind, SECRET, headers({ [name]: "sha1=abc" }), bytes(body))).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/not an HMAC-SHA256 signature/),
      });
    },
  );

  it("GitHub wants the sha256= prefix; Gitea and Forgejo send bare hex", () => {
    const body = bytes("{}");
    const hex = signBody("gitea", SECRET, body);
    expect(verifyDelivery("github", SECRET, headers({ "x-hub-signature-256": hex }), body).ok).toBe(false);
    expect(verifyDelivery("gitea", SECRET, headers({ "x-gitea-signature": hex }), body).ok).toBe(true);
    // Forgejo also sends Gitea's header; either one verifies.
    expect(verifyDelivery("forgejo", SECRET, headers({ "x-gitea-signature": hex }), body).ok).toBe(true);
  });

  it("GitLab: the shared secret in X-Gitlab-Token, compared whole", () => {
    const body = bytes(fixture("gitlab-note"));
    expect(verifyDelivery("gitlab", SECRET, headers({ "x-gitlab-token": SECRET }), body)).toEqual({
      ok: true,
    });
    for (const sent of ["", SECRET.slice(0, -1), `${SECRET}x`, SECRET.toUpperCase()])
      expect(verifyDelivery("gitlab", SECRET, headers({ "x-gitlab-token": sent }), body).ok).toBe(false);
    expect(verifyDelivery("gitlab", SECRET, headers({}), body)).toEqual({
      ok: false,
      reason: "missing X-Gitlab-Token",
    });
  });

  it("a plain git source takes no webhooks", () => {
    expect(verifyDelivery("git", SECRET, headers({}), bytes("{}")).ok).toBe(false);
  });

  it("names each forge's delivery id", () => {
    const all = {
      "x-github-delivery": "gh-1",
      "x-gitea-delivery": "gt-1",
      "x-forgejo-delivery": "fj-1",
      "x-gitlab-event-uuid": "gl-1",
    };
    const ids = (["github", "gitea", "forgejo", "gitlab", "git"] as ForgeKind[]).map((k) =>
      deliveryId(k, headers(all)),
    );
    expect(ids).toEqual(["gh-1", "gt-1", "fj-1", "gl-1", undefined]);
  });
});

describe("webhook payloads", () => {
  const parse = (kind: ForgeKind, event: Record<string, string>, name: string) =>
    parseDelivery(
      kind,
      "app",
      headers({ ...event, "x-github-delivery": "d-1" }),
      JSON.parse(fixture(name)),
      1_000,
    );

  it("GitHub push: the branch and the new head", () => {
    const { events } = parse("github", { "x-github-event": "push" }, "github-push");
    expect(events).toEqual([
      {
        source: "app",
        at: 1_000,
        arrival: { via: "webhook", delivery: "d-1" },
        kind: "push",
        ref: "refs/heads/main",
        branch: "main",
        sha: "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
        before: "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
      },
    ]);
  });

  it("a deleted branch or a tag: ignored, or a tag push", () => {
    const body = JSON.parse(fixture("github-push"));
    const deleted = parseDelivery(
      "github",
      "app",
      headers({ "x-github-event": "push" }),
      { ...body, deleted: true, after: "0".repeat(40) },
      0,
    );
    expect(deleted.ignored).toBe("refs/heads/main was deleted");
    const tag = parseDelivery(
      "github",
      "app",
      headers({ "x-github-event": "push" }),
      { ...body, ref: "refs/tags/v1" },
      0,
    );
    expect(tag.events[0]).toMatchObject({ kind: "push", tag: "v1", ref: "refs/tags/v1" });
    expect(tag.events[0]).not.toHaveProperty("branch");
  });

  it("GitHub pull request from a fork: head, base, author and that it is a fork", () => {
    const { events } = parse(
      "github",
      { "x-github-event": "pull_request" },
      "github-pull-request-synchronize",
    );
    expect(events[0]).toMatchObject({
      kind: "pull_request",
      action: "synchronize",
      number: 2,
      sha: "34c5c7793cb3b279e22454cb6750c80560547b3a",
      base: "main",
      head: "changes",
      fork: true,
      headUrl: "https://github.com/octo-fork-owner/Hello-World.git",
      author: { login: "octo-fork-owner", association: "CONTRIBUTOR" },
    });
  });

  it("GitHub comment: its pull request's head is looked up (the payload lacks it)", () => {
    const parsed = parse("github", { "x-github-event": "issue_comment" }, "github-issue-comment");
    expect(parsed.events).toEqual([]);
    expect(parsed.lookups).toEqual([
      {
        kind: "comment-lookup",
        id: "492700400",
        body: "!testme --extra",
        author: { login: "Codertocat", association: "OWNER" },
        number: 2,
      },
    ]);
    const onIssue = JSON.parse(fixture("github-issue-comment"));
    delete onIssue.issue.pull_request;
    expect(
      parseDelivery("github", "app", headers({ "x-github-event": "issue_comment" }), onIssue, 0).ignored,
    ).toBe("a comment on an issue, not a pull request");
  });

  it("Gitea: `synchronized` is a synchronize; a comment carries its pull request's head", () => {
    const pr = parse("gitea", { "x-gitea-event": "pull_request" }, "gitea-pull-request-synchronized");
    expect(pr.events[0]).toMatchObject({
      kind: "pull_request",
      action: "synchronize",
      number: 7,
      fork: false,
    });
    // Gitea names the synchronize delivery kind `pull_request_sync` where its event type is asked.
    const sync = parse("gitea", { "x-gitea-event": "pull_request_sync" }, "gitea-pull-request-synchronized");
    expect(sync.events).toEqual(pr.events);
    const comment = parse("gitea", { "x-gitea-event": "issue_comment" }, "gitea-issue-comment");
    expect(comment.events[0]).toMatchObject({
      kind: "comment",
      id: "88",
      body: "!testme",
      author: { login: "alice" },
      pullRequest: { number: 7, sha: "9a3b0f2e7c4d1e5f6a7b8c9d0e1f2a3b4c5d6e7f", base: "main", fork: false },
    });
  });

  it("GitLab: a merge request update that moved commits, and a note on a merge request", () => {
    const mr = parse("gitlab", { "x-gitlab-event": "Merge Request Hook" }, "gitlab-merge-request-update");
    expect(mr.events[0]).toMatchObject({
      kind: "pull_request",
      action: "synchronize",
      number: 1,
      sha: "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
      base: "master",
      head: "ms-viewport",
      fork: true,
      author: { login: "root" },
    });
    const retitled = JSON.parse(fixture("gitlab-merge-request-update"));
    delete retitled.object_attributes.oldrev;
    expect(parseDelivery("gitlab", "app", headers({}), retitled, 0).ignored).toMatch(/update starts nothing/);
    const note = parse("gitlab", { "x-gitlab-event": "Note Hook" }, "gitlab-note");
    expect(note.events[0]).toMatchObject({
      kind: "comment",
      id: "1244",
      body: "!testme --extra",
      author: { login: "root" },
      pullRequest: { number: 1, sha: "562e173be03b8ff2efb05345d12df18815438a4b", fork: false },
    });
  });

  it("what starts nothing says why", () => {
    const ping = parseDelivery("github", "app", headers({ "x-github-event": "ping" }), { zen: "hi" }, 0);
    expect(ping.ignored).toBe("ping events start nothing");
    const closed = JSON.parse(fixture("github-pull-request-synchronize"));
    closed.action = "closed";
    expect(
      parseDelivery("github", "app", headers({ "x-github-event": "pull_request" }), closed, 0).ignored,
    ).toBe("pull request closed starts nothing");
    expect(parseDelivery("github", "app", headers({ "x-github-event": "push" }), [1, 2], 0).ignored).toBe(
      "the body is not a JSON object",
    );
  });

  it("a webhook and a poll of the same change have one key", () => {
    const [hooked] = parse("github", { "x-github-event": "pull_request" }, "github-pull-request-synchronize")
      .events as TriggerEvent[];
    const polled = { ...hooked!, action: "opened" as const, arrival: { via: "poll" as const }, at: 5 };
    expect(eventKey(polled)).toBe(eventKey(hooked!));
    expect(eventKey(hooked!)).toBe("app:pr:2:34c5c7793cb3b279e22454cb6750c80560547b3a");
  });
});
