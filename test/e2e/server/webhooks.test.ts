/**
 * Webhooks into a real `slipway serve` (story 3): a GitHub-kind source whose pushes are polled from a real
 * bare repository and whose API is a local server answering as GitHub does. A signed push delivery starts
 * one run at the pushed commit; a wrong or missing signature gets 401 and starts nothing; a replayed
 * delivery starts nothing; the poll that then sees the same push starts nothing more.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { mkdirSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { RunSummary } from "../../../src/runs/schemas.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { signBody } from "../../../src/triggers/webhooks.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { git } from "./git.js";
import { type Server, startServer } from "./server.js";

const SECRET = "hook-secret";

/** GitHub's API with no pull requests and no comments: what the source's forge client polls. */
let forgeApi: HttpServer | undefined;
afterEach(async () => {
  const api = forgeApi;
  forgeApi = undefined;
  if (api) await new Promise<void>((done) => api.close(() => done()));
});

async function startForgeApi(): Promise<string> {
  const api = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    res.end("[]");
  });
  forgeApi = api;
  await new Promise<void>((done) => api.listen(0, "127.0.0.1", done));
  return `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
}

function deliver(
  server: Server,
  body: string,
  delivery: string,
  signature = signBody("github", SECRET, body),
) {
  return fetch(`${server.url}/hooks/app`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "push",
      "x-github-delivery": delivery,
      ...(signature !== "" && { "x-hub-signature-256": signature }),
    },
    body,
    signal: AbortSignal.timeout(20_000),
  });
}

describe("webhooks into slipway serve", () => {
  it("a signed delivery starts one run; a bad signature or a replay starts none; the poll adds none", async () => {
    const project = new Project();
    const repo = join(project.dir, "repo.git");
    const work = join(project.dir, "work");
    mkdirSync(work);
    git(project.dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    git(work, "commit", "--quiet", "--allow-empty", "-m", "first");
    git(work, "push", "--quiet", "origin", "main");

    project.write(
      "ci.yml",
      `name: ci
run-name: ci-\${{ event.sha }}
on:
  push: { branches: [main] }
jobs:
  build:
    run: test "$(git rev-parse HEAD)" = "\${{ event.sha }}"
`,
    );
    const api = await startForgeApi();
    project.write(
      "slipway.yml",
      `sources:
  app:
    url: ./repo.git
    kind: github
    api: ${api}
    poll: 300ms
    webhook_secret: { env: APP_HOOK_SECRET }
    pipelines: [ci.yml]
`,
    );
    const server = await startServer(project, ["--config", "slipway.yml"], {
      env: { APP_HOOK_SECRET: SECRET },
    });
    const triggers = () => server.json<TriggersResponse>("GET", "/triggers");
    const runs = () => server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
    // The first poll is a baseline: the push below is new to it.
    await eventually(async () => (await triggers()).sources[0]?.outcome === "ok", "the first poll");

    git(work, "commit", "--quiet", "--allow-empty", "-m", "second");
    const sha = git(work, "rev-parse", "HEAD");
    git(work, "push", "--quiet", "origin", "main");
    const body = JSON.stringify({
      ref: "refs/heads/main",
      before: git(work, "rev-parse", "HEAD~1"),
      after: sha,
      deleted: false,
      repository: { full_name: "acme/app", clone_url: repo },
    });

    // Forged and unsigned deliveries: 401, and nothing recorded.
    const forged = await deliver(server, body, "d-forged", signBody("github", "a guess", body));
    expect(forged.status).toBe(401);
    expect(await forged.json()).toEqual({ message: "X-Hub-Signature-256 does not match the body" });
    expect((await deliver(server, body, "d-unsigned", "")).status).toBe(401);

    const accepted = await deliver(server, body, "d-1");
    expect(accepted.status).toBe(202);
    const replay = await deliver(server, body, "d-1");
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ replayed: true });

    const [run] = await eventually(async () => {
      const found = await runs();
      return found.length > 0 && found;
    }, "the run the delivery starts");
    expect(run!.name).toBe(`ci-${sha}`);
    expect((await server.status(run!.id, "completed")).spec?.event).toMatchObject({ kind: "push", sha });

    // Polls after the delivery see the same push: still one run.
    const since = Date.now();
    await eventually(
      async () => ((await triggers()).sources[0]?.lastPollAt ?? 0) > since,
      "a poll after the delivery",
    );
    expect(await runs()).toHaveLength(1);
    const seen = (await triggers()).events.filter((e) => e.summary.includes(sha.slice(0, 12)));
    expect(seen).toHaveLength(1);
  });
});
