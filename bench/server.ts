/**
 * A real `slipway serve` process for the server phases: started from dist/ in a temp directory,
 * its URL read from `listening on URL`, called over HTTP with the bearer token, measured from /proc.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { httpRequest, sleep } from "./common.js";

const BIN = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url));
const PROBE = fileURLToPath(new URL("./loop-probe.js", import.meta.url));
const TOKEN = "bench-token";

/** What the bench phases read of the API's answers (src/runs/schemas.ts). */
export interface SubmitResponse {
  id: string;
}
export interface RunSummary {
  id: string;
  name: string | null;
  status: string;
  createdAt: number;
  endedAt: number | null;
}
export interface RunDetail extends RunSummary {
  steps: { job: string; startedAt: number | null; output: Record<string, { launchedAt?: number }> | null }[];
}
/** GET /triggers, as far as the triggers phase reads it (src/triggers/schemas.ts). */
export interface TriggersSummary {
  sources: { name: string; lastPollAt: number | null; outcome: string | null }[];
}

/**
 * A one-job pipeline whose job appends `<mark> start <epoch s>` to `trace` as its first command: how
 * the server phases see a job's process running. `mark` is a shell word (the run id by default);
 * `head` goes before `jobs:` (`on:`, `run-name:`).
 */
export function stampPipelineText(trace: string, options: { mark?: string; head?: string } = {}): string {
  return `name: quick
${options.head ?? ""}jobs:
  stamp:
    run: echo "${options.mark ?? "$SLIPWAY_RUN_ID"} start $EPOCHREALTIME" >> ${trace}
`;
}

/** The stamp pipeline as a `POST /runs` body (same text and inputs every time). */
export function stampPipeline(trace: string): { file: { name: string; source: string }; inputs: object } {
  return { file: { name: "quick.yml", source: stampPipelineText(trace) }, inputs: {} };
}

export interface BenchServer {
  url: string;
  pid: number;
  child: ChildProcess;
  /** A JSON request to `/api/v1<path>`; throws on a status other than `expect`. */
  json<T>(method: string, path: string, body?: unknown, expect?: number): Promise<T>;
  /** Event-loop lag in the server since the last call (the first call starts the window), ms. */
  loopDelay(): Promise<LoopDelay>;
  /** VmRSS (or another /proc/<pid>/status field) of the server process, MB. */
  rssMb(field?: "VmRSS" | "VmHWM"): number;
  /** CPU time the server process has used so far (user + system, all its threads), ms. */
  cpuMs(): number;
  /** SIGTERM, then waits for the exit (a CPU profile, when asked for, is written then). */
  stop(): Promise<void>;
}

export interface LoopDelay {
  samples: number;
  p50: number;
  p99: number;
  max: number;
}

/**
 * Starts `slipway serve --port 0` on a fresh database in `dir` (its working directory), with `extra`
 * arguments and `env` added to this process's environment. With
 * $BENCH_SERVER_PROF=<dir>, the server runs under `node --cpu-prof` and writes its profile there.
 */
export async function startServer(
  dir: string,
  extra: readonly string[] = [],
  env: NodeJS.ProcessEnv = {},
): Promise<BenchServer> {
  const prof = process.env.BENCH_SERVER_PROF;
  const probeFile = join(dir, "loop-delay.json");
  const execArgv = [
    ...(prof ? ["--cpu-prof", "--cpu-prof-dir", prof] : []),
    ...(process.env.BENCH_SERVER_ARGS?.split(" ") ?? []),
    "--import",
    pathToFileURL(PROBE).href,
  ];
  const child = spawn(
    process.execPath,
    [...execArgv, BIN, "serve", "--port", "0", "--db", join(dir, "slipway.db"), "--token", TOKEN, ...extra],
    {
      cwd: dir,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        ...env,
        SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_LOG_LEVEL ?? "warn",
        BENCH_LOOP_PROBE: probeFile,
      },
    },
  );
  let probeSeq = 0;
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    if (stderr.length > 20_000) stderr = stderr.slice(-10_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = await new Promise<string>((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => reject(new Error(`server did not start: ${out}${stderr}`)), 20_000);
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]!);
      }
    });
    child.once("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before listening: ${out}${stderr}`));
    });
  });
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  const pid = child.pid!;
  return {
    url,
    pid,
    child,
    async json<T>(method: string, path: string, body?: unknown, expect = 200): Promise<T> {
      const response = await httpRequest(`${url}/api/v1${path}`, {
        method,
        headers,
        ...(body !== undefined && { body: JSON.stringify(body) }),
        timeoutMs: 120_000,
      });
      if (response.status !== expect)
        throw new Error(
          `${method} ${path}: ${response.status}, expected ${expect}: ${response.text.slice(0, 500)}`,
        );
      return JSON.parse(response.text) as T;
    },
    async loopDelay() {
      const want = ++probeSeq;
      child.kill("SIGUSR2");
      const deadline = Date.now() + 10_000;
      for (;;) {
        if (existsSync(probeFile)) {
          const { seq, ...delay } = JSON.parse(readFileSync(probeFile, "utf8")) as LoopDelay & {
            seq: number;
          };
          if (seq >= want) return delay;
        }
        if (Date.now() > deadline) throw new Error("the server's loop probe did not answer");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    rssMb(field = "VmRSS") {
      const status = readFileSync(`/proc/${pid}/status`, "utf8");
      const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
      if (!match) throw new Error(`no ${field} in /proc/${pid}/status`);
      return Number(match[1]) / 1024;
    },
    cpuMs() {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // utime and stime (fields 14 and 15), in clock ticks: 100 a second on Linux.
      return (Number(fields[11]) + Number(fields[12])) * 10;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
      await exited;
      clearTimeout(killer);
    },
  };
}

/** Calls `fn` for every item with at most `limit` in flight; resolves when all are done. */
/** Polls the list until `n` runs have `status` (a bench's runs settling), or throws after `timeoutMs`. */
export async function waitForCount(server: BenchServer, status: string, n: number, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const runs = await server.json<RunSummary[]>("GET", `/runs?status=${status}`);
    if (runs.length >= n) return runs;
    if (Date.now() > deadline) throw new Error(`only ${runs.length}/${n} runs ${status}`);
    await sleep(100);
  }
}

export async function pool<T>(items: readonly T[], limit: number, fn: (item: T, i: number) => Promise<void>) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
