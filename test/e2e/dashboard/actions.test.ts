/**
 * The dashboard's run buttons in a real browser against a real `slipway serve`: retry of a held run,
 * resume of a run that needs attention, a signal with a JSON payload; each confirmed in a dialog
 * (Escape backs out and sends nothing), each refused to a `read` token that posts it anyway. And the
 * runs list kept current by the server's change stream, not by polling. Screenshots go to
 * test-artifacts/; every wait is on a condition.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, type BrowserContext, chromium, type Page, type Request } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tokenHash } from "../../../src/runs/config.js";
import type { AuditPage } from "../../../src/runs/schemas.js";
import { WAIT_MS } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer } from "../server/server.js";

const CHROMIUM = process.env.SLIPWAY_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "..", "..", "..", "test-artifacts");
/** Browser waits: as long as the server's (a busy machine makes a page slow too). */
const UI_MS = 2 * WAIT_MS;

const VIEWER = "viewer-token-1";
const CI = "ci-token-2";
const CONFIG = `tokens:
  viewer: { role: read, hash: "${tokenHash(VIEWER)}" }
  ci: { role: operate, hash: "${tokenHash(CI)}" }
`;

/** Held when migrate fails, until the file `fixed` exists (the test writes it) and it is retried. */
const HELD = `name: held
on_failure: hold
jobs:
  migrate:
    run: test -e fixed || { echo "schema lock held" >&2; exit 1; }
  release:
    needs: [migrate]
    run: echo released
`;

/** deploy fails; build's undo fails until the file `fixed` exists: the run needs attention. */
const STUCK = `name: stuck
jobs:
  build:
    run: echo built
    undo: test -e fixed || { echo "registry unreachable" >&2; exit 1; }
  deploy:
    needs: [build]
    run: exit 1
`;

/** approve waits for the signal go; announce echoes its payload's \`by\`. */
const GATE = `name: gate
jobs:
  approve:
    wait: { signal: go }
  announce:
    needs: [approve]
    run: echo "approved by \${{ needs.approve.outputs.by }}"
`;

/** A job that runs until the test writes the file \`go\`. */
const SLOW = `name: slow
jobs:
  work:
    run: while [ ! -e go ]; do sleep 0.05; done; echo worked
`;

/** A run that ends at once. */
const QUICK = `name: quick
jobs:
  noop:
    run: "true"
`;

let browser: Browser;

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  if (!existsSync(CHROMIUM)) return;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
});

async function serve(project: Project): Promise<Server> {
  project.write("slipway.yml", CONFIG);
  return startServer(project, ["--config", "slipway.yml"]);
}

async function submit(server: Server, project: Project, name: string, source: string): Promise<string> {
  const file = project.write(name, source);
  const { id } = await server.json<{ id: string }>("POST", "/runs", { file: { name: file, source } }, 201);
  return id;
}

/** Opens the dashboard and signs in with `token`; resolves once the runs page shows. */
async function signIn(page: Page, server: Server, token: string): Promise<void> {
  await page.goto(server.url);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.top .who", { timeout: UI_MS });
}

/** A page signed in with `token`, showing run `id`; the POSTs it makes are collected. */
async function runPage(
  context: BrowserContext,
  server: Server,
  token: string,
  id: string,
): Promise<{ page: Page; posts: string[] }> {
  const page = await context.newPage();
  const posts: string[] = [];
  page.on("request", (request: Request) => {
    if (request.method() === "POST" && request.url().includes("/api/v1/"))
      posts.push(new URL(request.url()).pathname);
  });
  await signIn(page, server, token);
  await page.goto(`${server.url}/runs/${id}`);
  await page.waitForSelector(`main.run[data-run="${id}"]`, { timeout: UI_MS });
  return { page, posts };
}

/** Opens `action`'s confirmation and backs out with Escape: the dialog closes and nothing is posted. */
async function backOut(page: Page, action: string, posts: string[]): Promise<void> {
  await page.click(`button[data-action='${action}']`, { timeout: UI_MS });
  await page.waitForSelector("dialog.confirm[open]", { timeout: UI_MS });
  await page.keyboard.press("Escape");
  await page.waitForSelector("dialog.confirm", { state: "detached", timeout: UI_MS });
  expect(posts).toEqual([]);
}

/** A `read` token's direct POST from a signed-in page is refused, and recorded as refused. */
async function refusedToViewer(server: Server, path: string, body?: unknown): Promise<void> {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    await signIn(page, server, VIEWER);
    expect(await page.$$("[data-action]")).toEqual([]);
    const answer = await page.evaluate(
      async ([url, payload]) => {
        const response = await fetch(url as string, {
          method: "POST",
          headers: { "content-type": "application/json" },
          ...(payload !== undefined && { body: JSON.stringify(payload) }),
        });
        return { status: response.status, body: await response.text() };
      },
      [`/api/v1${path}`, body] as const,
    );
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('token \\"viewer\\" has role read');
    const audit = await server.json<AuditPage>("GET", "/audit");
    expect(audit.entries.find((e) => e.path === path && e.actor === "viewer")?.status).toBe(403);
  } finally {
    await context.close();
  }
}

describe.skipIf(!existsSync(CHROMIUM))(`the dashboard's run buttons in Chromium (${CHROMIUM})`, () => {
  it("retries a held run from the page once its failing job is fixed, after a confirmation", async () => {
    const project = new Project();
    const server = await serve(project);
    const id = await submit(server, project, "held.yml", HELD);
    await server.status(id, "failed");
    await refusedToViewer(server, `/runs/${id}/retry`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    try {
      const { page, posts } = await runPage(context, server, CI, id);
      await backOut(page, "retry", posts);
      expect((await server.json<{ status: string }>("GET", `/runs/${id}`)).status).toBe("failed");

      project.write("fixed", "");
      await page.click("button[data-action='retry']");
      await page.waitForSelector("dialog.confirm[open]", { timeout: UI_MS });
      await page.click("dialog.confirm button[data-confirm='yes']");
      await page.waitForSelector(`main.run[data-status="completed"]`, { timeout: UI_MS });
      expect(posts).toEqual([`/api/v1/runs/${id}/retry`]);
      await page.waitForSelector("g.node[data-job='release'][data-status='completed']", { timeout: UI_MS });
      await page.screenshot({ path: join(ARTIFACTS, "action-retried.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it("resumes a run that needs attention from the page once its undo can succeed, after a confirmation", async () => {
    const project = new Project();
    const server = await serve(project);
    const id = await submit(server, project, "stuck.yml", STUCK);
    await server.status(id, "needs_attention");
    await refusedToViewer(server, `/runs/${id}/resume`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    try {
      const { page, posts } = await runPage(context, server, CI, id);
      await page.screenshot({ path: join(ARTIFACTS, "action-needs-attention.png"), fullPage: true });
      await backOut(page, "resume", posts);
      expect((await server.json<{ status: string }>("GET", `/runs/${id}`)).status).toBe("needs_attention");

      project.write("fixed", "");
      await page.click("button[data-action='resume']");
      await page.waitForSelector("dialog.confirm[open]", { timeout: UI_MS });
      await page.click("dialog.confirm button[data-confirm='yes']");
      // Undone now: the run failed, and its completed work is rolled back.
      await page.waitForSelector(`main.run[data-status="compensated"]`, { timeout: UI_MS });
      expect(posts).toEqual([`/api/v1/runs/${id}/resume`]);
      await page.waitForSelector("g.node[data-job='build'][data-status='undone']", { timeout: UI_MS });
      await page.screenshot({ path: join(ARTIFACTS, "action-resumed.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });

  it("sends a signal with a JSON payload from the dialog; the next job echoes it", async () => {
    const project = new Project();
    const server = await serve(project);
    const id = await submit(server, project, "gate.yml", GATE);
    await server.status(id, "waiting");
    await refusedToViewer(server, `/runs/${id}/signals/go`, { by: "mallory" });
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    try {
      const { page, posts } = await runPage(context, server, CI, id);
      await backOut(page, "send", posts);

      await page.click("button[data-action='send']");
      await page.waitForSelector("dialog.confirm[open] textarea", { timeout: UI_MS });
      // Not JSON: said in the dialog, nothing sent.
      await page.fill("dialog.confirm textarea", "{by: alice");
      await page.click("dialog.confirm button[data-confirm='yes']");
      await page.waitForSelector("dialog.confirm .error:has-text('not JSON')", { timeout: UI_MS });
      expect(posts).toEqual([]);
      await page.fill("dialog.confirm textarea", '{"by": "alice"}');
      await page.screenshot({ path: join(ARTIFACTS, "action-signal.png"), fullPage: true });
      await page.click("dialog.confirm button[data-confirm='yes']");
      await page.waitForSelector(`main.run[data-status="completed"]`, { timeout: UI_MS });
      expect(posts).toEqual([`/api/v1/runs/${id}/signals/go`]);
      await page.waitForSelector(".log-body .line:has-text('approved by alice')", { timeout: UI_MS });
      let log = "";
      for await (const chunk of (await server.api(`/runs/${id}/logs?job=announce`)).body!)
        log += Buffer.from(chunk).toString();
      expect(log).toContain("approved by alice");
      expect(log).not.toContain("mallory");
    } finally {
      await context.close();
    }
  });

  it("falls back to reading the list every 2 s while the change stream cannot be opened", async () => {
    const project = new Project();
    const server = await serve(project);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      let refused = 0;
      await page.route("**/api/v1/events", (route) => {
        refused++;
        return route.abort();
      });
      let reads = 0;
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/api/v1/runs") reads++;
      });
      await signIn(page, server, CI);
      await page.waitForSelector("text=No runs.", { timeout: UI_MS });
      const id = await submit(server, project, "quick.yml", QUICK);
      await page.waitForSelector(`tr[data-run="${id}"] [data-status="completed"]`, { timeout: UI_MS });
      expect(refused).toBeGreaterThan(0);
      // Read by the timer: more than the first read, without any notice.
      expect(reads).toBeGreaterThan(1);
    } finally {
      await context.close();
    }
  });

  it("updates the runs list from the server's change stream: a run submitted with the CLI appears and ends without polling", async () => {
    const project = new Project();
    const server = await serve(project);
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    try {
      const page = await context.newPage();
      // The page's timers are the test's: time flows, and fast-forwarding it later fires any poll due.
      await page.clock.install();
      const reads: string[] = [];
      page.on("request", (request) => {
        const url = new URL(request.url());
        if (url.pathname === "/api/v1/runs") reads.push(url.search);
      });
      await signIn(page, server, CI);
      await page.waitForSelector("text=No runs.", { timeout: UI_MS });
      // Set on this document: still there at the end, so the page was never reloaded.
      await page.evaluate(() => {
        (globalThis as unknown as { kept: number }).kept = 1;
      });

      project.write("slow.yml", SLOW);
      const submitted = await project.run(["submit", "slow.yml", ...server.flags]);
      expect(submitted.code, submitted.stderr).toBe(0);
      const id = submitted.stdout.trim().split(/\s+/).at(-1)!;
      await page.waitForSelector(`tr[data-run="${id}"] [data-status="running"]`, { timeout: UI_MS });
      project.write("go", "");
      await page.waitForSelector(`tr[data-run="${id}"] [data-status="completed"]`, { timeout: UI_MS });
      await page.screenshot({ path: join(ARTIFACTS, "runs-live.png") });
      expect(await page.evaluate(() => (globalThis as unknown as { kept?: number }).kept)).toBe(1);

      // A poll would be due after 2 s: jump 10 s ahead and see that no read of the runs comes. A
      // request made after the jump marks the end (requests are reported in order).
      const before = reads.length;
      await page.clock.fastForward(10_000);
      const marker = page.waitForRequest((request) => request.url().endsWith("/healthz"), { timeout: UI_MS });
      await page.evaluate(() => fetch("/healthz").then((r) => r.status));
      await marker;
      expect(reads.length).toBe(before);
      // A few reads in all: the first page, the stream opening, the notices (coalesced).
      expect(reads.length).toBeLessThanOrEqual(8);

      // Twenty runs at once: forty notices or more, read at most once per 300 ms, not once each.
      const started = Date.now();
      const burst = reads.length;
      const ids = await Promise.all(
        Array.from({ length: 20 }, (_, i) => submit(server, project, `quick-${i}.yml`, QUICK)),
      );
      await page.waitForFunction(
        (all: string[]) => {
          const { document } = globalThis as unknown as { document: { querySelector(s: string): unknown } };
          return all.every((run) =>
            document.querySelector(`tr[data-run="${run}"] [data-status="completed"]`),
          );
        },
        ids,
        { timeout: UI_MS },
      );
      const took = Date.now() - started;
      expect(reads.length - burst).toBeLessThanOrEqual(Math.ceil(took / 300) + 2);
      expect(reads.length - burst).toBeLessThan(40);
    } finally {
      await context.close();
    }
  });
});
