/**
 * The web dashboard in a real browser (Debian's headless Chromium driven by playwright-core) against
 * a real `slipway serve` with real runs: sign-in and roles, a run submitted with the CLI appearing
 * without a reload, its job graph, its log tailing live with colours, cancelling it from the page.
 * Screenshots go to test-artifacts/ (gitignored). One browser for the file; every wait is on a condition.
 */
import { existsSync, mkdirSync } from "node:fs";
import { createServer, type Server as HttpServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tokenHash } from "../../../src/runs/config.js";
import type { AuditPage, RunDetail } from "../../../src/runs/schemas.js";
import { eventually, WAIT_MS } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { type Server, startServer, TOKEN } from "../server/server.js";

const CHROMIUM = process.env.SLIPWAY_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "..", "..", "..", "test-artifacts");
/** Browser waits: as long as the server's (a busy machine makes a page slow too). */
const UI_MS = 2 * WAIT_MS;

const VIEWER = "viewer-token-1";
const CI = "ci-token-2";
const CONFIG = `tokens:
  viewer: { role: read, hash: "${tokenHash(VIEWER)}" }
  ci: { role: operate, hash: "${tokenHash(CI)}" }
locks: { swarm: 1 }
`;

/** A job that waits for a signal holds no process: the run can be left unfinished at the end of a test. */
const GATE = `name: gate
jobs:
  approve:
    wait: { signal: go }
  after:
    needs: [approve]
    run: echo approved
`;

/**
 * build (green output, with an undo) and test, then deploy, holding the lock \`swarm\`, which prints a
 * line, waits for the file \`go\` (the test writes it), prints a red line and waits until it is cancelled.
 */
const SHIP = `name: ship
jobs:
  build:
    run: printf '\\033[32mbuilt ok\\033[0m\\n'
    undo: echo "undoing build"
  test:
    run: echo "tests pass"
  deploy:
    needs: [build, test]
    resources: { locks: [swarm] }
    run: |
      echo "first line"
      while [ ! -e go ]; do sleep 0.05; done
      printf '\\033[31msecond line\\033[0m\\n'
      while [ ! -e never ]; do sleep 0.05; done
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

describe.skipIf(!existsSync(CHROMIUM))(`the dashboard in Chromium (${CHROMIUM})`, () => {
  it("refuses a wrong token and shows nothing; a read token sees no mutating buttons and is refused anyway, as is a cross-site request with the cookie", async () => {
    const project = new Project();
    const server = await serve(project);
    const id = await submit(server, project, "gate.yml", GATE);
    const context = await browser.newContext();
    const page = await context.newPage();
    try {
      await page.goto(server.url);
      await page.fill("#token", "not-a-token");
      await page.click("button[type=submit]");
      await page.waitForSelector("[role=alert]", { timeout: UI_MS });
      expect(await page.textContent("[role=alert]")).toContain("invalid token");
      expect(await page.$("nav.top")).toBeNull();
      expect(await page.$("table")).toBeNull();
      expect(await context.cookies()).toEqual([]);
      // Nothing to read without signing in.
      expect(await page.evaluate(async () => (await fetch("/api/v1/runs")).status)).toBe(401);
      await page.screenshot({ path: join(ARTIFACTS, "sign-in-refused.png") });

      await signIn(page, server, VIEWER);
      const [cookie] = await context.cookies();
      expect(cookie).toMatchObject({ name: "slipway_session", httpOnly: true, sameSite: "Strict" });
      expect(await page.evaluate("document.cookie")).toBe("");
      await page.click(`tr[data-run="${id}"] a`);
      await page.waitForSelector(
        `main.run[data-run="${id}"] g.node[data-job="approve"][data-status="waiting"]`,
        {
          timeout: UI_MS,
        },
      );
      expect(await page.textContent("nav.top .who")).toBe("viewer (read)");
      expect(await page.$$("[data-action]")).toEqual([]);
      // The page hides the buttons; the server refuses the request whatever the page does.
      const refused = await page.evaluate(async (run) => {
        const response = await fetch(`/api/v1/runs/${run}/cancel`, { method: "POST" });
        return { status: response.status, body: await response.text() };
      }, id);
      expect(refused.status).toBe(403);
      expect(refused.body).toContain('token \\"viewer\\" has role read');

      // Signed in as admin, a page of another origin on the same host (same site: the cookie goes
      // along) posts a cancel: refused for its origin, recorded, and the run goes on.
      await page.click("text=Sign out");
      await page.waitForSelector("#token", { timeout: UI_MS });
      await signIn(page, server, TOKEN);
      const attacker = await serveAttacker();
      try {
        const other = await context.newPage();
        await other.goto(attacker.url);
        await other.evaluate(async (target) => {
          await fetch(target, { method: "POST", mode: "no-cors", credentials: "include" });
        }, `${server.url}/api/v1/runs/${id}/cancel`);
        const entry = await eventually(
          async () =>
            (await server.json<AuditPage>("GET", "/audit")).entries.find(
              (e) => e.path === `/runs/${id}/cancel` && e.actor === "default",
            ),
          "the cross-site cancel in the audit log",
        );
        expect(entry.status).toBe(403);
        expect((await server.json<RunDetail>("GET", `/runs/${id}`)).status).toBe("waiting");
      } finally {
        await new Promise((done) => attacker.server.close(done));
      }
    } finally {
      await context.close();
    }
  });

  it("shows a run submitted with the CLI without a reload, its graph, its log live with colours, and cancels it with its undo", async () => {
    const project = new Project();
    const server = await serve(project);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    try {
      await signIn(page, server, CI);
      expect(await page.textContent("nav.top .who")).toBe("ci (operate)");
      project.write("ship.yml", SHIP);
      const submitted = await project.run(["submit", "ship.yml", ...server.flags]);
      expect(submitted.code, submitted.stderr).toBe(0);
      const id = submitted.stdout.trim().split(/\s+/).at(-1)!;
      // The list shows it without a reload.
      await page.waitForSelector(`tr[data-run="${id}"]`, { timeout: UI_MS });
      await page.screenshot({ path: join(ARTIFACTS, "runs.png") });

      await page.click(`tr[data-run="${id}"] a`);
      await page.waitForSelector(`main.run[data-run="${id}"]`, { timeout: UI_MS });
      // Submitted with the admin token of --token, named `default`.
      expect(await page.getAttribute("[data-started-by]", "data-started-by")).toBe("default");
      const jobs = await page.$$eval("g.node", (nodes) => nodes.map((n) => n.getAttribute("data-job")));
      expect(jobs.sort()).toEqual(["build", "deploy", "test"]);
      const edges = await page.$$eval("path.edge", (paths) => paths.map((p) => p.getAttribute("data-edge")));
      expect(edges.sort()).toEqual(["build>deploy", "test>deploy"]);

      // The log, tailing: deploy's first line, then its second once the test lets it print it.
      await page.waitForSelector(".log-body .line:has-text('first line')", { timeout: UI_MS });
      await page.waitForSelector("g.node[data-job='deploy'][data-status='running']", { timeout: UI_MS });
      expect(await page.$(".log-body .line:has-text('second line')")).toBeNull();
      project.write("go", "");
      const red = await page.waitForSelector(".log-body .ansi-red-fg:has-text('second line')", {
        timeout: UI_MS,
      });
      expect(await red.textContent()).toBe("second line");
      expect(await page.textContent(".log-body .ansi-green-fg")).toBe("built ok");
      expect(await page.$$eval(".log-body .log-head", (hs) => hs.map((h) => h.textContent))).toEqual(
        expect.arrayContaining(["build (attempt 1)", "deploy (attempt 1)"]),
      );
      await page.screenshot({ path: join(ARTIFACTS, "run-page.png"), fullPage: true });
      // Light and dark follow the system.
      await page.emulateMedia({ colorScheme: "dark" });
      await page.screenshot({ path: join(ARTIFACTS, "run-page-dark.png"), fullPage: true });
      await page.emulateMedia({ colorScheme: "light" });

      // A second run's deploy waits for swarm: the queue says so, naming the holder, live.
      const second = await submit(server, project, "ship.yml", SHIP);
      await page.click("nav.top a:has-text('Queue')");
      const waits = await page.waitForSelector(
        `tr[data-run="${second}"][data-job="deploy"] td.why:has-text("waits for lock swarm")`,
        { timeout: UI_MS },
      );
      expect(await waits.textContent()).toContain(`held by run ${id}`);
      await page.screenshot({ path: join(ARTIFACTS, "queue.png"), fullPage: true });
      await page.click(`tr[data-run="${second}"][data-job="deploy"] a`);
      await page.waitForSelector(
        `main.run[data-run="${second}"] g.node[data-job="deploy"][data-status="queued"]`,
        {
          timeout: UI_MS,
        },
      );
      // Its waterfall has a bar for the wait on swarm that names the holder, in its label and, on
      // hover, in the line under the waterfall with a link to the holder's run.
      const wait = await page.waitForSelector(
        `main.run[data-run="${second}"] .wf-row[data-job="deploy"] .ph[data-phase="waiting"][data-reason="lock"][data-resource="swarm"]`,
        { timeout: UI_MS },
      );
      const label = await wait.getAttribute("aria-label");
      expect(label).toContain("waiting");
      expect(label).toContain(`lock swarm (held by run ${id}`);
      await wait.hover();
      await page.waitForSelector(`.wf-told a[href="/runs/${id}"]`, { timeout: UI_MS });
      expect(await page.textContent(".wf-told")).toContain("job deploy");
      await page.screenshot({ path: join(ARTIFACTS, "run-waiting.png"), fullPage: true });
      await page.goBack();
      await page.goBack();
      await page.waitForSelector(`main.run[data-run="${id}"] button[data-action='cancel']`, {
        timeout: UI_MS,
      });

      // Cancel, confirmed in a dialog: the run ends cancelled, build is undone, the undo's log shows.
      await page.click("button[data-action='cancel']");
      await page.waitForSelector("dialog.confirm[open]", { timeout: UI_MS });
      await page.click("dialog.confirm button[data-confirm='yes']");
      await server.status(id, "cancelled", "compensated");
      await page.waitForSelector(
        `main.run[data-status="${(await server.status(id, "cancelled", "compensated")).status}"]`,
        {
          timeout: UI_MS,
        },
      );
      await page.waitForSelector("g.node[data-job='build'][data-status='undone']", { timeout: UI_MS });
      await page.waitForSelector(".log-body .line:has-text('undoing build')", { timeout: UI_MS });
      expect(await page.$("button[data-action='cancel']")).toBeNull();
      // The ended run's waterfall marks and lists its critical path, the undo included.
      await page.waitForSelector(".wf-row[data-job='build'] .ph-undoing", { timeout: UI_MS });
      expect(await page.$$(".wf-crit .seg")).not.toEqual([]);
      expect(await page.$$(".wf .ph[data-crit]")).not.toEqual([]);
      // A bar focused from the keyboard says what it was, as a pointed one does.
      await page.focus(".wf-row[data-job='build'] .ph-undoing");
      await page.waitForSelector(".wf-told:has-text('build, attempt 1: undo')", { timeout: UI_MS });
      expect(
        await page.$$eval(".crit-list li", (items) => items.map((li) => li.getAttribute("data-job"))),
      ).toContain("deploy");
      await page.screenshot({ path: join(ARTIFACTS, "run-cancelled.png"), fullPage: true });

      // The second run's deploy took the lock; once it is cancelled too, nothing waits.
      await page.click("nav.top a:has-text('Queue')");
      await page.waitForSelector("main h1:has-text('Queue')", { timeout: UI_MS });
      await server.json("POST", `/runs/${second}/cancel`, {});
      await server.status(second, "cancelled", "compensated");
      await page.waitForSelector("text=Nothing waits.", { timeout: UI_MS });
    } finally {
      await context.close();
    }
  });

  it("searches a log larger than one slice of work: a line near its end is found, coloured", async () => {
    const project = new Project();
    const server = await serve(project);
    // 40,000 lines (1.8 MB with their time prefixes: some 30 slices of indexing, 80 batches of
    // searching), the one looked for 10 lines before the end.
    const id = await submit(
      server,
      project,
      "long.yml",
      `name: long
jobs:
  print:
    run: |
      awk 'BEGIN { for (i = 1; i <= 40000; i++) { if (i == 39990) printf "\\033[35mthe Needle line\\033[0m %d\\n", i; else printf "filler line %d\\n", i } }'
`,
    );
    await server.status(id, "completed");
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    const page = await context.newPage();
    try {
      await signIn(page, server, VIEWER);
      await page.goto(`${server.url}/runs/${id}`);
      await page.waitForSelector(".log-body .line:has-text('filler line 40000')", { timeout: UI_MS });
      await page.fill(".log-bar input[type=search]", "NEEDLE LINE");
      const found = await page.waitForSelector(".log-body .line:has-text('the Needle line 39990')", {
        timeout: UI_MS,
      });
      expect(await found.$eval(".ansi-magenta-fg", (el) => el.textContent)).toBe("the Needle line");
      expect(await page.$$eval(".log-body .line", (rows) => rows.length)).toBe(1);
      expect(await page.textContent(".log-body .log-head")).toContain("print (attempt 1)");
      // Cleared, every line is back.
      await page.fill(".log-bar input[type=search]", "");
      await page.waitForSelector(".log-body .line:has-text('filler line')", { timeout: UI_MS });
    } finally {
      await context.close();
    }
  });
});

/** A page on another port of the same host: another origin, the same site. */
async function serveAttacker(): Promise<{ url: string; server: HttpServer }> {
  const server = createServer((_req, res) => {
    res.setHeader("content-type", "text/html");
    res.end("<!doctype html><title>elsewhere</title><p>another origin</p>");
  });
  await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, server };
}
