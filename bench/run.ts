/**
 * `npm run bench`: runs each phase in a fresh child process, prints a table, and writes the figures as
 * flat JSON to $BENCH_JSON when set. $BENCH_PROFILE=<dir> adds a CPU profile of the engine phase.
 * $BENCH_PHASES=engine,groups,rss,signal,recovery,sched,serve,api,load,triggers,ui,pg runs a subset (the last six against a
 * real `slipway serve`; ui drives headless Chromium, $SLIPWAY_CHROMIUM or /usr/bin/chromium, and
 * $BENCH_UI_PROF=<dir> adds a CPU profile of its log page; $BENCH_SERVER_PROF=<dir> profiles that server; $BENCH_LOAD_SECONDS shortens the
 * load phase; $BENCH_PG_PARTS=one,workers,signal,failover runs a part of the pg phase). $BENCH_REPEAT=n runs each phase n times (each in a fresh child) and reports the median of every figure, with `<key>.runs` listing each run's value
 * for the targeted ones: this machine is shared, single runs are noisy. $BENCH_CHILD_ARGS gives every bench
 * child process node options (`--cpu-prof --cpu-prof-dir=<dir>` profiles each phase and pg worker),
 * $BENCH_SERVER_ARGS the servers' (`--perf-basic-prof`, for `perf record`).
 */
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join, resolve } from "node:path";
import { type Figures, round, runChild } from "./common.js";
import { summarizeProfiles } from "./profile.js";
import { recovery } from "./recovery.js";

interface Target {
  key: string;
  label: string;
  /** Met when value <= max (or >= min). */
  max?: number;
  min?: number;
  unit: string;
}

const TARGETS: Target[] = [
  { key: "engine.actions_per_s", label: "engine throughput", min: 30_000, unit: "actions/s" },
  {
    key: "pg.actions_per_s",
    label: "engine throughput on PostgreSQL, 1 worker",
    min: 8_000,
    unit: "actions/s",
  },
  {
    key: "pg.floor_commits_per_s",
    label: "  floor: one client's commits/s on that PostgreSQL",
    unit: "commits/s",
  },
  {
    key: "pg.actions_per_s_2w",
    label: "  the same, 2 worker processes (same 2 cores, same PostgreSQL)",
    unit: "actions/s",
  },
  {
    key: "pg.actions_per_s_4w",
    label: "  the same, 4 worker processes (same 2 cores, same PostgreSQL)",
    unit: "actions/s",
  },
  { key: "pg.signal_p50_ms", label: "2k signals at once via a 3rd worker -> completed p50", unit: "ms" },
  {
    key: "pg.signal_p99_ms",
    label: "2k signals at once via a 3rd worker -> completed p99",
    max: 300,
    unit: "ms",
  },
  {
    key: "pg.failover_ms",
    label: "kill -9 of 1 of 2 workers, 200 runs -> all progressing (lease 10 s)",
    max: 12_000,
    unit: "ms",
  },
  { key: "pg.completed_rerun", label: "  completed actions re-run after it", max: 0, unit: "" },
  { key: "engine.overhead_p50_ms", label: "engine overhead / action p50", unit: "ms" },
  { key: "engine.overhead_p99_ms", label: "engine overhead / action p99", unit: "ms" },
  {
    key: "engine.loop_iterations_per_s",
    label: "1,000 runs x 10-iteration loop",
    min: 20_000,
    unit: "iterations/s",
  },
  {
    key: "engine.loop_chain_actions_per_s",
    label: "  floor: same runs as a 10-action chain",
    unit: "actions/s",
  },
  { key: "engine.loop_over_chain", label: "  loop / chain throughput", unit: "x" },
  { key: "engine.child_start_p50_ms", label: "parent step -> child's first action running p50", unit: "ms" },
  {
    key: "engine.child_start_p99_ms",
    label: "parent step -> child's first action running p99",
    max: 20,
    unit: "ms",
  },
  { key: "waits.rss_mb", label: "RSS, 10k runs waiting", max: 200, unit: "MB" },
  { key: "waits.signal_p50_ms", label: "signal -> completed p50", unit: "ms" },
  { key: "waits.signal_p99_ms", label: "signal -> completed p99", max: 250, unit: "ms" },
  { key: "recovery.restart_to_done_ms", label: "restart -> all done", max: 1_000, unit: "ms" },
  { key: "recovery.duplicates", label: "actions run more than once", unit: "" },
  { key: "recovery.completed_rerun", label: "committed actions re-run", max: 0, unit: "" },
  { key: "sched.slipway_makespan_ms", label: "story-3 mix, Slipway makespan", unit: "ms" },
  { key: "sched.serial_makespan_ms", label: "story-3 mix, serial runner (fail-fast) makespan", unit: "ms" },
  { key: "sched.slipway_mean_wait_ms", label: "story-3 mix, Slipway mean queue wait", unit: "ms" },
  { key: "sched.serial_mean_wait_ms", label: "story-3 mix, serial mean queue wait", unit: "ms" },
  { key: "sched.speedup_vs_serial", label: "serial (fail-fast) / Slipway makespan", min: 2, unit: "x" },
  { key: "sched.speedup_ceiling", label: "serial (fail-fast) / lower bound: a perfect scheduler", unit: "x" },
  { key: "sched.speedup_vs_story_harness", label: "story's harness / Slipway makespan", unit: "x" },
  { key: "sched.over_lower_bound", label: "Slipway makespan / lower bound", max: 1.15, unit: "x" },
  {
    key: "serve.waiting_rss_mb",
    label: "server RSS, 10k runs waiting, all inputs differ",
    max: 150,
    unit: "MB",
  },
  {
    key: "serve.wake_burst_p50_ms",
    label: "2k signals at once over HTTP (open connections) -> completed p50",
    unit: "ms",
  },
  {
    key: "serve.wake_burst_p99_ms",
    label: "2k signals at once over HTTP (open connections) -> completed p99",
    max: 500,
    unit: "ms",
  },
  {
    key: "serve.wake_burst_cold_p99_ms",
    label: "the same on 500 new connections opened at once p99",
    unit: "ms",
  },
  { key: "serve.connect_floor_p99_ms", label: "floor: 500 new connections to bare Node p99", unit: "ms" },
  { key: "serve.submit_10k_s", label: "10k submissions over HTTP", unit: "s" },
  { key: "api.single_spawn_floor_ms", label: "floor: one process from bare Node p50", unit: "ms" },
  { key: "api.single_start_p50_ms", label: "one POST /runs at a time -> job running p50", unit: "ms" },
  { key: "api.single_start_p99_ms", label: "one POST /runs at a time -> job running p99", unit: "ms" },
  { key: "api.single_start_p50_over_floor_ms", label: "  p50 minus floor", max: 10, unit: "ms" },
  { key: "api.single_start_p99_over_floor_ms", label: "  p99 minus floor", max: 25, unit: "ms" },
  { key: "api.spawn_floor_p99_ms", label: "floor: 200 processes at once from bare Node p99", unit: "ms" },
  { key: "api.submit_to_start_p50_ms", label: "200 POST /runs at once -> job running p50", unit: "ms" },
  { key: "api.submit_to_start_p99_ms", label: "200 POST /runs at once -> job running p99", unit: "ms" },
  { key: "api.burst_over_floor", label: "  p99 / floor p99", max: 1.5, unit: "x" },
  { key: "api.load_p99_ms", label: "200 clients looping submit/list/show/logs p99", max: 500, unit: "ms" },
  { key: "api.load_errors", label: "  errors (5xx, refused, > 10 s)", max: 0, unit: "" },
  { key: "serve.event_loop_lag_p99_ms", label: "  server event-loop lag p99", max: 50, unit: "ms" },
  {
    key: "triggers.poll_to_start_p50_ms",
    label: "git push, polled every 1 s -> job running p50",
    unit: "ms",
  },
  {
    key: "triggers.poll_to_start_p99_ms",
    label: "git push, polled every 1 s -> job running p99 (1.1 x 1 s + 300)",
    max: 1_400,
    unit: "ms",
  },
  { key: "triggers.webhook_to_start_p50_ms", label: "signed push delivery -> job running p50", unit: "ms" },
  {
    key: "triggers.webhook_to_start_p99_ms",
    label: "signed push delivery -> job running p99",
    max: 100,
    unit: "ms",
  },
  {
    key: "triggers.webhook_git_floor_p50_ms",
    label: "  floor: its git commands + the job's bash from bare Node p50",
    unit: "ms",
  },
  {
    key: "triggers.webhook_git_floor_p99_ms",
    label: "  floor: its git commands + the job's bash from bare Node p99",
    unit: "ms",
  },
  { key: "triggers.webhook_load_1m", label: "  load average meanwhile (1 min, median)", unit: "" },
  {
    key: "ui.runs_first_rows_ms",
    label: "10k runs: page load of / -> first rows drawn, median of 5",
    max: 1_000,
    unit: "ms",
  },
  {
    key: "api.list_page_p99_ms",
    label: "10k runs: GET /runs?limit=50 pages (200, paced, cursors) p99",
    max: 100,
    unit: "ms",
  },
  {
    key: "ui.log_open_ms",
    label: "100 MB job log: run page load -> last line drawn, median of 3",
    max: 1_000,
    unit: "ms",
  },
  {
    key: "ui.log_scroll_long_tasks",
    label: "  main-thread tasks > 200 ms scrolling it end to end",
    max: 0,
    unit: "",
  },
  { key: "ui.first_page_gzip_kb", label: "first page (html, js, css) gzipped", max: 200, unit: "KB" },
  { key: "ui.load_1m_end", label: "  load average at the end of the ui phase (1 min)", unit: "" },
];

const DEFINITIONS = [
  "engine: 500 runs x 10 chained no-op actions, all started at once, SQLite synchronous=FULL (fresh",
  "  temp file per run); throughput = 5,000 / (first start() -> last run:completed), median of 7 runs",
  "  after 2 warm-up runs. Overhead per action = (body start - runnable) + (completion committed - body end),",
  "  runnable = start() call for a0, else predecessor's completion committed (action:completed event);",
  "  i.e. everything but the body. From the median of 3 separate instrumented runs (2 performance.now() in",
  "  the body, one per action:completed event); engine.storage.* from 3 more runs with storage calls timed.",
  "groups: 1,000 runs, each a loop of 10 iterations of one no-op action, all started at once (a burst,",
  "  different idx), SQLite synchronous=FULL, fresh temp file; iterations/s = 10,000 / (first start() ->",
  "  last run ended), median of 5, interleaved with the floor: the same 1,000 runs as a 10-action chain.",
  "  child_start: 200 parent runs one after the other (after 200 for warm-up), each one step starting a",
  "  child run of one no-op action; per parent, its step's action:waiting -> the child's first",
  "  action:started (both as published, after their commits), p50 and p99.",
  "waits.rss: 10,000 runs parked on waitForSignal in a fresh child (--expose-gc), RSS after 3 forced GCs.",
  "waits.signal: 2,000 parked runs, executor.signal() issued for all at once; per run, signal()",
  "  call -> run:completed event.",
  "recovery: 200 runs x 10 actions of 50 ms in a child, SIGKILLed once >= 1,000 completions are",
  "  committed; restart = spawn of a fresh child that opens an Executor (recovers on open) -> its IPC report",
  "  that all runs ended. duplicates = (run, action) pairs whose body started more than once",
  "  (in-flight actions at the kill are expected to re-run); completed_rerun = committed before the kill",
  "  and run again after the restart.",
  "sched, serve, api, load: a real `slipway serve` (node dist/cli/main.js, fresh temp database) driven over HTTP",
  "  from a bench child. $BENCH_SERVER_PROF=<dir> runs that server under node --cpu-prof.",
  "  Every server runs with a preloaded probe (bench/loop-probe.ts: perf_hooks.monitorEventLoopDelay,",
  "  10 ms resolution, read and reset on SIGUSR2): lag = each sampled interval minus the 10 ms.",
  "sched: story 3's CI queue at a time scale of 1:80 (1 s here = 80 s there): 31 runs POSTed at once (a",
  "  burst) to a server with `locks: { swarm: 1 }`, in this order: a heavy run every fifth (6 heavy: one",
  "  job holding swarm, `sleep 1.5` = a 2-min deploy + test tier), the crash-looping deploy third (holds",
  "  swarm; `ready` probe exits 1 every 200ms, crash_loop 3 within 60s; undo = teardown), 24 light runs",
  "  (`resources: { cpu: 1 }`, real CPU work: an awk loop calibrated at the phase's start to take 0.4 s",
  "  alone = 32 s of lint/unit). Each run has its own input `id`. serial: the same bash commands one",
  "  after another in that order by a plain child-process loop with the same crash-loop fail-fast (the",
  "  probe every 200 ms, given up after 3 failures, then the teardown). story_harness: the same loop",
  "  without fail-fast, as the story's harness (probe until the 20-min deploy timeout scaled 1:80 = 15",
  "  s). Both serial runs come after the server has stopped. Makespan: Slipway = first POST -> last",
  "  run's endedAt; serial = loop start -> last command exited. Queue wait = submit (POST sent; serial:",
  "  loop start) -> the job's first command ran (its `start $EPOCHREALTIME` line); mean over the 31",
  "  runs. over_lower_bound = Slipway makespan / max(critical path = the longest single job, exclusive-",
  "  lock work = the heavy jobs + the crash loop's 2 x 200 ms between its first and third probe failure,",
  "  total CPU work / cores = the light jobs / 2), each job's work as the fail-fast serial run measured it.",
  "  speedup_ceiling = serial makespan / lower bound: the speedup no scheduler can pass on this mix.",
  "serve: 10,000 runs of one file text (a single `wait: { signal: go }` job) with input n = 0..9999, so",
  "  every run's inputs differ, POSTed with 32 in flight; once all are `waiting` (GET",
  "  /runs?status=waiting) and 1 s after, the server's VmRSS from /proc/<pid>/status (no forced GC).",
  "  wake_burst: then 2,000 of them (every 5th), signalled (POST /runs/{id}/signals/go), all queued at",
  "  once with 500 in flight; per run, POST sent -> its endedAt (stamped by the server as it completes",
  "  the run), read once all 2,000 completed. Two bursts, on different runs: _cold first, its 500",
  "  connections opened at once (Node accepts one new connection per turn of its event loop, so the",
  "  last of them waits ~500 of the server's turns); then the keyed one on those connections, kept",
  "  alive, as a client pool would. connect_floor: the same 2,000 POSTs, 500 in flight on new",
  "  connections, to a bare Node HTTP server in a child process; sent -> its handler called.",
  "api: a one-job pipeline (`echo $SLIPWAY_RUN_ID start $EPOCHREALTIME >> trace`, same text and inputs),",
  "  after 20 warm-up runs. single: 100 POST /runs in sequence (paced: the next once the previous run",
  "  completed); POST sent -> the job's bash printing its start. single_spawn_floor: this bench child",
  "  (a bare Node process, server stopped) spawning 100 such bash jobs one at a time (detached, piped),",
  "  spawn() called -> its start mark; p50 (and _p99). Targets: single_start p50 <= floor + 10, p99 <=",
  "  floor + 25 (the _over_floor_ms keys). burst: 200 POST /runs at once; submit_to_start = POST sent",
  "  -> the job's start mark; submit_to_run_started = -> run createdAt; submit_to_job_launch = -> the",
  "  server spawning its process (the step result's launchedAt). spawn_floor: the bench child spawning",
  "  200 such jobs at once, loop start -> each start mark. burst_over_floor = submit_to_start_p99 /",
  "  spawn_floor_p99. burst_cpu_per_run: the server process's CPU time (all threads; main_thread: its",
  "  event loop's alone) from the burst's first POST to its last run completed, / 200.",
  "load: 200 clients for 60 s ($BENCH_LOAD_SECONDS), each looping with no pause over submit (the api",
  "  phase's one-job pipeline), list (GET /runs?limit=50), show and logs (GET /runs/{id}, /logs of a",
  "  random run submitted so far) in equal shares, starting at different ones. Latency over all",
  "  requests; an error is a 5xx, a refused or broken connection, or no answer within 10 s (counted at",
  "  10 s). serve.event_loop_lag_*: the server's event-loop lag over the same window.",
  "  serve.load_cpu_ms_per_request: the server process's CPU time (user + system, /proc/<pid>/stat)",
  "  over the window / requests answered: comparable across runs however busy the machine is.",
  "triggers: a real `slipway serve` with `--config` naming one source on a real bare git repository in",
  "  a temp directory; its pipeline (on: push to main) is the api phase's stamp job, its mark the",
  "  event's commit. 100 events (after 3 warm-up ones), each a new commit on main (different commits,",
  "  same pipeline), paced: the next once the previous run completed. poll: a plain git source polled",
  "  every 1 s (git ls-remote, jitter <= 100 ms); each push comes at a random moment of the poll cycle",
  "  (after a random 0-1 s pause); `git push` returned -> the job's start mark. webhook: a github source",
  "  polled every 10 min (so the delivery starts the run); after the push, a GitHub push delivery",
  "  signed with X-Hub-Signature-256 to POST /hooks/app; delivery sent -> the job's start mark. Also",
  "  _to_run_created (-> the run's createdAt) and _to_job_launch (-> the server spawning the job);",
  "  poll_start_to_start: the start of the poll that saw the push (the source's lastPollAt once within",
  "  200 ms before the push returned, read after the mark) -> the job's start mark, the part the",
  "  target's 300 ms is for; and",
  "  _push_p50_ms: one `git push` of an empty commit to the local bare repository (the scale of one git",
  "  command on the machine at the time). webhook_git_floor: the git commands the server runs for a",
  "  webhook's push (the fetch of the pushed ref into a mirror, beside the workspace's files written",
  "  in-process to borrow its objects; then the checkout) and the stamp job's bash, from the bench",
  "  child with no server, to a repository of their own: one such push after each webhook event (the",
  "  server idle), so both see the same machine; push returned -> the mark. webhook_load_1m: the",
  "  median of the 1-minute load average read at each webhook event.",
  "ui: a real `slipway serve` (fresh temp database) with 10,000 runs POSTed over HTTP, 32 in flight, each",
  "  with its own input n, each one `wait: { signal: go }` job (no process): every fifth of pipeline",
  "  review, cancelled once submitted, the rest of pipeline approval, left waiting; then the newest run,",
  "  one job printing 1,000,000 coloured lines of 100 bytes with awk (100 MB; the server's log file",
  "  adds each line's time and stream). Headless Chromium (playwright-core, 1280x800), signed in once;",
  "  every page load is a fresh context (cold cache) with that cookie. runs_first_rows: page.goto(/) ->",
  "  the first row of the runs table drawn (the page's performance.now(), polled every frame), median",
  "  of 5 (and _max). log_open: page.goto(/runs/<id>) -> the log's last line drawn inside the log box,",
  "  median of 3. log_scroll_long_tasks: in the third page, once the log has ended, the log box scrolled",
  "  from its end to its start and back (what the view holds: the last 2 MiB of the log, the API's",
  "  tail=), one box height per step or scrollHeight / 600 if more, two frames per step; PerformanceObserver",
  "  'longtask' entries over 200 ms meanwhile (_tasks_over_50ms: all of them, as the browser reports).",
  "  list_page: 200 GET /runs?limit=50 one at a time, 10 ms apart, following `next` (restarting at the",
  "  end): 110 newest first, 30 each with status=cancelled, pipeline=approval, q=review; p50/p99 over all.",
  "  first_page_gzip_kb: dist/web/index.html and the scripts and stylesheets it names, gzip level 9.",
  "  Where a page's time goes (medians, Resource Timing, ms since navigation start): _dom_ms the",
  "  document's DOMContentLoaded; _sent_ms, _first_ms, _last_ms the list request (runs_first_rows_list)",
  "  or the log request (log_open_logs) sent, its first byte, its last byte.",
  "pg: a throwaway PostgreSQL cluster on this machine (startPostgres, fsync and synchronous_commit on);",
  "  each measurement on a fresh database. actions_per_s: the engine workload (500 runs x 10 no-op",
  "  actions, all started at once) with one Executor in the pg child, median of 5 after a warm-up.",
  "  _2w, _4w: the same 500 runs split evenly over 2 and 4 worker processes (bench/pg-worker.ts, each",
  "  its own Executor and pool of 10 connections, each starting its share when told): 5,000 / (the first",
  "  start() in any worker -> the last run ended in any worker), median of 3 rounds. On 2 cores more",
  "  workers cannot add CPU: they share the cores with each other and with the one PostgreSQL, whose",
  "  commits (each fsync) they all wait on; what they can add is more commits in flight at once (group",
  "  commit across connections) and a failover partner. A figure below the one-worker one is the cost of",
  "  more processes, pools and smaller batches per commit on the same cores.",
  "  signal: 2,000 approval runs (waitForSignal, then one no-op action) started by 2 worker processes,",
  "  1,000 each, each waking only its own (accept), all parked (waiting, out of memory); a 3rd worker",
  "  that takes no run calls executor.signal for all 2,000 at once, 500 in flight; the holders hear of",
  "  it by LISTEN/NOTIFY. Per run, signal() called -> its endedAt (stamped by the worker that completed",
  "  it), p50/p99/max.",
  "  failover: 2 worker processes (heartbeat 2 s, lease 10 s, pidLiveness off: the same-host shortcut",
  "  that notices a dead pid is turned off, so the lease itself is timed) start 100 runs each of a",
  "  3-action saga: a0 logs, a1 logs its start and waits for a gate file, a2 logs (a side log).",
  "  Once all 200 are in a1, kill -9 of one worker; per run of it, kill -> a1 started again on the",
  "  survivor; failover_ms = the slowest (_p50, _first_ms too). Then the gate opens and all 200 must",
  "  complete. completed_rerun: runs whose a0 (committed before the kill) ran twice, must be 0;",
  "  failover_in_flight_rerun: a1 started again (expected: the killed worker's 100).",
  "BENCH_REPEAT=n: every figure is the median over n runs of its phase (each in a fresh child).",
];

/** Per key, the median over runs (the mean of the middle two for an even count). */
function medians(runs: readonly Figures[]): Figures {
  if (runs.length === 1) return { ...runs[0] };
  const out: Figures = {};
  const keys = new Set(runs.flatMap((run) => Object.keys(run)));
  for (const key of keys) {
    const values = runs
      .map((run) => run[key])
      .filter((v): v is number => v !== undefined)
      .sort((a, b) => a - b);
    const mid = values.length >> 1;
    out[key] = values.length % 2 === 1 ? values[mid]! : round((values[mid - 1]! + values[mid]!) / 2, 3);
  }
  return out;
}

function format(value: number | undefined): string {
  if (value === undefined) return "-";
  if (Number.isInteger(value)) return value.toLocaleString("en-US");
  return value.toLocaleString("en-US", { maximumFractionDigits: 3 });
}

function table(figures: Figures): string[] {
  const lines: string[] = [];
  const rows = TARGETS.map((t) => {
    const value = figures[t.key];
    const target =
      t.min !== undefined ? `>= ${format(t.min)}` : t.max !== undefined ? `<= ${format(t.max)}` : "";
    const met =
      value === undefined
        ? "n/a"
        : t.min !== undefined
          ? value >= t.min
            ? "ok"
            : "MISS"
          : t.max !== undefined
            ? value <= t.max
              ? "ok"
              : "MISS"
            : "";
    return [t.label, t.key, `${format(value)} ${t.unit}`.trim(), target, met];
  });
  const header = ["metric", "key", "value", "target", ""];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  lines.push(line(header), widths.map((w) => "-".repeat(w)).join("  "));
  for (const r of rows) lines.push(line(r));
  lines.push("", "all figures:");
  const keyWidth = Math.max(...Object.keys(figures).map((k) => k.length));
  for (const [k, v] of Object.entries(figures)) lines.push(`  ${k.padEnd(keyWidth)}  ${format(v)}`);
  lines.push("", "definitions:", ...DEFINITIONS.map((d) => `  ${d}`));
  return lines;
}

async function main(): Promise<void> {
  const t0 = performance.now();
  const phases = new Set(
    (process.env.BENCH_PHASES ?? "engine,groups,rss,signal,recovery,sched,serve,api,load,triggers,ui").split(
      ",",
    ),
  );
  const repeat = Math.max(1, Math.floor(Number(process.env.BENCH_REPEAT ?? 1)) || 1);
  const profileDir = process.env.BENCH_PROFILE ? resolve(process.env.BENCH_PROFILE) : undefined;
  const figures: Figures = {};
  const notes: string[] = [];
  const runRows: [string, number][] = [];
  const phase = async (name: string, fn: () => Promise<{ figures: Figures; notes: string[] }>) => {
    if (!phases.has(name)) return;
    const started = performance.now();
    process.stderr.write(`bench: ${name}...`);
    const runs: Figures[] = [];
    for (let i = 0; i < repeat; i++) {
      const result = await fn();
      runs.push(result.figures);
      if (i === 0) notes.push(...result.notes);
    }
    Object.assign(figures, medians(runs));
    if (repeat > 1) {
      for (const t of TARGETS) {
        if (runs[0]![t.key] === undefined) continue;
        runs.forEach((run, i) => {
          if (run[t.key] !== undefined) runRows.push([`${t.key}.runs[${i}]`, run[t.key]!]);
        });
      }
    }
    const seconds = (performance.now() - started) / 1000;
    figures[`bench.${name}_s`] = round(seconds, 1);
    process.stderr.write(` ${seconds.toFixed(1)} s\n`);
  };

  let profiles: string | undefined;
  if (profileDir) {
    profiles = join(profileDir, `engine-${new Date().toISOString().replace(/[:.]/g, "-")}`);
    mkdirSync(profiles, { recursive: true });
  }
  await phase("engine", () => runChild("engine", profiles ? [profiles] : []));
  await phase("groups", () => runChild("groups", []));
  await phase("rss", () => runChild("waits", ["rss", "10000"], ["--expose-gc"]));
  await phase("signal", () => runChild("waits", ["signal", "2000"]));
  await phase("recovery", recovery);
  await phase("sched", () => runChild("serve", ["sched"]));
  await phase("serve", () => runChild("serve", ["serve", "10000", "2000"]));
  await phase("api", () => runChild("api", ["api", "200", "100"]));
  await phase("load", () => runChild("api", ["load", "200"]));
  await phase("triggers", () => runChild("triggers", ["100", "1000"]));
  await phase("ui", () => runChild("ui", ["10000"]));
  await phase("pg", () => runChild("pg", []));
  figures["bench.total_s"] = round((performance.now() - t0) / 1000, 1);
  figures["bench.cpus"] = cpus().length;
  if (repeat > 1) {
    figures["bench.repeat"] = repeat;
    for (const [key, value] of runRows) figures[key] = value;
  }

  const lines = table(figures);
  if (notes.length > 0) lines.push("", "notes:", ...notes.map((n) => `  ${n}`));
  console.log(lines.join("\n"));
  if (profiles && phases.has("engine")) {
    const files = readdirSync(profiles)
      .filter((f) => f.endsWith(".cpuprofile"))
      .map((f) => join(profiles, f));
    const summary = summarizeProfiles(files);
    writeFileSync(join(profiles, "summary.txt"), `${summary.join("\n")}\n`);
    console.log(`\n${summary.join("\n")}`);
  }
  if (process.env.BENCH_JSON) {
    writeFileSync(process.env.BENCH_JSON, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`\nfigures written to ${process.env.BENCH_JSON}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
