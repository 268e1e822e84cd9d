/**
 * Server phases (child), each against a real `slipway serve` process over HTTP:
 * - sched: story 3's mixed CI workload (light runs, heavy runs on the exclusive `swarm` lock, one
 *   crash-looping deploy) on Slipway, and the same shell commands on a single serial runner;
 * - serve: 10,000 runs parked on a signal: server RSS, then 2,000 of them signalled, wake-up latency;
 * - api: 200 concurrent submissions of a one-job pipeline: POST sent -> the job's process running.
 */
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  childMain,
  epochNow,
  type Figures,
  percentile,
  removeDir,
  round,
  sleep,
  sortedCopy,
  tempDir,
} from "./common.js";
import { type BenchServer, pool, startServer } from "./server.js";

/** What these phases read of the API's answers (src/runs/schemas.ts). */
interface SubmitResponse {
  id: string;
}
interface RunSummary {
  id: string;
  status: string;
  createdAt: number;
  endedAt: number | null;
}
interface RunDetail extends RunSummary {
  steps: { startedAt: number | null }[];
}

// ---- sched ----------------------------------------------------------------------------------------

/**
 * Time scale of the workload: 1 s here stands for SCALE s of the story's CI (a heavy deploy + test
 * tier of 1.5 s = 2 min, a light run of 0.4 s = 32 s, the harness's 20-min deploy timeout = 15 s).
 */
export const SCHED = {
  scale: 80,
  light: { count: 24, seconds: 0.4 },
  heavy: { count: 6, seconds: 1.5 },
  /** The crash-looping deploy's probe: exits 1 every `everyMs`; Slipway fails it after `failures`. */
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

/** The workload, in submission order: a heavy run every fifth, the crash-looping deploy third. */
function schedRuns(trace: string): SchedRun[] {
  const mark = (what: string) => `echo "\${{ inputs.id }} ${what} $EPOCHREALTIME" >> ${trace}`;
  const sleeper = (seconds: number) => [mark("start"), `sleep ${seconds}`, mark("end")].join("\n");
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
      runs.push({ id: `heavy${heavy++}`, kind: "heavy", run: sleeper(SCHED.heavy.seconds) });
    else runs.push({ id: `light${light++}`, kind: "light", run: sleeper(SCHED.light.seconds) });
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
  if (run.kind !== "light") lines.push("    resources: { locks: [swarm] }");
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

/** `name start|end <epoch s>` lines → name → { start, end } in epoch ms. */
function readTrace(file: string): Map<string, { start: number; end: number }> {
  const spans = new Map<string, { start: number; end: number }>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [name, what, at] = line.split(" ");
    if (!name || !at) continue;
    const span = spans.get(name) ?? { start: Number.NaN, end: Number.NaN };
    span[what as "start" | "end"] = Number(at.replace(",", ".")) * 1000;
    spans.set(name, span);
  }
  return spans;
}

/** One command as the job runs it: bash -e -o pipefail -c, in `cwd`. Resolves with the exit code. */
function bash(script: string, cwd: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-e", "-o", "pipefail", "-c", script], { cwd, stdio: "ignore" });
    child.once("error", reject);
    child.once("exit", (code) => resolve(code ?? 1));
  });
}

/**
 * The story's CI harness: one run at a time, in submission order. The crash-looping deploy's probe
 * is run every `everyMs` until the (scaled) deploy timeout, then its teardown.
 */
/** The expression the pipelines use for the run's id, put in by hand for the serial runner. */
const INPUT_ID = ["$", "{{ inputs.id }}"].join("");

async function serialRunner(runs: readonly SchedRun[], dir: string): Promise<{ t0: number; end: number }> {
  const t0 = epochNow();
  for (const run of runs) {
    const script = run.run.replaceAll(INPUT_ID, run.id);
    if ((await bash(script, dir)) !== 0) throw new Error(`serial: ${run.id} failed`);
    if (run.probe === undefined) continue;
    const deadline = epochNow() + SCHED.crash.timeoutMs;
    while (epochNow() < deadline) {
      if ((await bash(run.probe, dir)) === 0) break;
      await sleep(Math.min(SCHED.crash.everyMs, Math.max(0, deadline - epochNow())));
    }
    await bash(run.undo!.replaceAll(INPUT_ID, run.id), dir);
  }
  return { t0, end: epochNow() };
}

async function sched(): Promise<Figures> {
  const dir = tempDir("sched");
  writeFileSync(join(dir, "slipway.yml"), "locks: { swarm: 1 }\n");
  const trace = join(dir, "trace");
  const serialTrace = join(dir, "serial-trace");
  writeFileSync(trace, "");
  writeFileSync(serialTrace, "");
  const runs = schedRuns(trace);

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
    const crash = byId.get(ids.get("crash")!)!;
    const crashMs = crash.endedAt! - sentAt.get("crash")!;

    // The serial runner, same commands, same machine, after the server is done (and idle).
    const serialRuns = runs.map((run) => ({
      ...run,
      run: run.run.replaceAll(trace, serialTrace),
      ...(run.undo !== undefined && { undo: run.undo.replaceAll(trace, serialTrace) }),
    }));
    const serial = await serialRunner(serialRuns, dir);
    const serialSpans = readTrace(serialTrace);
    const serialMakespan = serial.end - serial.t0;
    const serialWaits = runs.map((run) => serialSpans.get(run.id)!.start - serial.t0);

    // Lower bound: the exclusive lock's nominal work (every heavy sleep, and the crash-looping deploy
    // from its first probe failure to the one that makes the loop), or the longest run.
    const lockWork =
      SCHED.heavy.count * SCHED.heavy.seconds * 1000 + (SCHED.crash.failures - 1) * SCHED.crash.everyMs;
    const criticalPath = Math.max(SCHED.light.seconds, SCHED.heavy.seconds) * 1000;
    const lowerBound = Math.max(lockWork, criticalPath);
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    figures = {
      "sched.runs": runs.length,
      "sched.slipway_makespan_ms": round(slipwayMakespan, 0),
      "sched.serial_makespan_ms": round(serialMakespan, 0),
      "sched.slipway_mean_wait_ms": round(mean(slipwayWaits), 0),
      "sched.serial_mean_wait_ms": round(mean(serialWaits), 0),
      "sched.slipway_light_mean_wait_ms": round(
        mean(slipwayWaits.filter((_, i) => runs[i]!.kind === "light")),
        0,
      ),
      "sched.slipway_max_wait_ms": round(Math.max(...slipwayWaits), 0),
      "sched.speedup_vs_serial": round(serialMakespan / slipwayMakespan, 2),
      "sched.lower_bound_ms": round(lowerBound, 0),
      "sched.over_lower_bound": round(slipwayMakespan / lowerBound, 3),
      "sched.crash_fail_ms": round(crashMs, 0),
      "sched.submit_ms": round(submitMs, 0),
    };
  } finally {
    await server.stop();
  }
  removeDir(dir);
  return figures;
}

// ---- serve ----------------------------------------------------------------------------------------

const WAITING = `name: approval
jobs:
  approve:
    wait: { signal: go }
`;

async function waitForCount(server: BenchServer, status: string, n: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const runs = await server.json<RunSummary[]>("GET", `/runs?status=${status}`);
    if (runs.length >= n) return runs;
    if (Date.now() > deadline) throw new Error(`only ${runs.length}/${n} runs ${status}`);
    await sleep(250);
  }
}

async function serveWaiting(n: number, woken: number): Promise<Figures> {
  const dir = tempDir("serve");
  const server = await startServer(dir);
  let figures: Figures;
  try {
    const rssIdle = server.rssMb();
    const ids: string[] = new Array(n);
    const body = { file: { name: "approval.yml", source: WAITING }, inputs: {} };
    const t0 = performance.now();
    await pool(ids, 32, async (_, i) => {
      ids[i] = (await server.json<SubmitResponse>("POST", "/runs", body, 201)).id;
    });
    const submitS = (performance.now() - t0) / 1000;
    await waitForCount(server, "waiting", n, 120_000);
    const parkedS = (performance.now() - t0) / 1000;
    await sleep(1_000);
    const rss = server.rssMb();
    const hwm = server.rssMb("VmHWM");

    // Every n/woken-th run: spread over the submission order.
    const step = Math.floor(n / woken);
    const chosen = Array.from({ length: woken }, (_, i) => ids[i * step]!);
    const sentAt = new Map<string, number>();
    const w0 = performance.now();
    await pool(chosen, 50, async (id) => {
      sentAt.set(id, epochNow());
      await server.json("POST", `/runs/${id}/signals/go`, {});
    });
    const sendMs = performance.now() - w0;
    const completed = await waitForCount(server, "completed", woken, 120_000);
    const allMs = performance.now() - w0;
    const latency: number[] = [];
    for (const run of completed) {
      const sent = sentAt.get(run.id);
      if (sent !== undefined) latency.push(run.endedAt! - sent);
    }
    if (latency.length !== woken) throw new Error(`serve: ${latency.length}/${woken} woken runs completed`);
    const sorted = sortedCopy(latency);
    figures = {
      "serve.runs": n,
      "serve.submit_10k_s": round(submitS, 1),
      "serve.submit_per_s": round(n / submitS, 0),
      "serve.all_waiting_s": round(parkedS, 1),
      "serve.idle_rss_mb": round(rssIdle, 1),
      "serve.waiting_rss_mb": round(rss, 1),
      "serve.peak_rss_mb": round(hwm, 1),
      "serve.woken": woken,
      "serve.wake_p50_ms": round(percentile(sorted, 50), 1),
      "serve.wake_p99_ms": round(percentile(sorted, 99), 1),
      "serve.wake_max_ms": round(percentile(sorted, 100), 1),
      "serve.wake_send_ms": round(sendMs, 0),
      "serve.wake_all_done_ms": round(allMs, 0),
    };
  } finally {
    await server.stop();
  }
  removeDir(dir);
  return figures;
}

// ---- api ------------------------------------------------------------------------------------------

async function apiLatency(n: number): Promise<Figures> {
  const dir = tempDir("api");
  const trace = join(dir, "trace");
  writeFileSync(trace, "");
  const source = `name: quick
jobs:
  stamp:
    run: echo "$SLIPWAY_RUN_ID start $EPOCHREALTIME" >> ${trace}
`;
  const body = { file: { name: "quick.yml", source }, inputs: {} };
  const server = await startServer(dir);
  let figures: Figures;
  try {
    // Warm-up (not measured): 20 runs of the same pipeline, to their end.
    const warm = await Promise.all(
      Array.from({ length: 20 }, () => server.json<SubmitResponse>("POST", "/runs", body, 201)),
    );
    await waitForCount(server, "completed", warm.length, 30_000);
    const warmIds = new Set(warm.map((w) => w.id));

    const sentAt = new Map<string, number>();
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: n }, async () => {
        const sent = epochNow();
        const { id } = await server.json<SubmitResponse>("POST", "/runs", body, 201);
        sentAt.set(id, sent);
      }),
    );
    const acceptedMs = performance.now() - t0;
    await waitForCount(server, "completed", n + warm.length, 60_000);
    const spans = readTrace(trace);
    const latency: number[] = [];
    for (const [id, sent] of sentAt) latency.push(spans.get(id)!.start - sent);
    if (latency.some(Number.isNaN)) throw new Error("api: a job left no start mark");
    const sorted = sortedCopy(latency);
    if ([...sentAt.keys()].some((id) => warmIds.has(id))) throw new Error("api: a run id came back twice");
    // Where the time goes: POST -> run persisted and started (createdAt), -> its job launched by the
    // engine (the step's startedAt, just before the process is spawned), -> the job's process running.
    const created: number[] = [];
    const launched: number[] = [];
    await pool([...sentAt], 20, async ([id, sent]) => {
      const run = await server.json<RunDetail>("GET", `/runs/${id}`);
      created.push(run.createdAt - sent);
      launched.push(run.steps[0]!.startedAt! - sent);
    });
    const createdSorted = sortedCopy(created);
    const launchedSorted = sortedCopy(launched);
    figures = {
      "api.submit_to_run_started_p50_ms": round(percentile(createdSorted, 50), 1),
      "api.submit_to_run_started_p99_ms": round(percentile(createdSorted, 99), 1),
      "api.submit_to_job_launch_p50_ms": round(percentile(launchedSorted, 50), 1),
      "api.submit_to_job_launch_p99_ms": round(percentile(launchedSorted, 99), 1),
      "api.submissions": n,
      "api.submit_to_start_p50_ms": round(percentile(sorted, 50), 1),
      "api.submit_to_start_p99_ms": round(percentile(sorted, 99), 1),
      "api.submit_to_start_max_ms": round(percentile(sorted, 100), 1),
      "api.all_accepted_ms": round(acceptedMs, 0),
    };
  } finally {
    await server.stop();
  }
  Object.assign(figures, await spawnFloor(n, dir));
  removeDir(dir);
  return figures;
}

/**
 * The floor under api.submit_to_start: this (small) process spawning `n` bash jobs at once, the way
 * the server starts a job (detached, piped output), no server, no HTTP: loop start -> each `$EPOCHREALTIME`.
 */
async function spawnFloor(n: number, dir: string): Promise<Figures> {
  const trace = join(dir, "floor-trace");
  writeFileSync(trace, "");
  const t0 = epochNow();
  const exits: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    const child = spawn(
      "bash",
      ["-e", "-o", "pipefail", "-c", `echo "floor start $EPOCHREALTIME" >> ${trace}`],
      {
        cwd: dir,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout!.resume();
    child.stderr!.resume();
    exits.push(new Promise((resolve) => child.once("exit", resolve)));
  }
  const loopMs = epochNow() - t0;
  await Promise.all(exits);
  const starts = readFileSync(trace, "utf8")
    .trim()
    .split("\n")
    .map((line) => Number(line.split(" ")[2]!.replace(",", ".")) * 1000 - t0);
  const sorted = sortedCopy(starts);
  return {
    "api.spawn_floor_loop_ms": round(loopMs, 0),
    "api.spawn_floor_p50_ms": round(percentile(sorted, 50), 1),
    "api.spawn_floor_p99_ms": round(percentile(sorted, 99), 1),
  };
}

childMain(async () => {
  const mode = process.argv[2];
  if (mode === "sched") return { figures: await sched() };
  if (mode === "serve")
    return {
      figures: await serveWaiting(Number(process.argv[3] ?? 10_000), Number(process.argv[4] ?? 2_000)),
    };
  if (mode === "api") return { figures: await apiLatency(Number(process.argv[3] ?? 200)) };
  throw new Error(`unknown mode ${mode}`);
});
