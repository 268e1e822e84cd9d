/**
 * The waterfall of a run with retries, a matrix and a loop, in a real browser against a real
 * `slipway serve`: each attempt of a retried job on a row of its own, matrix legs under their labels,
 * a loop's steps labelled with their iteration. Screenshots go to test-artifacts/; every wait is on a condition.
 */
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WAIT_MS } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { startServer, TOKEN } from "../server/server.js";

const CHROMIUM = process.env.SLIPWAY_CHROMIUM ?? "/usr/bin/chromium";
const ARTIFACTS = join(import.meta.dirname, "..", "..", "..", "test-artifacts");
const UI_MS = 2 * WAIT_MS;

/** flaky fails its first attempt and passes its second; build has two legs; attempts loops twice. */
const SHAPES = `name: shapes
jobs:
  flaky:
    retries: 2
    run: |
      n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count
      [ "$n" -ge 2 ] || { echo "flake $n" >&2; exit 1; }
  build:
    matrix:
      os: [linux, mac]
    run: echo built \${{ matrix.os }}
  attempts:
    needs: [flaky]
    loop:
      max: 3
      until: \${{ needs.check.outputs.ok == 'yes' }}
    jobs:
      fix:
        run: echo fix \${{ loop.iteration }}
      check:
        needs: [fix]
        run: |
          if [ "\${{ loop.iteration }}" = 2 ]; then echo ok=yes >> "$SLIPWAY_OUTPUT"; else echo ok=no >> "$SLIPWAY_OUTPUT"; fi
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

describe.skipIf(!existsSync(CHROMIUM))(`the waterfall in Chromium (${CHROMIUM})`, () => {
  it("shows a retried job's attempts apart, matrix legs by their values, a loop's steps by iteration", async () => {
    const project = new Project();
    const server = await startServer(project);
    const file = project.write("shapes.yml", SHAPES);
    const { id } = await server.json<{ id: string }>(
      "POST",
      "/runs",
      { file: { name: file, source: SHAPES } },
      201,
    );
    await server.status(id, "completed");
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    try {
      const page = await context.newPage();
      await page.goto(server.url);
      await page.fill("#token", TOKEN);
      await page.click("button[type=submit]");
      await page.waitForSelector("nav.top .who", { timeout: UI_MS });
      await page.goto(`${server.url}/runs/${id}`);
      await page.waitForSelector(`main.run[data-run="${id}"][data-status="completed"] .wf`, {
        timeout: UI_MS,
      });
      const label = (selector: string) => page.textContent(`${selector} .wf-label`);

      // The retried job: a row per attempt, the first failed, the second waited for its retry, then ran.
      const first = ".wf-row[data-job='flaky'][data-attempt='1']";
      const second = ".wf-row[data-job='flaky'][data-attempt='2']";
      expect(await label(first)).toBe("flaky, attempt 1");
      expect(await label(second)).toBe("attempt 2");
      expect(await page.$$(`${first} .ph[data-phase='running'].failed`)).toHaveLength(1);
      expect(await page.$$(`${second} .ph[data-phase='waiting'][data-reason='retry']`)).toHaveLength(1);
      expect(await page.$$(`${second} .ph[data-phase='running']:not(.failed)`)).toHaveLength(1);
      expect(await page.$$(".wf-row[data-job='flaky']:not([data-attempt])")).toEqual([]);

      // Matrix legs, by their values.
      expect(await label(".wf-row[data-job='build.linux']")).toBe("build (linux)");
      expect(await label(".wf-row[data-job='build.mac']")).toBe("build (mac)");

      // The loop's steps, each labelled with its iteration, each iteration opening with a rule.
      const rows = await page.$$eval(".wf-row[data-iteration]", (all) =>
        all.map((r) => ({
          job: r.getAttribute("data-job"),
          label: r.querySelector(".wf-label")?.textContent,
          starts: r.classList.contains("iteration-start"),
        })),
      );
      expect(rows).toEqual([
        { job: "attempts#1.fix", label: "fix (iteration 1)", starts: true },
        { job: "attempts#1.check", label: "check (iteration 1)", starts: false },
        { job: "attempts#2.fix", label: "fix (iteration 2)", starts: true },
        { job: "attempts#2.check", label: "check (iteration 2)", starts: false },
      ]);

      // A bar of the second attempt, focused, says which attempt it was.
      await page.focus(`${second} .ph[data-phase='running']`);
      await page.waitForSelector(".wf-told:has-text('flaky, attempt 2: ran')", { timeout: UI_MS });
      await page.screenshot({ path: join(ARTIFACTS, "waterfall-shapes.png"), fullPage: true });
    } finally {
      await context.close();
    }
  });
});
