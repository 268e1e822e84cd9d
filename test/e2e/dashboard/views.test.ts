/**
 * The dashboard's Resources, Triggers and Workers views in a real browser (Debian's headless
 * Chromium driven by playwright-core) against a real `slipway serve`: a lock held by a running job
 * with its holder named and linked, a job's declared memory beside its measured peak, a polled git
 * repository's source with its last poll, an event whose verdict links to the run it started, and
 * the server's executor with a recent heartbeat and what it holds. Screenshots go to test-artifacts/.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ResourcesResponse, RunSummary, WorkersResponse } from "../../../src/runs/schemas.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { onPostgres } from "../../storage-backend.js";
import { eventually, WAIT_MS } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { commit, git } from "../server/git.js";
import { type Server, startServer, TOKEN } from "../server/server.js";

const CHROMIUM = process.env.SLIPWAY_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "..", "..", "..", "test-artifacts");
/** Browser waits: as long as the server's (a busy machine makes a page slow too). */
const UI_MS = 2 * WAIT_MS;
const MiB = 2 ** 20;

/**
 * hog declares 512 MiB and holds about 200 MiB for a moment (its peak is measured while it runs);
 * then deploy holds the lock swarm until the test writes the file `go`.
 */
const SHIP = `name: ship
jobs:
  hog:
    resources: { memory: 512MiB }
    run: node -e 'const b = Buffer.alloc(200 * 2 ** 20, 1); setTimeout(() => console.log(b.length), 800)'
  deploy:
    needs: [hog]
    resources: { locks: [swarm] }
    run: while [ ! -e go ]; do sleep 0.05; done
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

/** Opens the dashboard and signs in with the admin token; resolves once the page shows. */
async function signIn(page: Page, server: Server): Promise<void> {
  await page.goto(server.url);
  await page.fill("#token", TOKEN);
  await page.click("button[type=submit]");
  await page.waitForSelector("nav.top .who", { timeout: UI_MS });
}

/** Follows a link of the top navigation from the keyboard: focused, then Enter. */
async function navigateTo(page: Page, name: string): Promise<void> {
  await page.focus(`nav.top a:text-is("${name}")`);
  await page.keyboard.press("Enter");
  await page.waitForSelector(`main h1:text-is("${name}")`, { timeout: UI_MS });
}

describe.skipIf(!existsSync(CHROMIUM))(
  `the dashboard's resources and triggers views in Chromium (${CHROMIUM})`,
  () => {
    it("shows a lock held by a running job with its holder linked, a job's declared memory beside its measured peak, and the executor holding the run; says plainly that no trigger is configured", async () => {
      const project = new Project();
      project.write("slipway.yml", "locks: { swarm: 1 }\nmax_runs: 10\n");
      const server = await startServer(project, ["--config", "slipway.yml"]);
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const page = await context.newPage();
      try {
        await signIn(page, server);
        const file = project.write("ship.yml", SHIP);
        const { id } = await server.json<{ id: string }>(
          "POST",
          "/runs",
          { file: { name: file, source: SHIP } },
          201,
        );
        await navigateTo(page, "Resources");
        // deploy holds swarm: the pool's row names the run and the job, and links to the run.
        const holder = await page.waitForSelector(
          `tr[data-pool="lock:swarm"] li[data-holder-run="${id}"][data-holder-job="deploy"]`,
          { timeout: UI_MS },
        );
        expect(await holder.textContent()).toMatch(/^run \S+ job deploy \(ship\), since /);
        expect(await holder.$eval("a", (a) => a.getAttribute("href"))).toBe(`/runs/${id}`);
        expect(await page.textContent(`tr[data-pool="lock:swarm"] td:nth-child(3)`)).toBe("0");
        // hog ended before deploy started: its peak is measured, beside the 512 MiB it declares.
        const hog = await page.waitForSelector(
          `tr[data-pipeline="ship"][data-job="hog"] td.samples:not(:text-is("0"))`,
          { timeout: UI_MS },
        );
        expect(hog).toBeTruthy();
        const row = `tr[data-pipeline="ship"][data-job="hog"]`;
        expect(await page.textContent(`${row} td.declared-memory`)).toBe("512 MiB");
        const { jobs } = await server.json<ResourcesResponse>("GET", "/resources");
        const measured = jobs?.find((j) => j.pipeline === "ship" && j.job === "hog")?.measured;
        expect(measured?.max).toBeGreaterThan(200 * MiB);
        expect(measured?.max).toBeLessThan(512 * MiB);
        expect(await page.textContent(`${row} td.peak-max`)).toMatch(/^\d+ MiB$/);
        // Under what it declares: an icon and the word, not a colour alone.
        expect(await page.textContent(`${row} [data-status="within"]`)).toContain("within");
        // deploy is running now, listed with what it declared.
        await page.waitForSelector(`table.running tr[data-run="${id}"][data-job="deploy"]`, {
          timeout: UI_MS,
        });
        await page.screenshot({ path: join(ARTIFACTS, "resources.png"), fullPage: true });
        await page.emulateMedia({ colorScheme: "dark" });
        await page.screenshot({ path: join(ARTIFACTS, "resources-dark.png"), fullPage: true });
        await page.emulateMedia({ colorScheme: "light" });

        // No sources nor schedules: the triggers view says so; the workers view lists the server holding the run.
        await navigateTo(page, "Triggers");
        await page.waitForSelector("[data-empty=triggers]", { timeout: UI_MS });
        expect(await page.textContent("[data-empty=triggers]")).toContain("No triggers are configured");
        await navigateTo(page, "Workers");
        const own = await page.waitForSelector(
          `tr[data-self="true"] li[data-run="${id}"]:has-text("deploy")`,
          { timeout: UI_MS },
        );
        expect(await own.$eval("a", (a) => a.getAttribute("href"))).toBe(`/runs/${id}`);
        expect(await page.textContent(`tr[data-self="true"] [data-status]`)).toContain("alive");
        // Its room left: on PostgreSQL it keeps to `max_runs:` (one of ten held); nothing limits a
        // server on SQLite.
        expect(await page.textContent(`tr[data-self="true"] td.free`)).toBe(
          onPostgres ? "9 of 10" : "unlimited",
        );

        // The holder's link opens the run; once it ends, the lock is free and nobody holds it.
        await navigateTo(page, "Resources");
        await page.click(`tr[data-pool="lock:swarm"] li[data-holder-run="${id}"] a`);
        await page.waitForSelector(`main.run[data-run="${id}"]`, { timeout: UI_MS });
        project.write("go", "");
        await server.status(id, "completed");
        await navigateTo(page, "Resources");
        await page.waitForSelector(`tr[data-pool="lock:swarm"] td.holders:text-is("–")`, { timeout: UI_MS });
      } finally {
        await context.close();
      }
    });

    it("shows a polled git source with its last poll, events with their verdicts linked to the run started, and the server's executor with a recent heartbeat", async () => {
      const project = new Project();
      const repo = join(project.dir, "repo.git");
      const work = join(project.dir, "work");
      mkdirSync(work);
      git(project.dir, "init", "--quiet", "--bare", repo);
      git(work, "init", "--quiet", "-b", "main");
      git(work, "remote", "add", "origin", repo);
      commit(work, "first");
      git(work, "push", "--quiet", "origin", "main");
      project.write(
        "ci.yml",
        `name: ci
on:
  push: { branches: [main] }
jobs:
  build:
    run: echo "built \${{ event.sha }}"
`,
      );
      project.write(
        "slipway.yml",
        `sources:
  app:
    url: ./repo.git
    poll: 200ms
    pipelines: [ci.yml]
`,
      );
      const server = await startServer(project, ["--config", "slipway.yml"]);
      const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const page = await context.newPage();
      try {
        // The first poll notes where the branches are; pushes after it start runs.
        await eventually(
          async () =>
            (await server.json<TriggersResponse>("GET", "/triggers")).sources.some((s) => s.outcome === "ok"),
          "the first poll",
        );
        const pushed = commit(work, "second");
        git(work, "push", "--quiet", "origin", "main");
        const [run] = await eventually(async () => {
          const runs = await server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
          return runs.length > 0 && runs;
        }, "a run of ci for the push");
        git(work, "checkout", "--quiet", "-b", "feature");
        const feature = commit(work, "feature work");
        git(work, "push", "--quiet", "origin", "feature");

        await signIn(page, server);
        await navigateTo(page, "Triggers");
        const source = 'tr[data-source="app"]';
        await page.waitForSelector(`${source} [data-status="ok"]`, { timeout: UI_MS });
        expect(await page.textContent(`${source} td.last-poll`)).not.toBe("not yet");
        // The worker polling it: its executor id (host:pid:random).
        expect(await page.textContent(`${source} td.polled-by`)).toMatch(/:\d+:[0-9a-f]+$/);
        expect(await page.textContent(`${source} th`)).toContain(repo);
        // The push to main started the run, linked; the push to feature was ignored, with why.
        const started = await page.waitForSelector(
          `tr[data-event]:has-text("main@${pushed.slice(0, 12)}") li[data-pipeline="ci"][data-verdict="started"] a`,
          { timeout: UI_MS },
        );
        expect(await started.getAttribute("href")).toBe(`/runs/${run!.id}`);
        const ignored = await page.waitForSelector(
          `tr[data-event]:has-text("feature@${feature.slice(0, 12)}") li[data-pipeline="ci"][data-verdict="ignored"]`,
          { timeout: UI_MS },
        );
        expect(await ignored.textContent()).toContain("branch feature matches no `on.push.branches`");
        expect(await ignored.textContent()).toContain("ignored");

        await page.screenshot({ path: join(ARTIFACTS, "triggers.png"), fullPage: true });
        await page.emulateMedia({ colorScheme: "dark" });
        await page.screenshot({ path: join(ARTIFACTS, "triggers-dark.png"), fullPage: true });
        await page.emulateMedia({ colorScheme: "light" });

        // The server's own worker, alive, its heartbeat within the lease, as the API says.
        await navigateTo(page, "Workers");
        const { workers, leaseMs } = await server.json<WorkersResponse>("GET", "/workers");
        const self = workers.find((e) => e.self)!;
        expect(self).toMatchObject({ alive: true, pid: server.process.child.pid });
        const row = `tr[data-worker="${self.id}"][data-self="true"]`;
        await page.waitForSelector(`${row} [data-status="alive"]`, { timeout: UI_MS });
        const age = Number(await page.getAttribute(`${row} td.heartbeat`, "data-age-ms"));
        expect(age).toBeLessThan(leaseMs);
        expect(await page.textContent(`${row} td.heartbeat`)).toMatch(/ago\)$/);
        await page.screenshot({ path: join(ARTIFACTS, "workers.png"), fullPage: true });

        // The verdict's link opens the run it started.
        await navigateTo(page, "Triggers");
        const link = await page.waitForSelector(
          `tr[data-event]:has-text("main@${pushed.slice(0, 12)}") li[data-pipeline="ci"][data-verdict="started"] a`,
          { timeout: UI_MS },
        );
        await link.focus();
        await page.keyboard.press("Enter");
        await page.waitForSelector(`main.run[data-run="${run!.id}"]`, { timeout: UI_MS });
        await server.status(run!.id, "completed");
      } finally {
        await context.close();
        // Stopped, not killed: polling ends cleanly and no git process outlives the server.
        server.process.child.kill("SIGTERM");
        await server.process.done;
      }
    });
  },
);
