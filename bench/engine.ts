/** Engine phase (child): throughput and per-action engine overhead of chained no-op actions on SQLite FULL. */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector/promises";
import { join } from "node:path";
import { Executor, type RunEvent, type Saga, SqliteStorage, type Storage } from "slipway";
import {
  type CallStats,
  chainSaga,
  childMain,
  type Figures,
  percentile,
  quietLogger,
  removeDir,
  round,
  sortedCopy,
  statsFigures,
  tempDir,
  timedStorage,
} from "./common.js";

const RUNS = Number(process.env.BENCH_ENGINE_RUNS ?? 500);
const ACTIONS = 10;
/** Runs are short (~150 ms) and noisy on 2 cores: report medians. */
const CLEAN_RUNS = 7;
const INSTRUMENTED_RUNS = 3;
const PROFILED_RUNS = 5;

/** Per-action timestamps (performance.now()), indexed by run * ACTIONS + action. */
interface Marks {
  /** a0: just before start() was called; later actions: their predecessor's completion committed. */
  runnable: Float64Array;
  bodyStart: Float64Array;
  bodyEnd: Float64Array;
  /** `action:completed` published (it is published right after the commit). */
  committed: Float64Array;
}

let marks: Marks | undefined;

const ENDINGS: ReadonlySet<string> = new Set([
  "run:completed",
  "run:compensated",
  "run:cancelled",
  "run:needs_attention",
]);

/** Same saga for every run; the body writes two timestamps only while `marks` is set. */
const chain: Saga = chainSaga("chain", ACTIONS, (idx, action) => {
  if (marks) {
    const i = idx * ACTIONS + action;
    marks.bodyStart[i] = performance.now();
    marks.bodyEnd[i] = performance.now();
  }
  return undefined;
});

interface RunResult {
  wallMs: number;
  stats?: Map<string, CallStats>;
  marks?: Marks;
  completed: number;
}

/**
 * One measured run: fresh SQLite file (synchronous=FULL), fresh executor, RUNS started at once.
 * Wall time runs from just before the first start() to the last `run:completed` event.
 */
async function run(options: {
  instrument: boolean;
  timeStorage: boolean;
  runs: number;
  /** CPU-profile the measured window (first start() to last completion) into this file. */
  profile?: { session: Session; path: string };
}): Promise<RunResult> {
  const dir = tempDir("engine");
  const sqlite = new SqliteStorage({ path: join(dir, "bench.sqlite"), synchronous: "full" });
  const timed = options.timeStorage ? timedStorage(sqlite) : undefined;
  const storage: Storage = timed?.storage ?? sqlite;
  const executor = await Executor.open({
    storage,
    sagas: [chain],
    dataDir: join(dir, "data"),
    logger: quietLogger(),
    recover: false,
  });
  const n = options.runs;
  const ids = Array.from({ length: n }, () => executor.newRunId());
  const index = new Map(ids.map((id, i) => [id, i]));
  let completed = 0;
  let failed = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let doneAt = 0;
  const m = options.instrument
    ? {
        runnable: new Float64Array(n * ACTIONS),
        bodyStart: new Float64Array(n * ACTIONS),
        bodyEnd: new Float64Array(n * ACTIONS),
        committed: new Float64Array(n * ACTIONS),
      }
    : undefined;
  const stop = executor.on((event: RunEvent) => {
    if (m && event.type === "action:completed") {
      const i = index.get(event.runId)! * ACTIONS + Number(event.action!.slice(1));
      const now = performance.now();
      m.committed[i] = now;
      if (i % ACTIONS < ACTIONS - 1) m.runnable[i + 1] = now;
    } else if (ENDINGS.has(event.type)) {
      if (event.type !== "run:completed") failed++;
      if (++completed === n) {
        doneAt = performance.now();
        resolveDone();
      }
    }
  });
  marks = m;
  if (options.profile) await options.profile.session.post("Profiler.start");
  const t0 = performance.now();
  const starts: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    if (m) m.runnable[i * ACTIONS] = performance.now();
    starts.push(executor.start(chain, { idx: i }, { id: ids[i]! }));
  }
  await Promise.all(starts);
  await done;
  const wallMs = doneAt - t0;
  marks = undefined;
  if (options.profile) {
    const { profile } = await options.profile.session.post("Profiler.stop");
    writeFileSync(options.profile.path, JSON.stringify(profile));
  }
  stop();
  await executor.close();
  await storage.close();
  removeDir(dir);
  if (failed > 0) throw new Error(`${failed} runs did not complete`);
  const result: RunResult = { wallMs, completed };
  if (timed) result.stats = timed.stats;
  if (m) result.marks = m;
  return result;
}

/** The run with the median wall time. */
function median(results: RunResult[]): RunResult {
  return [...results].sort((x, y) => x.wallMs - y.wallMs)[Math.floor(results.length / 2)]!;
}

function overheadFigures(m: Marks): Figures {
  const total = new Float64Array(m.runnable.length);
  const pre = new Float64Array(m.runnable.length);
  const post = new Float64Array(m.runnable.length);
  const firstPre: number[] = [];
  for (let i = 0; i < total.length; i++) {
    pre[i] = m.bodyStart[i]! - m.runnable[i]!;
    post[i] = m.committed[i]! - m.bodyEnd[i]!;
    total[i] = pre[i]! + post[i]!;
    if (i % ACTIONS === 0) firstPre.push(pre[i]!);
  }
  const t = sortedCopy(total);
  const a = sortedCopy(pre);
  const b = sortedCopy(post);
  const f = sortedCopy(firstPre);
  return {
    "engine.overhead_p50_ms": round(percentile(t, 50), 3),
    "engine.overhead_p99_ms": round(percentile(t, 99), 3),
    "engine.overhead_max_ms": round(percentile(t, 100), 3),
    "engine.overhead_pre_body_p50_ms": round(percentile(a, 50), 3),
    "engine.overhead_pre_body_p99_ms": round(percentile(a, 99), 3),
    "engine.overhead_post_body_p50_ms": round(percentile(b, 50), 3),
    "engine.overhead_post_body_p99_ms": round(percentile(b, 99), 3),
    "engine.first_action_pre_body_p50_ms": round(percentile(f, 50), 3),
    "engine.first_action_pre_body_p99_ms": round(percentile(f, 99), 3),
  };
}

/** CPU profiles of PROFILED_RUNS more clean runs, each covering only its measured window, sampled every 100 µs. */
async function profiledRuns(dir: string): Promise<{ wallMs: number[]; paths: string[] }> {
  const session = new Session();
  session.connect();
  await session.post("Profiler.enable");
  await session.post("Profiler.setSamplingInterval", { interval: 100 });
  const wallMs: number[] = [];
  const paths: string[] = [];
  for (let r = 0; r < PROFILED_RUNS; r++) {
    const path = join(dir, `engine-run${r + 1}.cpuprofile`);
    const result = await run({
      instrument: false,
      timeStorage: false,
      runs: RUNS,
      profile: { session, path },
    });
    wallMs.push(result.wallMs);
    paths.push(path);
  }
  await session.post("Profiler.disable");
  session.disconnect();
  return { wallMs, paths };
}

childMain(async () => {
  const profileDir = process.argv[2];
  const actions = RUNS * ACTIONS;
  // Warm-up (JIT, SQLite, fs caches) on its own file; not reported.
  await run({ instrument: false, timeStorage: false, runs: 100 });
  await run({ instrument: false, timeStorage: false, runs: RUNS });

  const series = async (count: number, options: { instrument: boolean; timeStorage: boolean }) => {
    const results: RunResult[] = [];
    for (let r = 0; r < count; r++) results.push(await run({ ...options, runs: RUNS }));
    return results;
  };
  const clean = await series(CLEAN_RUNS, { instrument: false, timeStorage: false });
  const sortedWall = clean.map((r) => r.wallMs).sort((x, y) => x - y);
  const medianWall = median(clean).wallMs;
  const instrumented = median(await series(INSTRUMENTED_RUNS, { instrument: true, timeStorage: false }));
  const storageTimed = median(await series(INSTRUMENTED_RUNS, { instrument: false, timeStorage: true }));

  const figures: Figures = {
    "engine.runs": RUNS,
    "engine.actions": actions,
    "engine.actions_per_s": Math.round(actions / (medianWall / 1000)),
    "engine.wall_ms": round(medianWall, 1),
    "engine.wall_runs_ms.min": round(sortedWall[0]!, 1),
    "engine.wall_runs_ms.max": round(sortedWall.at(-1)!, 1),
    "engine.instrumented_actions_per_s": Math.round(actions / (instrumented.wallMs / 1000)),
    ...overheadFigures(instrumented.marks!),
    "engine.storage_timed_actions_per_s": Math.round(actions / (storageTimed.wallMs / 1000)),
    ...statsFigures("engine.storage", storageTimed.stats!),
  };
  const commit = storageTimed.stats!.get("commit");
  if (commit) {
    figures["engine.storage.commit_share_of_wall"] = round(commit.syncMs / storageTimed.wallMs, 3);
    figures["engine.storage.commit.avg_batch"] = round(commit.items / commit.calls, 1);
    figures["engine.storage.commit.avg_ms"] = round(commit.syncMs / commit.calls, 3);
  }
  const notes: string[] = [];
  if (profileDir) {
    const { wallMs, paths } = await profiledRuns(profileDir);
    const sorted = wallMs.sort((x, y) => x - y);
    figures["engine.profiled_actions_per_s"] = Math.round(
      actions / (sorted[Math.floor(sorted.length / 2)]! / 1000),
    );
    notes.push(`cpu profiles of ${paths.length} clean runs (measured window only): ${paths.join(", ")}`);
  }
  return { figures, notes };
});
