/**
 * `npm run bench`: runs each phase in a fresh child process, prints a table, and writes the figures as
 * flat JSON to $BENCH_JSON when set. $BENCH_PROFILE=<dir> adds a CPU profile of the engine phase.
 * $BENCH_PHASES=engine,rss,signal,recovery,sched,serve,api runs a subset (the last three against a real
 * `slipway serve`; $BENCH_SERVER_PROF=<dir> profiles that server). $BENCH_REPEAT=n runs each phase n times (each
 * in a fresh child) and reports the median of every figure, with `<key>.runs` listing each run's value
 * for the targeted ones: this machine is shared, single runs are noisy.
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
  { key: "engine.overhead_p50_ms", label: "engine overhead / action p50", unit: "ms" },
  { key: "engine.overhead_p99_ms", label: "engine overhead / action p99", unit: "ms" },
  { key: "waits.rss_mb", label: "RSS, 10k executions waiting", max: 200, unit: "MB" },
  { key: "waits.signal_p50_ms", label: "signal -> completed p50", unit: "ms" },
  { key: "waits.signal_p99_ms", label: "signal -> completed p99", max: 250, unit: "ms" },
  { key: "recovery.restart_to_done_ms", label: "restart -> all done", max: 1_000, unit: "ms" },
  { key: "recovery.duplicates", label: "actions run more than once", unit: "" },
  { key: "recovery.completed_rerun", label: "committed actions re-run", max: 0, unit: "" },
  { key: "sched.slipway_makespan_ms", label: "story-3 mix, Slipway makespan", unit: "ms" },
  { key: "sched.serial_makespan_ms", label: "story-3 mix, serial runner makespan", unit: "ms" },
  { key: "sched.slipway_mean_wait_ms", label: "story-3 mix, Slipway mean queue wait", unit: "ms" },
  { key: "sched.serial_mean_wait_ms", label: "story-3 mix, serial mean queue wait", unit: "ms" },
  { key: "sched.speedup_vs_serial", label: "serial / Slipway makespan", min: 3, unit: "x" },
  { key: "sched.over_lower_bound", label: "Slipway makespan / lower bound", max: 1.2, unit: "x" },
  { key: "serve.waiting_rss_mb", label: "server RSS, 10k runs waiting", max: 300, unit: "MB" },
  { key: "serve.wake_p50_ms", label: "signal over HTTP -> run completed p50", unit: "ms" },
  { key: "serve.wake_p99_ms", label: "signal over HTTP -> run completed p99", max: 250, unit: "ms" },
  { key: "serve.submit_10k_s", label: "10k submissions over HTTP", unit: "s" },
  { key: "api.submit_to_start_p50_ms", label: "POST /runs -> job started p50", unit: "ms" },
  { key: "api.submit_to_start_p99_ms", label: "POST /runs -> job started p99", max: 100, unit: "ms" },
];

const DEFINITIONS = [
  "engine: 500 executions x 10 chained no-op actions, all started at once, SQLite synchronous=FULL (fresh",
  "  temp file per run); throughput = 5,000 / (first start() -> last execution:completed), median of 7 runs",
  "  after 2 warm-up runs. Overhead per action = (body start - runnable) + (completion committed - body end),",
  "  runnable = start() call for a0, else predecessor's completion committed (action:completed event);",
  "  i.e. everything but the body. From the median of 3 separate instrumented runs (2 performance.now() in",
  "  the body, one per action:completed event); engine.storage.* from 3 more runs with storage calls timed.",
  "waits.rss: 10,000 executions parked on waitForSignal in a fresh child (--expose-gc), RSS after 3 forced GCs.",
  "waits.signal: 2,000 parked executions, executor.signal() issued for all at once; per execution, signal()",
  "  call -> execution:completed event.",
  "recovery: 200 executions x 10 actions of 50 ms in a child, SIGKILLed once >= 1,000 completions are",
  "  committed; restart = spawn of a fresh child that opens an Executor (recovers on open) -> its IPC report",
  "  that all executions ended. duplicates = (execution, action) pairs whose body started more than once",
  "  (in-flight actions at the kill are expected to re-run); completed_rerun = committed before the kill",
  "  and run again after the restart.",
  "sched, serve, api: a real `slipway serve` (node dist/cli/main.js, fresh temp database) driven over HTTP",
  "  from a bench child. $BENCH_SERVER_PROF=<dir> runs that server under node --cpu-prof.",
  "sched: story 3's CI queue at a time scale of 1:80 (1 s here = 80 s there): 31 runs POSTed at once to a",
  "  server with `locks: { swarm: 1 }`, in this order: a heavy run every fifth (6 heavy: one job holding",
  "  swarm, `sleep 1.5` = a 2-min deploy + test tier), the crash-looping deploy third (holds swarm; `ready`",
  "  probe exits 1, every 200ms, crash_loop 3 within 60s; undo = teardown), 24 light runs (no lock, `sleep",
  "  0.4` = 32 s of lint/unit). Serial: the same bash commands one after another in that order by a plain",
  "  child-process loop (the story's harness): the crash-looping deploy's probe runs every 200 ms until",
  "  the 20-min deploy timeout scaled 1:80 = 15 s, then its teardown. Makespan: Slipway = first POST ->",
  "  last run's endedAt; serial = loop start -> last command exited. Queue wait = submit (POST sent; serial:",
  "  loop start) -> the job's first command ran (its `start $EPOCHREALTIME` line); mean over the 31 runs.",
  "  over_lower_bound = Slipway makespan / max(critical path = 1.5 s, nominal swarm work = 6 x 1.5 s + the",
  "  crash loop's 2 x 200 ms between its first and third probe failure = 9.4 s).",
  "serve: 10,000 runs of one file text (a single `wait: { signal: go }` job, no inputs: one compiled saga)",
  "  POSTed with 32 in flight; once all are `waiting` (GET /runs?status=waiting) and 1 s after, the",
  "  server's VmRSS from /proc/<pid>/status (no forced GC). Then every 5th run is signalled (2,000, POST",
  "  /runs/{id}/signals/go, 50 in flight); wake = that POST sent -> the run's endedAt (stamped by the server",
  "  as it completes the run), read from GET /runs?status=completed once all 2,000 completed.",
  "api: after 20 warm-up runs, 200 POST /runs at once of a one-job pipeline (`echo $SLIPWAY_RUN_ID",
  "  $EPOCHREALTIME >> trace`, same text: no compile per run after the first); submit_to_start = POST sent",
  "  -> the job's bash printing its start. spawn_floor: the bench child itself (no server, no HTTP)",
  "  spawning 200 such bash jobs at once (detached, piped), loop start -> each job's start: what one Node",
  "  process needs to start 200 jobs on this machine, the floor under api.submit_to_start.",
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
    (process.env.BENCH_PHASES ?? "engine,rss,signal,recovery,sched,serve,api").split(","),
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
  await phase("rss", () => runChild("waits", ["rss", "10000"], ["--expose-gc"]));
  await phase("signal", () => runChild("waits", ["signal", "2000"]));
  await phase("recovery", recovery);
  await phase("sched", () => runChild("serve", ["sched"]));
  await phase("serve", () => runChild("serve", ["serve", "10000", "2000"]));
  await phase("api", () => runChild("serve", ["api", "200"]));
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
