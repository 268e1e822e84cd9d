/** A webhook delivery: 401 and nothing changed unless verified; a replay starts nothing; the work happens after the answer. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { TriggerEvent } from "../../../src/triggers/event.js";
import type { PullRequestInfo } from "../../../src/triggers/forges/forge.js";
import { type HookDeps, type HookSource, receiveHook } from "../../../src/triggers/receiver.js";
import { signBody } from "../../../src/triggers/webhooks.js";
import { eventually } from "../../wait.js";

const SECRET = "s3cret";
const fixture = (name: string) => readFileSync(new URL(`fixtures/${name}.json`, import.meta.url), "utf8");

function setup(source: Partial<HookSource> = {}) {
  const deliveries = new Set<string>();
  const delivered: TriggerEvent[] = [];
  const prefetched: TriggerEvent[] = [];
  const lateErrors: unknown[] = [];
  const head: PullRequestInfo = {
    number: 2,
    sha: "e".repeat(40),
    base: "main",
    head: "changes",
    fork: true,
    headUrl: "https://github.com/octo-fork-owner/Hello-World.git",
    author: { login: "octo-fork-owner" },
  };
  const deps: HookDeps = {
    source: (name) =>
      name === "app"
        ? {
            kind: "github",
            secret: SECRET,
            forge: { pullRequest: async (n) => (n === 2 ? head : undefined) },
            ...source,
          }
        : undefined,
    firstDelivery: async (s, d) => {
      const key = `${s}/${d}`;
      if (deliveries.has(key)) return false;
      deliveries.add(key);
      return true;
    },
    prefetch: (events) => {
      prefetched.push(...events);
    },
    deliver: async (events) => {
      delivered.push(...events);
    },
    onLateError: (error) => lateErrors.push(error),
    now: () => 42,
  };
  return { deps, deliveries, delivered, prefetched, lateErrors };
}

function github(event: string, body: string, delivery = "d-1", signature = signBody("github", SECRET, body)) {
  const headers: Record<string, string> = {
    "x-github-event": event,
    "x-github-delivery": delivery,
    "x-hub-signature-256": signature,
  };
  return [(name: string) => headers[name], Buffer.from(body)] as const;
}

describe("receiving a webhook", () => {
  it("verifies before anything else: a bad or missing signature gets 401 and records nothing", async () => {
    const { deps, deliveries, delivered, prefetched } = setup();
    const body = fixture("github-push");
    const forged = github("push", body, "d-1", signBody("github", "guess", body));
    expect(await receiveHook(deps, "app", ...forged)).toEqual({
      status: 401,
      body: { message: "X-Hub-Signature-256 does not match the body" },
    });
    const [header] = github("push", body);
    const unsigned = (name: string) => (name === "x-hub-signature-256" ? undefined : header(name));
    expect((await receiveHook(deps, "app", unsigned, Buffer.from(body))).status).toBe(401);
    expect(deliveries.size).toBe(0);
    expect(delivered).toEqual([]);
    expect(prefetched).toEqual([]);
  });

  it("a source without a secret takes no webhooks; an unknown source is 404", async () => {
    const { deps } = setup({ secret: undefined });
    expect((await receiveHook(deps, "app", ...github("push", fixture("github-push")))).status).toBe(401);
    expect((await receiveHook(deps, "nope", ...github("push", fixture("github-push")))).status).toBe(404);
  });

  it("records the delivery, hands its events on, and starts nothing for a replay", async () => {
    const { deps, delivered, prefetched } = setup();
    const push = github("push", fixture("github-push"));
    // The mirror's fetch may start before the delivery is recorded.
    deps.firstDelivery = async () => {
      expect(prefetched).toMatchObject([{ kind: "push", branch: "main" }]);
      return true;
    };
    expect(await receiveHook(deps, "app", ...push)).toEqual({
      status: 202,
      body: { message: "accepted 1 event", events: 1 },
    });
    expect(delivered).toMatchObject([
      { kind: "push", branch: "main", arrival: { via: "webhook", delivery: "d-1" } },
    ]);
    deps.firstDelivery = async () => false;
    expect(await receiveHook(deps, "app", ...push)).toEqual({
      status: 200,
      body: { message: "delivery d-1 was received before", replayed: true },
    });
    expect(delivered).toHaveLength(1);
  });

  it("answers what it ignores with why; a signed body that is not JSON is a 400", async () => {
    const { deps } = setup();
    expect(await receiveHook(deps, "app", ...github("ping", '{"zen":"Design for failure."}'))).toEqual({
      status: 200,
      body: { message: "nothing to do", ignored: "ping events start nothing" },
    });
    expect((await receiveHook(deps, "app", ...github("push", "not json", "d-2"))).status).toBe(400);
    const [header, body] = github("push", fixture("github-push"));
    const noId = (name: string) => (name === "x-github-delivery" ? undefined : header(name));
    expect((await receiveHook(deps, "app", noId, body)).status).toBe(400);
  });

  it("a GitHub comment: answered at once, its pull request's head asked for after", async () => {
    const { deps, delivered, prefetched } = setup();
    const answer = await receiveHook(
      deps,
      "app",
      ...github("issue_comment", fixture("github-issue-comment")),
    );
    expect(answer.status).toBe(202);
    await eventually(() => delivered.length === 1, "the comment event after the lookup");
    expect(prefetched).toEqual(delivered);
    expect(delivered[0]).toMatchObject({
      kind: "comment",
      id: "492700400",
      body: "!testme --extra",
      author: { login: "Codertocat", association: "OWNER" },
      pullRequest: { number: 2, sha: "e".repeat(40), fork: true },
    });
  });

  it("a failed lookup is reported, not thrown into the void", async () => {
    const { deps, lateErrors, delivered } = setup({
      forge: {
        pullRequest: async () => {
          throw new Error("forge down");
        },
      },
    });
    await receiveHook(deps, "app", ...github("issue_comment", fixture("github-issue-comment")));
    await eventually(() => lateErrors.length === 1, "the late error");
    expect(delivered).toEqual([]);
  });
});
