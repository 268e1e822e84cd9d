/**
 * The dashboard phase (child): headless Chromium (playwright-core, Debian's /usr/bin/chromium) against
 * a real `slipway serve` holding 10,000 runs and one run whose job printed ~100 MB: the runs list's
 * first rows, the API's list pages, a 100 MB log opened at its end and scrolled, the first page's size.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { type Browser, type BrowserContext, chromium } from "playwright-core";
import {
  childMain,
  type Figures,
  percentile,
  removeDir,
  round,
  sleep,
  sortedCopy,
  tempDir,
} from "./common.js";
import { summarizeProfiles } from "./profile.js";
import {
  type BenchServer,
  pool,
  type RunSummary,
  type SubmitResponse,
  startServer,
  waitForCount,
} from "./server.js";

const CHROMIUM = process.env.SLIPWAY_CHROMIUM ?? "/usr/bin/chromium";
const TOKEN = "bench-token";
const WEB = fileURLToPath(new URL("../dist/web/", import.meta.url));

/** Most runs: parked on a signal (a row in the database, no process). Every run's inputs differ. */
const WAITING = `name: approval
inputs:
  n: { type: number }
jobs:
  approve:
    wait: { signal: go }
`;

/** Every fifth run: the same wait in another pipeline, cancelled once submitted (a second pipeline and status). */
const CANCELLED = WAITING.replace("name: approval", "name: review");

/** The last line of the big log, looked for in the page. */
const LAST_LINE = "bench-ui-last-line";

/**
 * One job printing 1,000,000 coloured lines of 100 bytes (100,000,000 bytes: two colour codes each,
 * every line different), then LAST_LINE.
 */
const BIG_LOG = `name: biglog
jobs:
  print:
    run: |
      awk 'BEGIN { for (i = 1; i <= 1000000; i++) printf "\\033[32m%07d\\033[0m compile \\033[1;34minfo\\033[0m module %07d of the bench log, padded to a line of 100 bytes ...\\n", i, i }'
      echo ${LAST_LINE}
`;

/** The first page: index.html and every script and stylesheet it names, each gzipped (level 9). */
export function firstPageGzipKb(dir = WEB): { kb: number; files: number } {
  const html = readFileSync(join(dir, "index.html"), "utf8");
  const assets = [...html.matchAll(/(?:src|href)="\/?([^"]+\.(?:js|css))"/g)].map((m) => m[1]!);
  const files = [join(dir, "index.html"), ...assets.map((a) => join(dir, a))];
  const bytes = files.reduce((sum, file) => sum + gzipSync(readFileSync(file), { level: 9 }).length, 0);
  return { kb: bytes / 1024, files: files.length };
}

/** `GET /runs?limit=50` pages, one request at a time: the newest pages and filtered ones, following `next`. */
async function listPages(server: BenchServer, requests: number): Promise<Figures> {
  const walks: { name: string; query: string; share: number }[] = [
    { name: "newest", query: "", share: 0.55 },
    { name: "status", query: "&status=cancelled", share: 0.15 },
    { name: "pipeline", query: "&pipeline=approval", share: 0.15 },
    { name: "q", query: "&q=review", share: 0.15 },
  ];
  const headers = { authorization: `Bearer ${TOKEN}` };
  const all: number[] = [];
  const figures: Figures = {};
  for (const walk of walks) {
    const latency: number[] = [];
    let cursor: string | undefined;
    const n = Math.round(requests * walk.share);
    for (let i = 0; i < n; i++) {
      const url = `${server.url}/api/v1/runs?limit=50${walk.query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`;
      const t0 = performance.now();
      const response = await fetch(url, { headers });
      const page = (await response.json()) as { runs: RunSummary[]; next?: string };
      latency.push(performance.now() - t0);
      if (response.status !== 200 || page.runs.length === 0)
        throw new Error(`list ${url}: ${response.status}`);
      cursor = page.next; // the last page starts the walk again
      await sleep(10); // paced: one at a time, a short pause between
    }
    const sorted = sortedCopy(latency);
    figures[`api.list_page_${walk.name}_p50_ms`] = round(percentile(sorted, 50), 1);
    figures[`api.list_page_${walk.name}_p99_ms`] = round(percentile(sorted, 99), 1);
    all.push(...latency);
  }
  const sorted = sortedCopy(all);
  figures["api.list_page_requests"] = all.length;
  figures["api.list_page_p50_ms"] = round(percentile(sorted, 50), 1);
  figures["api.list_page_p99_ms"] = round(percentile(sorted, 99), 1);
  figures["api.list_page_max_ms"] = round(percentile(sorted, 100), 1);
  return figures;
}

/** A fresh context (cold cache) carrying the signed-in cookie. */
function signedInContext(browser: Browser, state: Awaited<ReturnType<BrowserContext["storageState"]>>) {
  return browser.newContext({ storageState: state, viewport: { width: 1280, height: 800 } });
}

/** Records main-thread long tasks from the page's start (read back by `longTasksSince`). */
const LONG_TASK_OBSERVER = `
  window.__longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__longTasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: "longtask", buffered: true });
`;

interface ScrollResult {
  steps: number;
  stepPx: number;
  scrollHeight: number;
  rows: number;
  ms: number;
  tasks: { start: number; duration: number }[];
}

/**
 * In the page (plain JS: the bench compiles without the DOM's types): scrolls the log box from its end
 * to its start and back, a step at a time (one box height, or more when that would take over
 * `maxSteps`), two frames per step; resolves with the long tasks meanwhile.
 */
const SCROLL_LOG = `async (maxSteps) => {
  const el = document.querySelector(".log-body");
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const t0 = performance.now();
  const stepPx = Math.max(el.clientHeight, Math.ceil(el.scrollHeight / maxSteps));
  let steps = 0;
  el.scrollTop = el.scrollHeight;
  await frame();
  while (el.scrollTop > 0) {
    el.scrollTop = Math.max(0, el.scrollTop - stepPx);
    steps++;
    await frame();
  }
  while (el.scrollTop + el.clientHeight < el.scrollHeight - 1) {
    const before = el.scrollTop;
    el.scrollTop = before + stepPx;
    steps++;
    await frame();
    if (el.scrollTop === before) break;
  }
  return {
    steps,
    stepPx,
    scrollHeight: el.scrollHeight,
    rows: el.querySelectorAll(".log-row").length,
    ms: performance.now() - t0,
    tasks: window.__longTasks.filter((t) => t.start >= t0),
  };
}`;

/** What the two predicates below read of the page (the bench compiles without the DOM's types). */
interface PageElement {
  textContent: string | null;
  getBoundingClientRect(): { top: number; bottom: number; height: number };
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): Iterable<PageElement>;
}

/**
 * In the page, polled every frame: once the log's last line is drawn inside the log box, the time
 * since navigation start. (Functions, not strings: the page's CSP forbids eval.)
 */
function lastLineVisible(text: string): number | false {
  const page = globalThis as unknown as { document: PageElement };
  const box = page.document.querySelector(".log-body");
  if (!box) return false;
  const outer = box.getBoundingClientRect();
  for (const row of box.querySelectorAll(".log-row")) {
    if (!row.textContent?.includes(text)) continue;
    const r = row.getBoundingClientRect();
    if (r.height > 0 && r.top >= outer.top - 1 && r.bottom <= outer.bottom + 1) return performance.now();
  }
  return false;
}

/** In the page, polled every frame: once the runs table's first row is drawn, the time since navigation start. */
function firstRowVisible(): number | false {
  const page = globalThis as unknown as { document: PageElement };
  const row = page.document.querySelector("table.runs tbody tr");
  return row && row.getBoundingClientRect().height > 0 ? performance.now() : false;
}

/**
 * In the page (Resource Timing, ms since navigation start): the document's DOMContentLoaded, and the
 * first request whose URL contains `part`: when it was sent, its first byte, its last byte.
 */
const TIMINGS = (part: string) => `(() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const r = performance.getEntriesByType("resource").find((e) => e.name.includes(${JSON.stringify(part)}));
  return { dom: nav ? nav.domContentLoadedEventEnd : -1, sent: r ? r.startTime : -1,
    first: r ? r.responseStart : -1, last: r ? r.responseEnd : -1 };
})()`;

interface Timings {
  dom: number;
  sent: number;
  first: number;
  last: number;
}

/** Medians of each timing, as figures `<prefix>_<name>_ms`. */
function timingFigures(prefix: string, all: Timings[]): Figures {
  const figures: Figures = {};
  for (const name of ["dom", "sent", "first", "last"] as const)
    figures[`${prefix}_${name}_ms`] = round(percentile(sortedCopy(all.map((t) => t[name])), 50), 0);
  return figures;
}

async function ui(runs: number): Promise<{ figures: Figures; notes: string[] }> {
  const notes: string[] = [];
  const dir = tempDir("ui");
  const load0 = loadavg()[0]!;
  const gzip = firstPageGzipKb();
  const server = await startServer(dir);
  let browser: Browser | undefined;
  const figures: Figures = {
    "ui.first_page_gzip_kb": round(gzip.kb, 1),
    "ui.first_page_files": gzip.files,
  };
  try {
    // The runs: POSTed with 32 in flight; every fifth one cancelled once submitted, the rest wait for a signal.
    const t0 = performance.now();
    await pool(
      Array.from({ length: runs }, (_, i) => i),
      32,
      async (n) => {
        const source = n % 5 === 4 ? CANCELLED : WAITING;
        const body = { file: { name: "p.yml", source }, inputs: { n } };
        const { id } = await server.json<SubmitResponse>("POST", "/runs", body, 201);
        if (source === CANCELLED) await server.json("POST", `/runs/${id}/cancel`, {});
      },
    );
    await waitForCount(server, "cancelled", Math.floor(runs / 5), 120_000);
    figures["ui.seed_runs"] = runs;
    figures["ui.seed_s"] = round((performance.now() - t0) / 1000, 1);

    // The big log, the newest run.
    const l0 = performance.now();
    const big = await server.json<SubmitResponse>(
      "POST",
      "/runs",
      { file: { name: "biglog.yml", source: BIG_LOG }, inputs: {} },
      201,
    );
    for (const deadline = Date.now() + 600_000; ; ) {
      const run = await server.json<RunSummary>("GET", `/runs/${big.id}`);
      if (run.endedAt !== null) {
        if (run.status !== "completed") throw new Error(`ui: the big log's run ended ${run.status}`);
        break;
      }
      if (Date.now() > deadline) throw new Error("ui: the big log's run did not end in 10 min");
      await sleep(250);
    }
    figures["ui.big_log_run_s"] = round((performance.now() - l0) / 1000, 1);
    // The log file's size: where its last 4 KiB start (the tail header's `from byte N`) plus their length.
    const tail = await fetch(`${server.url}/api/v1/runs/${big.id}/logs?tail=4096`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    const tailText = await tail.text();
    const from = /from byte (\d+) <==\n/.exec(tailText);
    if (!from) throw new Error(`ui: no tail header in ${tailText.slice(0, 200)}`);
    const fileBytes = Number(from[1]) + Buffer.byteLength(tailText.slice(from.index + from[0].length));
    figures["ui.big_log_file_mb"] = round(fileBytes / 1e6, 1);

    figures["ui.load_1m_before_pages"] = round(loadavg()[0]!, 2);
    Object.assign(figures, await listPages(server, 200));

    browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    // Sign in once; every measured load is a fresh context (cold cache) with that cookie.
    const signIn = await browser.newContext();
    const page0 = await signIn.newPage();
    await page0.goto(server.url);
    await page0.fill("#token", TOKEN);
    await page0.click("button[type=submit]");
    await page0.waitForSelector("nav.top .who", { timeout: 60_000 });
    const state = await signIn.storageState();
    await signIn.close();

    // The runs list: navigation start -> the first row drawn (in the page's clock, polled every frame).
    const firstRows: number[] = [];
    const rowTimings: Timings[] = [];
    for (let i = 0; i < 5; i++) {
      const context = await signedInContext(browser, state);
      const page = await context.newPage();
      await page.goto(`${server.url}/`, { waitUntil: "commit" });
      const at = await page.waitForFunction(firstRowVisible, undefined, {
        polling: "raf",
        timeout: 60_000,
      });
      firstRows.push((await at.jsonValue()) as number);
      rowTimings.push((await page.evaluate(TIMINGS("/api/v1/runs?"))) as Timings);
      const shown = await page.$$eval("table.runs tbody tr", (rows) => rows.length);
      if (shown !== 50) throw new Error(`ui: the runs list shows ${shown} rows, expected 50`);
      await context.close();
    }
    const rowsSorted = sortedCopy(firstRows);
    figures["ui.runs_first_rows_ms"] = round(percentile(rowsSorted, 50), 0);
    figures["ui.runs_first_rows_max_ms"] = round(percentile(rowsSorted, 100), 0);
    Object.assign(figures, timingFigures("ui.runs_first_rows_list", rowTimings));

    // The big log: its run's page loaded -> its last line drawn inside the log box.
    const opens: number[] = [];
    const openTimings: Timings[] = [];
    let scroll: ScrollResult | undefined;
    // With $BENCH_UI_PROF=<dir>, a fourth page (not counted) is opened and scrolled under Chromium's
    // CPU profiler; its profile is written there and summarized in the notes.
    const profDir = process.env.BENCH_UI_PROF;
    for (let i = 0; i < (profDir ? 4 : 3); i++) {
      const profiled = i === 3;
      const context = await signedInContext(browser, state);
      await context.addInitScript(LONG_TASK_OBSERVER);
      const page = await context.newPage();
      const cdp = profiled ? await context.newCDPSession(page) : undefined;
      if (cdp) {
        await cdp.send("Profiler.enable");
        await cdp.send("Profiler.start");
      }
      await page.goto(`${server.url}/runs/${big.id}`, { waitUntil: "commit" });
      const at = await page.waitForFunction(lastLineVisible, LAST_LINE, {
        polling: "raf",
        timeout: 120_000,
      });
      if (!profiled) {
        opens.push((await at.jsonValue()) as number);
        openTimings.push((await page.evaluate(TIMINGS("/logs?"))) as Timings);
      }
      if (i >= 2) {
        await page.waitForSelector(".log-state[data-state=ended]", { timeout: 60_000 });
        figures["ui.log_rows"] = await page.$eval(".log-rows", (el) =>
          Math.round(el.getBoundingClientRect().height / 18),
        );
        const result = (await page.evaluate(`(${SCROLL_LOG})(600)`)) as ScrollResult;
        if (!profiled) scroll = result;
      }
      if (cdp) {
        const { profile } = await cdp.send("Profiler.stop");
        const file = join(profDir!, `ui-log-${new Date().toISOString().replace(/[:.]/g, "-")}.cpuprofile`);
        mkdirSync(profDir!, { recursive: true });
        writeFileSync(file, JSON.stringify(profile));
        notes.push(
          `ui: the log page opened and scrolled under the profiler: ${file}`,
          ...summarizeProfiles([file], 15),
        );
      }
      await context.close();
    }
    const openSorted = sortedCopy(opens);
    figures["ui.log_open_ms"] = round(percentile(openSorted, 50), 0);
    figures["ui.log_open_max_ms"] = round(percentile(openSorted, 100), 0);
    Object.assign(figures, timingFigures("ui.log_open_logs", openTimings));
    const s = scroll!;
    const durations = s.tasks.map((t) => t.duration);
    figures["ui.log_scroll_long_tasks"] = durations.filter((d) => d > 200).length;
    figures["ui.log_scroll_tasks_over_50ms"] = durations.length;
    figures["ui.log_scroll_longest_task_ms"] = round(Math.max(0, ...durations), 0);
    figures["ui.log_scroll_steps"] = s.steps;
    figures["ui.log_scroll_step_px"] = s.stepPx;
    figures["ui.log_scroll_height_px"] = s.scrollHeight;
    figures["ui.log_scroll_rows_in_page"] = s.rows;
    figures["ui.log_scroll_ms"] = round(s.ms, 0);
  } finally {
    await browser?.close();
    await server.stop();
  }
  // The machine's 1-minute load average at the start, before the measured pages and at the end.
  figures["ui.load_1m_start"] = round(load0, 2);
  figures["ui.load_1m_end"] = round(loadavg()[0]!, 2);
  removeDir(dir);
  return { figures, notes };
}

childMain(() => ui(Number(process.argv[2] ?? 10_000)));
