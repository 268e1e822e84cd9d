/** Waits phase (child): memory of many runs parked on a signal, and signal-to-completion latency. */
import { join } from "node:path";
import { Executor, type RunEvent, SqliteStorage } from "slipway";
import {
  approvalSaga,
  childMain,
  type Figures,
  percentile,
  quietLogger,
  removeDir,
  round,
  sleep,
  sortedCopy,
  statsFigures,
  tempDir,
  timedStorage,
  until,
} from "./common.js";

const MB = 1024 * 1024;
const approval = approvalSaga();

async function open(dir: string, timeStorage: boolean) {
  const sqlite = new SqliteStorage({ path: join(dir, "bench.sqlite"), synchronous: "full" });
  const timed = timeStorage ? timedStorage(sqlite) : undefined;
  const storage = timed?.storage ?? sqlite;
  const executor = await Executor.open({
    storage,
    sagas: [approval],
    dataDir: join(dir, "data"),
    logger: quietLogger(),
    recover: false,
  });
  return { storage, executor, stats: timed?.stats };
}

/** Starts `n` runs at once and resolves when all are parked (waiting in storage, none in memory). */
async function park(executor: Executor, n: number): Promise<{ ids: string[]; ms: number }> {
  const t0 = performance.now();
  const handles = await Promise.all(Array.from({ length: n }, () => executor.start(approval, {})));
  await until(() => executor.activeRuns === 0, 120_000, 5);
  const ms = performance.now() - t0;
  const waiting = await executor.storage.listRuns({ statuses: ["waiting"], owner: null });
  if (waiting.length !== n) throw new Error(`expected ${n} waiting runs, found ${waiting.length}`);
  return { ids: handles.map((h) => h.id), ms };
}

function gc(): boolean {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) return false;
  collect();
  return true;
}

async function rss(n: number): Promise<Figures> {
  const dir = tempDir("rss");
  const { executor, storage } = await open(dir, false);
  gc();
  const before = process.memoryUsage();
  const { ms } = await park(executor, n);
  let forced = false;
  for (let i = 0; i < 3; i++) {
    forced = gc();
    await sleep(50);
  }
  const after = process.memoryUsage();
  await executor.close();
  await storage.close();
  removeDir(dir);
  return {
    "waits.runs": n,
    "waits.rss_mb": round(after.rss / MB, 1),
    "waits.rss_before_mb": round(before.rss / MB, 1),
    "waits.heap_used_mb": round(after.heapUsed / MB, 1),
    "waits.heap_used_before_mb": round(before.heapUsed / MB, 1),
    "waits.external_mb": round(after.external / MB, 1),
    "waits.gc_forced": forced ? 1 : 0,
    "waits.park_ms": round(ms, 0),
  };
}

async function signalLatency(n: number): Promise<Figures> {
  const dir = tempDir("signal");
  const { executor, storage, stats } = await open(dir, true);
  const { ids, ms: parkMs } = await park(executor, n);
  stats!.clear();
  const index = new Map(ids.map((id, i) => [id, i]));
  const sentAt = new Float64Array(n);
  const doneAt = new Float64Array(n);
  let done = 0;
  let notCompleted = 0;
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((resolve) => (resolveAll = resolve));
  executor.on((event: RunEvent) => {
    if (
      event.type !== "run:completed" &&
      event.type !== "run:compensated" &&
      event.type !== "run:needs_attention"
    )
      return;
    const i = index.get(event.runId);
    if (i === undefined || doneAt[i] !== 0) return;
    doneAt[i] = performance.now();
    if (event.type !== "run:completed") notCompleted++;
    if (++done === n) resolveAll();
  });
  const t0 = performance.now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < n; i++) {
    sentAt[i] = performance.now();
    sends.push(executor.signal(ids[i]!, "go", { ok: true }));
  }
  const issuedMs = performance.now() - t0;
  await Promise.all(sends);
  const acceptedMs = performance.now() - t0;
  await Promise.race([
    all,
    sleep(120_000).then(() => Promise.reject(new Error(`only ${done}/${n} completed`))),
  ]);
  const allMs = performance.now() - t0;
  if (notCompleted > 0) throw new Error(`${notCompleted} runs ended otherwise than completed`);
  const latency = sortedCopy(Array.from(doneAt, (d, i) => d - sentAt[i]!));
  const figures: Figures = {
    "waits.signal_runs": n,
    "waits.signal_p50_ms": round(percentile(latency, 50), 1),
    "waits.signal_p99_ms": round(percentile(latency, 99), 1),
    "waits.signal_max_ms": round(percentile(latency, 100), 1),
    "waits.signal_issue_ms": round(issuedMs, 1),
    "waits.signal_accepted_ms": round(acceptedMs, 1),
    "waits.signal_all_done_ms": round(allMs, 1),
    "waits.signal_park_ms": round(parkMs, 0),
    ...statsFigures("waits.signal_storage", stats!),
  };
  await executor.close();
  await storage.close();
  removeDir(dir);
  return figures;
}

childMain(async () => {
  const mode = process.argv[2];
  const n = Number(process.argv[3]);
  if (mode === "rss") return { figures: await rss(n) };
  if (mode === "signal") return { figures: await signalLatency(n) };
  throw new Error(`unknown mode ${mode}`);
});
