/**
 * API phases (child), against a real `slipway serve` process over HTTP, each beside the floor it is
 * compared to, measured in the same child:
 * - api: one submission at a time (POST /runs -> the job's process running) beside one process started
 *   from this bare Node process; then 200 submissions at once beside 200 processes started at once;
 * - load: clients looping over submit, list, show and logs for a while; latency, errors, and the
 *   server's event-loop lag.
 */
import { spawn } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  childMain,
  epochNow,
  type Figures,
  grown,
  httpRequest,
  percentile,
  readTrace,
  removeDir,
  round,
  sleep,
  sortedCopy,
  tempDir,
} from "./common.js";
import {
  pool,
  type RunDetail,
  type RunSummary,
  type SubmitResponse,
  stampPipeline,
  startServer,
  waitForCount,
} from "./server.js";

async function apiLatency(burst: number, single: number): Promise<Figures> {
  const dir = tempDir("api");
  const trace = join(dir, "trace");
  writeFileSync(trace, "");
  const body = stampPipeline(trace);
  const server = await startServer(dir);
  const figures: Figures = {};
  try {
    // Warm-up (not measured): 20 runs of the same pipeline, to their end.
    const warm = await Promise.all(
      Array.from({ length: 20 }, () => server.json<SubmitResponse>("POST", "/runs", body, 201)),
    );
    await waitForCount(server, "completed", warm.length, 60_000);
    let done = warm.length;

    // One at a time: POST -> the job's start mark; the next POST once that run has completed.
    const singleLatency: number[] = [];
    const singleSent = new Map<string, number>();
    for (let i = 0; i < single; i++) {
      const size = statSync(trace).size;
      const sent = epochNow();
      const { id } = await server.json<SubmitResponse>("POST", "/runs", body, 201);
      singleSent.set(id, sent);
      await grown(trace, size, 30_000);
      for (;;) {
        const run = await server.json<RunSummary>("GET", `/runs/${id}`);
        if (run.endedAt !== null) break;
        await sleep(2);
      }
      done++;
    }
    const spans = readTrace(trace);
    for (const [id, sent] of singleSent) singleLatency.push(spans.get(id)!.start - sent);
    const singleSorted = sortedCopy(singleLatency);

    // A burst: `burst` POSTs at once.
    const sentAt = new Map<string, number>();
    const cpuBefore = serverCpuMs(server.pid);
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: burst }, async () => {
        const sent = epochNow();
        const { id } = await server.json<SubmitResponse>("POST", "/runs", body, 201);
        sentAt.set(id, sent);
      }),
    );
    const acceptedMs = performance.now() - t0;
    await waitForCount(server, "completed", burst + done, 120_000);
    const cpuAfter = serverCpuMs(server.pid);
    const burstSpans = readTrace(trace);
    const latency: number[] = [];
    for (const [id, sent] of sentAt) latency.push(burstSpans.get(id)!.start - sent);
    if (latency.some(Number.isNaN)) throw new Error("api: a job left no start mark");
    const sorted = sortedCopy(latency);
    // Where the time goes: POST -> run persisted and started (createdAt), -> its job's process spawned
    // by the server (the step result's launchedAt), -> the job's process running (its own mark).
    const created: number[] = [];
    const launched: number[] = [];
    await pool([...sentAt], 20, async ([id, sent]) => {
      const run = await server.json<RunDetail>("GET", `/runs/${id}`);
      created.push(run.createdAt - sent);
      const step = run.steps[0]!;
      const at = step.output?.[step.job]?.launchedAt;
      if (at === undefined) throw new Error(`api: run ${id} has no launchedAt`);
      launched.push(at - sent);
    });
    const createdSorted = sortedCopy(created);
    const launchedSorted = sortedCopy(launched);
    Object.assign(figures, {
      "api.single_submissions": single,
      "api.single_start_p50_ms": round(percentile(singleSorted, 50), 1),
      "api.single_start_p99_ms": round(percentile(singleSorted, 99), 1),
      "api.submissions": burst,
      "api.submit_to_run_started_p50_ms": round(percentile(createdSorted, 50), 1),
      "api.submit_to_run_started_p99_ms": round(percentile(createdSorted, 99), 1),
      "api.submit_to_job_launch_p50_ms": round(percentile(launchedSorted, 50), 1),
      "api.submit_to_job_launch_p99_ms": round(percentile(launchedSorted, 99), 1),
      "api.submit_to_start_p50_ms": round(percentile(sorted, 50), 1),
      "api.submit_to_start_p99_ms": round(percentile(sorted, 99), 1),
      "api.submit_to_start_max_ms": round(percentile(sorted, 100), 1),
      "api.all_accepted_ms": round(acceptedMs, 0),
      "api.burst_cpu_per_run_ms": round((cpuAfter.all - cpuBefore.all) / burst, 2),
      "api.burst_main_thread_cpu_per_run_ms": round((cpuAfter.main - cpuBefore.main) / burst, 2),
    });
  } finally {
    await server.stop();
  }
  // The floors, in this same process once the server is gone.
  Object.assign(figures, await singleSpawnFloor(single, dir), await spawnFloor(burst, dir));
  figures["api.single_start_p50_over_floor_ms"] = round(
    figures["api.single_start_p50_ms"]! - figures["api.single_spawn_floor_ms"]!,
    1,
  );
  figures["api.single_start_p99_over_floor_ms"] = round(
    figures["api.single_start_p99_ms"]! - figures["api.single_spawn_floor_ms"]!,
    1,
  );
  figures["api.burst_over_floor"] = round(
    figures["api.submit_to_start_p99_ms"]! / figures["api.spawn_floor_p99_ms"]!,
    2,
  );
  removeDir(dir);
  return figures;
}

/** CPU time (user + system) of a process, all its threads and its main thread alone, ms (Linux /proc). */
function serverCpuMs(pid: number): { all: number; main: number } {
  const ticks = (stat: string) => {
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return Number(fields[11]) + Number(fields[12]);
  };
  const msPerTick = 1000 / 100; // USER_HZ
  return {
    all: ticks(readFileSync(`/proc/${pid}/stat`, "utf8")) * msPerTick,
    main: ticks(readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8")) * msPerTick,
  };
}

/** A job the way the server starts one (bash -e -o pipefail -c, detached, piped), writing its start mark. */
function spawnJob(trace: string, dir: string): Promise<unknown> {
  const child = spawn(
    "bash",
    ["-e", "-o", "pipefail", "-c", `echo "floor start $EPOCHREALTIME" >> ${trace}`],
    { cwd: dir, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  child.stdout!.resume();
  child.stderr!.resume();
  return new Promise((resolve) => child.once("exit", resolve));
}

function startMarks(trace: string): number[] {
  return readFileSync(trace, "utf8")
    .trim()
    .split("\n")
    .map((line) => Number(line.split(" ")[2]!.replace(",", ".")) * 1000);
}

/** One job at a time from this process (no server, no HTTP): spawn() called -> its start mark. */
async function singleSpawnFloor(n: number, dir: string): Promise<Figures> {
  const trace = join(dir, "single-floor-trace");
  writeFileSync(trace, "");
  const called: number[] = [];
  for (let i = 0; i < n; i++) {
    called.push(epochNow());
    await spawnJob(trace, dir);
  }
  const marks = startMarks(trace);
  const sorted = sortedCopy(marks.map((mark, i) => mark - called[i]!));
  return {
    "api.single_spawn_floor_ms": round(percentile(sorted, 50), 1),
    "api.single_spawn_floor_p99_ms": round(percentile(sorted, 99), 1),
  };
}

/**
 * The floor under api.submit_to_start: this (small) process spawning `n` jobs at once, no server, no
 * HTTP: loop start -> each job's start mark.
 */
async function spawnFloor(n: number, dir: string): Promise<Figures> {
  const trace = join(dir, "floor-trace");
  writeFileSync(trace, "");
  const t0 = epochNow();
  const exits: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) exits.push(spawnJob(trace, dir));
  const loopMs = epochNow() - t0;
  await Promise.all(exits);
  const sorted = sortedCopy(startMarks(trace).map((mark) => mark - t0));
  return {
    "api.spawn_floor_loop_ms": round(loopMs, 0),
    "api.spawn_floor_p50_ms": round(percentile(sorted, 50), 1),
    "api.spawn_floor_p99_ms": round(percentile(sorted, 99), 1),
  };
}

// ---- load -----------------------------------------------------------------------------------------

/** A request the load counts as failed: a 5xx, a refused or broken connection, or no answer within this. */
const LOAD_TIMEOUT_MS = 10_000;

type Op = "submit" | "list" | "show" | "logs";
const OPS: readonly Op[] = ["submit", "list", "show", "logs"];

async function load(clients: number, seconds: number): Promise<Figures> {
  const dir = tempDir("load");
  const trace = join(dir, "trace");
  writeFileSync(trace, "");
  const body = JSON.stringify(stampPipeline(trace));
  const server = await startServer(dir);
  const figures: Figures = {};
  try {
    const headers = { authorization: "Bearer bench-token", "content-type": "application/json" };
    // Runs to show and read logs of before a client has submitted its own.
    const seed = await Promise.all(
      Array.from({ length: 20 }, () =>
        server.json<SubmitResponse>("POST", "/runs", JSON.parse(body) as object, 201),
      ),
    );
    await waitForCount(server, "completed", seed.length, 60_000);
    const known = seed.map((s) => s.id);

    const latency: Record<Op, number[]> = { submit: [], list: [], show: [], logs: [] };
    const errors: Record<string, number> = { "5xx": 0, refused: 0, timeout: 0, other4xx: 0 };
    const request = async (op: Op): Promise<void> => {
      const id = known[Math.floor(Math.random() * known.length)]!;
      const [method, path] =
        op === "submit"
          ? ["POST", "/runs"]
          : op === "list"
            ? ["GET", "/runs?limit=50"]
            : op === "show"
              ? ["GET", `/runs/${id}`]
              : ["GET", `/runs/${id}/logs`];
      const started = performance.now();
      try {
        const response = await httpRequest(`${server.url}/api/v1${path}`, {
          method,
          headers,
          ...(method === "POST" && { body }),
          timeoutMs: LOAD_TIMEOUT_MS,
        });
        const text = response.text;
        latency[op].push(performance.now() - started);
        if (response.status >= 500) errors["5xx"]!++;
        else if (response.status >= 400) errors.other4xx!++;
        else if (op === "submit") known.push((JSON.parse(text) as SubmitResponse).id);
      } catch (error) {
        const name = (error as Error).name;
        if (name === "TimeoutError" || name === "AbortError") {
          errors.timeout!++;
          latency[op].push(LOAD_TIMEOUT_MS);
        } else errors.refused!++;
      }
    };

    await server.loopDelay(); // starts the window
    const cpuBefore = server.cpuMs();
    const end = performance.now() + seconds * 1000;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, async (_, client) => {
        // Each client goes round the four in turn, starting at a different one.
        for (let i = client; performance.now() < end; i++) await request(OPS[i % OPS.length]!);
      }),
    );
    const elapsedS = (performance.now() - t0) / 1000;
    const lag = await server.loopDelay();
    const cpuMs = server.cpuMs() - cpuBefore;
    const all = sortedCopy(Object.values(latency).flat());
    const total = all.length;
    const failed = errors["5xx"]! + errors.refused! + errors.timeout!;
    Object.assign(figures, {
      "api.load_clients": clients,
      "api.load_seconds": round(elapsedS, 1),
      "api.load_requests": total,
      "api.load_requests_per_s": round(total / elapsedS, 0),
      "api.load_p50_ms": round(percentile(all, 50), 1),
      "api.load_p99_ms": round(percentile(all, 99), 1),
      "api.load_max_ms": round(percentile(all, 100), 1),
      "api.load_errors": failed,
      "api.load_errors_5xx": errors["5xx"]!,
      "api.load_errors_refused": errors.refused!,
      "api.load_errors_timeout": errors.timeout!,
      "api.load_4xx": errors.other4xx!,
      // The server's own CPU per request answered: what the load costs it, whatever else the machine runs.
      "serve.load_cpu_ms_per_request": round(cpuMs / total, 2),
      "serve.event_loop_lag_p50_ms": lag.p50,
      "serve.event_loop_lag_p99_ms": lag.p99,
      "serve.event_loop_lag_max_ms": lag.max,
    });
    for (const op of OPS) {
      const sorted = sortedCopy(latency[op]);
      figures[`api.load_${op}_p50_ms`] = round(percentile(sorted, 50), 1);
      figures[`api.load_${op}_p99_ms`] = round(percentile(sorted, 99), 1);
    }
  } finally {
    await server.stop();
  }
  removeDir(dir);
  return figures;
}

childMain(async () => {
  const mode = process.argv[2];
  if (mode === "api")
    return {
      figures: await apiLatency(Number(process.argv[3] ?? 200), Number(process.argv[4] ?? 100)),
    };
  if (mode === "load")
    return {
      figures: await load(Number(process.argv[3] ?? 200), Number(process.env.BENCH_LOAD_SECONDS ?? 60)),
    };
  throw new Error(`unknown mode ${mode}`);
});
