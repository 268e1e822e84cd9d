/**
 * Server phases (child), each against a real `slipway serve` process over HTTP:
 * - sched: story 3's mixed CI workload (light runs, heavy runs on the exclusive `swarm` lock, one
 *   crash-looping deploy) on Slipway, and the same shell commands on a single serial runner;
 * - serve: 10,000 runs parked on a signal, each with its own inputs: server RSS, then 2,000 of them
 *   signalled at once, wake-up latency.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import {
  childMain,
  epochNow,
  type Figures,
  httpRequest,
  percentile,
  readTrace,
  removeDir,
  round,
  sleep,
  sortedCopy,
  tempDir,
} from "./common.js";
import { pool, type RunSummary, type SubmitResponse, startServer, waitForCount } from "./server.js";

// ---- sched ----------------------------------------------------------------------------------------

/**
 * Time scale of the workload: 1 s here stands for SCALE s of the story's CI (a heavy deploy + test
 * tier of 1.5 s = 2 min, a light run of 0.4 s of CPU = 32 s, the harness's 20-min deploy timeout = 15 s).
 */
export const SCHED = {
  scale: 80,
  /** Light runs: lint/unit, CPU-bound (an awk loop calibrated to `seconds` alone), declaring `cpu: 1`. */
  light: { count: 24, seconds: 0.4 },
  /** Heavy runs: a deploy + test tier holding the exclusive `swarm` lock, waiting (a sleep). */
  heavy: { count: 6, seconds: 1.5 },
  /** The crash-looping deploy's probe: exits 1 every `everyMs`; fail-fast after `failures` in a row. */
  crash: { everyMs: 200, failures: 3, timeoutMs: (20 * 60 * 1000) / 80 },
} as const;

type Kind = "light" | "heavy" | "crash";

interface SchedRun {
  id: string;
  kind: Kind;
  run: string;
  probe?: string;
  undo?: string;
}

/** `awk` iterations that take about `seconds` of one CPU here: the fastest of 3 timed runs, scaled. */
async function calibrateCpu(seconds: number, dir: string): Promise<number> {
  const probe = 5_000_000;
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await bash(cpuWork(probe), dir);
    best = Math.min(best, performance.now() - t0);
  }
  return Math.round((probe * seconds * 1000) / best);
}

function cpuWork(iterations: number): string {
  return `awk 'BEGIN { for (i = 0; i < ${iterations}; i++) s += i; if (s < 0) print s }'`;
}

/** The workload, in submission order: a heavy run every fifth, the crash-looping deploy third. */
function schedRuns(trace: string, iterations: number): SchedRun[] {
  const mark = (what: string) => `echo "\${{ inputs.id }} ${what} $EPOCHREALTIME" >> ${trace}`;
  const span = (work: string) => [mark("start"), work, mark("end")].join("\n");
  const runs: SchedRun[] = [];
  let light = 0;
  let heavy = 0;
  const total = SCHED.light.count + SCHED.heavy.count + 1;
  for (let i = 0; i < total; i++) {
    if (i === 2)
      runs.push({
        id: "crash",
        kind: "crash",
        run: mark("start"),
        probe: "echo 'db exited with code 1'; exit 1",
        undo: mark("end"),
      });
    else if ((i % 5 === 0 && heavy < SCHED.heavy.count) || light >= SCHED.light.count)
      runs.push({ id: `heavy${heavy++}`, kind: "heavy", run: span(`sleep ${SCHED.heavy.seconds}`) });
    else runs.push({ id: `light${light++}`, kind: "light", run: span(cpuWork(iterations)) });
  }
  return runs;
}

function indent(text: string, spaces: number): string {
  return text
    .split("\n")
    .map((line) => " ".repeat(spaces) + line)
    .join("\n");
}

function pipelineOf(run: SchedRun): string {
  const lines = [`name: ${run.kind}`, "inputs:", "  id: {}", "jobs:", "  job:"];
  lines.push(run.kind === "light" ? "    resources: { cpu: 1 }" : "    resources: { locks: [swarm] }");
  lines.push("    run: |", indent(run.run, 6));
  if (run.probe !== undefined) {
    lines.push("    undo: |", indent(run.undo!, 6));
    lines.push(
      "    ready:",
      `      run: ${JSON.stringify(run.probe)}`,
      `      every: ${SCHED.crash.everyMs}ms`,
      "      timeout: 20m",
      `      crash_loop: { failures: ${SCHED.crash.failures}, within: 60s }`,
    );
  }
  return `${lines.join("\n")}\n`;
}

/** One command as the job runs it: bash -e -o pipefail -c, in `cwd`. Resolves with the exit code. */
function bash(script: string, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-e", "-o", "pipefail", "-c", script], { cwd, stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code ?? 1));
  });
}

/** The expression the pipelines use for the run's id, put in by hand for the serial runner. */
const INPUT_ID = ["$", "{{ inputs.id }}"].join("");

/**
 * A serial runner: one run at a time, in submission order. The crash-looping deploy's probe runs every
 * `everyMs`; with `failFast` it gives up after the same crash-loop rule as Slipway's (`failures`
 * failures within the window), without it (the story's harness) only at the scaled deploy timeout;
 * then its teardown.
 */
async function serialRunner(
  runs: readonly SchedRun[],
  dir: string,
  failFast: boolean,
): Promise<{ t0: number; end: number }> {
  const t0 = epochNow();
  for (const run of runs) {
    const script = run.run.replaceAll(INPUT_ID, run.id);
    if ((await bash(script, dir)) !== 0) throw new Error(`serial: ${run.id} failed`);
    if (run.probe === undefined) continue;
    const deadline = epochNow() + SCHED.crash.timeoutMs;
    let failures = 0;
    while (epochNow() < deadline) {
      if ((await bash(run.probe, dir)) === 0) break;
      if (failFast && ++failures >= SCHED.crash.failures) break;
      await sleep(Math.min(SCHED.crash.everyMs, Math.max(0, deadline - epochNow())));
    }
    await bash(run.undo!.replaceAll(INPUT_ID, run.id), dir);
  }
  return { t0, end: epochNow() };
}

/** The same runs with their trace file swapped (each runner writes its own). */
function tracedTo(runs: readonly SchedRun[], from: string, to: string): SchedRun[] {
  return runs.map((run) => ({
    ...run,
    run: run.run.replaceAll(from, to),
    ...(run.undo !== undefined && { undo: run.undo.replaceAll(from, to) }),
  }));
}

async function sched(): Promise<Figures> {
  const dir = tempDir("sched");
  writeFileSync(join(dir, "slipway.yml"), "locks: { swarm: 1 }\n");
  const trace = join(dir, "trace");
  const serialTrace = join(dir, "serial-trace");
  const harnessTrace = join(dir, "harness-trace");
  for (const file of [trace, serialTrace, harnessTrace]) writeFileSync(file, "");
  const iterations = await calibrateCpu(SCHED.light.seconds, dir);
  const runs = schedRuns(trace, iterations);

  const server = await startServer(dir, ["--config", "slipway.yml"]);
  let figures: Figures;
  try {
    const sentAt = new Map<string, number>();
    const ids = new Map<string, string>();
    const t0 = epochNow();
    await Promise.all(
      runs.map(async (run) => {
        const body = { file: { name: "pipe.yml", source: pipelineOf(run) }, inputs: { id: run.id } };
        sentAt.set(run.id, epochNow());
        ids.set(run.id, (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id);
      }),
    );
    const submitMs = epochNow() - t0;
    let ended: RunSummary[] = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      const all = await server.json<RunSummary[]>("GET", "/runs");
      ended = all.filter((r) => r.endedAt !== null);
      if (ended.length >= runs.length) break;
      if (Date.now() > deadline) throw new Error(`sched: only ${ended.length}/${runs.length} runs ended`);
      await sleep(100);
    }
    await server.stop();
    const byId = new Map(ended.map((r) => [r.id, r]));
    for (const run of runs) {
      const status = byId.get(ids.get(run.id)!)?.status;
      const expected = run.kind === "crash" ? "compensated" : "completed";
      if (status !== expected) throw new Error(`sched: ${run.id} ended ${status}, expected ${expected}`);
    }
    const spans = readTrace(trace);
    const slipwayEnd = Math.max(...ended.map((r) => r.endedAt!));
    const slipwayMakespan = slipwayEnd - t0;
    const slipwayWaits = runs.map((run) => spans.get(run.id)!.start - sentAt.get(run.id)!);
    // The exclusive lock passing from one holder to the next: a holder's end mark -> the next one's start.
    const lockSpans = runs
      .filter((run) => run.kind !== "light")
      .map((run) => spans.get(run.id)!)
      .sort((a, b) => a.start - b.start);
    const handoffs = sortedCopy(lockSpans.slice(1).map((span, i) => span.start - lockSpans[i]!.end));
    const crash = byId.get(ids.get("crash")!)!;
    const crashMs = crash.endedAt! - sentAt.get("crash")!;

    // The serial runners, same commands, same machine, after the server is done (and gone).
    const serial = await serialRunner(tracedTo(runs, trace, serialTrace), dir, true);
    const serialSpans = readTrace(serialTrace);
    const serialMakespan = serial.end - serial.t0;
    const serialWaits = runs.map((run) => serialSpans.get(run.id)!.start - serial.t0);
    const harness = await serialRunner(tracedTo(runs, trace, harnessTrace), dir, false);
    const harnessMakespan = harness.end - harness.t0;

    // Lower bound, from the work as the fail-fast serial runner measured it (one job at a time):
    // the longest run; the exclusive lock's work (every heavy run, and the crash-looping deploy from
    // its first probe failure to the one that makes the loop); all CPU work spread over every core.
    const measured = (kind: Kind) =>
      runs
        .filter((r) => r.kind === kind)
        .map((r) => serialSpans.get(r.id)!.end - serialSpans.get(r.id)!.start);
    const lightWork = measured("light");
    const heavyWork = measured("heavy");
    const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);
    const lockWork = sum(heavyWork) + (SCHED.crash.failures - 1) * SCHED.crash.everyMs;
    const criticalPath = Math.max(...lightWork, ...heavyWork);
    const cpuWorkPerCore = sum(lightWork) / cpus().length;
    const lowerBound = Math.max(lockWork, criticalPath, cpuWorkPerCore);
    const mean = (values: number[]) => sum(values) / values.length;
    figures = {
      "sched.runs": runs.length,
      "sched.light_cpu_iterations": iterations,
      "sched.slipway_makespan_ms": round(slipwayMakespan, 0),
      "sched.serial_makespan_ms": round(serialMakespan, 0),
      "sched.story_harness_makespan_ms": round(harnessMakespan, 0),
      "sched.slipway_mean_wait_ms": round(mean(slipwayWaits), 0),
      "sched.serial_mean_wait_ms": round(mean(serialWaits), 0),
      "sched.slipway_light_mean_wait_ms": round(
        mean(slipwayWaits.filter((_, i) => runs[i]!.kind === "light")),
        0,
      ),
      "sched.slipway_max_wait_ms": round(Math.max(...slipwayWaits), 0),
      "sched.speedup_vs_serial": round(serialMakespan / slipwayMakespan, 2),
      "sched.speedup_ceiling": round(serialMakespan / lowerBound, 2),
      "sched.speedup_vs_story_harness": round(harnessMakespan / slipwayMakespan, 2),
      "sched.critical_path_ms": round(criticalPath, 0),
      "sched.lock_work_ms": round(lockWork, 0),
      "sched.cpu_work_ms": round(sum(lightWork), 0),
      "sched.lower_bound_ms": round(lowerBound, 0),
      "sched.over_lower_bound": round(slipwayMakespan / lowerBound, 3),
      "sched.crash_fail_ms": round(crashMs, 0),
      "sched.lock_handoff_p50_ms": round(percentile(handoffs, 50), 1),
      "sched.lock_handoff_max_ms": round(percentile(handoffs, 100), 1),
      "sched.first_lock_start_ms": round(lockSpans[0]!.start - t0, 0),
      "sched.submit_ms": round(submitMs, 0),
    };
  } finally {
    await server.stop();
  }
  removeDir(dir);
  return figures;
}

// ---- serve ----------------------------------------------------------------------------------------

/** Every run gets its own value of `n`: no two runs of this phase have the same inputs. */
const WAITING = `name: approval
inputs:
  n: { type: number }
jobs:
  approve:
    wait: { signal: go }
`;

/** Signals in flight at once in the wake-up burst. */
const WAKE_IN_FLIGHT = 500;

async function serveWaiting(n: number, woken: number): Promise<Figures> {
  const dir = tempDir("serve");
  const server = await startServer(dir);
  let figures: Figures;
  try {
    const rssIdle = server.rssMb();
    const ids: string[] = new Array(n);
    const t0 = performance.now();
    await pool(ids, 32, async (_, i) => {
      const body = { file: { name: "approval.yml", source: WAITING }, inputs: { n: i } };
      ids[i] = (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
    });
    const submitS = (performance.now() - t0) / 1000;
    await waitForCount(server, "waiting", n, 120_000);
    const parkedS = (performance.now() - t0) / 1000;
    await sleep(1_000);
    const rss = server.rssMb();
    const hwm = server.rssMb("VmHWM");

    // Two bursts, each of `woken` runs spread over the submission order: the first on new
    // connections (500 opened at once), the second on the same connections, kept alive.
    const step = Math.floor(n / woken);
    const burst = async (offset: number) => {
      const chosen = Array.from({ length: woken }, (_, i) => ids[i * step + offset]!);
      const sentAt = new Map<string, number>();
      const w0 = performance.now();
      await pool(chosen, WAKE_IN_FLIGHT, async (id) => {
        sentAt.set(id, epochNow());
        await server.json("POST", `/runs/${id}/signals/go`, {});
      });
      const sendMs = performance.now() - w0;
      const completed = await waitForCount(server, "completed", woken * (offset + 1), 120_000);
      const allMs = performance.now() - w0;
      const latency: number[] = [];
      for (const run of completed) {
        const sent = sentAt.get(run.id);
        if (sent !== undefined) latency.push(run.endedAt! - sent);
      }
      if (latency.length !== woken) throw new Error(`serve: ${latency.length}/${woken} woken runs completed`);
      return { sorted: sortedCopy(latency), sendMs, allMs };
    };
    const cold = await burst(0);
    const warm = await burst(1);
    const floor = sortedCopy(await connectFloor(woken));
    figures = {
      "serve.runs": n,
      "serve.submit_10k_s": round(submitS, 1),
      "serve.submit_per_s": round(n / submitS, 0),
      "serve.all_waiting_s": round(parkedS, 1),
      "serve.idle_rss_mb": round(rssIdle, 1),
      "serve.waiting_rss_mb": round(rss, 1),
      "serve.peak_rss_mb": round(hwm, 1),
      "serve.woken": woken,
      "serve.wake_in_flight": WAKE_IN_FLIGHT,
      "serve.wake_burst_p50_ms": round(percentile(warm.sorted, 50), 1),
      "serve.wake_burst_p99_ms": round(percentile(warm.sorted, 99), 1),
      "serve.wake_burst_max_ms": round(percentile(warm.sorted, 100), 1),
      "serve.wake_send_ms": round(warm.sendMs, 0),
      "serve.wake_all_done_ms": round(warm.allMs, 0),
      "serve.wake_burst_cold_p50_ms": round(percentile(cold.sorted, 50), 1),
      "serve.wake_burst_cold_p99_ms": round(percentile(cold.sorted, 99), 1),
      "serve.wake_burst_cold_max_ms": round(percentile(cold.sorted, 100), 1),
      "serve.connect_floor_p50_ms": round(percentile(floor, 50), 1),
      "serve.connect_floor_p99_ms": round(percentile(floor, 99), 1),
    };
  } finally {
    await server.stop();
  }
  removeDir(dir);
  return figures;
}

/** A bare Node HTTP server: answers every request with the time its handler was called. */
const BARE_SERVER = `
const server = require("node:http").createServer((req, res) => {
  const at = Date.now();
  req.resume();
  req.on("end", () => res.end(String(at)));
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
`;

/**
 * The wake burst's shape against a bare Node HTTP server (a child process, as the server is): `n`
 * POSTs, 500 in flight on new connections; per request, sent -> its handler called. What opening
 * 500 connections at once costs on this machine, whatever the server does.
 */
async function connectFloor(n: number): Promise<number[]> {
  const child = spawn(process.execPath, ["-e", BARE_SERVER], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<string>((resolve) =>
      child.stdout.once("data", (data: Buffer) => resolve(String(data).trim())),
    );
    const delays: number[] = [];
    await pool(Array.from({ length: n }), WAKE_IN_FLIGHT, async () => {
      const sent = epochNow();
      const response = await httpRequest(`http://127.0.0.1:${port}/`, { method: "POST", body: "{}" });
      delays.push(Number(response.text) - sent);
    });
    return delays;
  } finally {
    child.kill("SIGKILL");
  }
}

childMain(async () => {
  const mode = process.argv[2];
  if (mode === "sched") return { figures: await sched() };
  if (mode === "serve")
    return {
      figures: await serveWaiting(Number(process.argv[3] ?? 10_000), Number(process.argv[4] ?? 2_000)),
    };
  throw new Error(`unknown mode ${mode}`);
});
