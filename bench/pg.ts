/**
 * PostgreSQL phase (child): the engine workload (500 runs x 10 chained no-op actions, started at once)
 * on PostgresStorage, one executor, every commit durable (fsync on, synchronous_commit on), against a
 * throwaway cluster on this machine; the same with 2 and 4 worker processes; the same cluster's
 * one-client commit rate as the floor; 2,000 parked runs signalled through a worker that holds none;
 * and kill -9 of one of two workers holding 200 running runs, timed by the lease alone.
 */
import type { ChildProcess } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { Executor, PostgresStorage, type RunEvent } from "slipway";
import { freshDatabase, startPostgres } from "slipway/testing";
import {
  chainSaga,
  childMain,
  epochNow,
  type Figures,
  percentile,
  quietLogger,
  removeDir,
  round,
  sleep,
  sortedCopy,
  startChild,
  tempDir,
} from "./common.js";
import type { WorkerCommand, WorkerMessage } from "./pg-worker.js";

const RUNS = Number(process.env.BENCH_PG_RUNS ?? 500);
const ACTIONS = 10;
const MEASURED = 5;
const FLOOR_MS = 2_000;
/** Measured rounds per worker count (each on a fresh database, with fresh worker processes). */
const WORKER_ROUNDS = 3;
const SIGNAL_RUNS = Number(process.env.BENCH_PG_SIGNAL_RUNS ?? 2_000);
/** Signals in flight at once (as the serve phase's wake burst). */
const SIGNAL_IN_FLIGHT = 500;
const FAILOVER_RUNS = 200;
/** The executor's default lease and heartbeat, which the failover workers keep. */
const LEASE_MS = 10_000;
const HEARTBEAT_MS = 2_000;

const chain = chainSaga("chain", ACTIONS, () => undefined);

const ENDINGS: ReadonlySet<string> = new Set([
  "run:completed",
  "run:compensated",
  "run:cancelled",
  "run:needs_attention",
]);

/** One measured run on a fresh database; wall time from the first start() to the last ending event. */
async function run(
  serverUrl: string,
  label: string,
): Promise<{ wallMs: number; commits: number; transitions: number }> {
  const url = await freshDatabase(serverUrl, label);
  const dir = tempDir("pg");
  const storage = new PostgresStorage({ url });
  let commits = 0;
  let transitions = 0;
  const commit = storage.commit.bind(storage);
  storage.commit = (batch) => {
    commits++;
    transitions += batch.length;
    return commit(batch);
  };
  const executor = await Executor.open({
    storage,
    sagas: [chain],
    dataDir: join(dir, "data"),
    logger: quietLogger(),
    recover: false,
  });
  let ended = 0;
  let failed = 0;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((resolve) => (resolveDone = resolve));
  let doneAt = 0;
  const stop = executor.on((event: RunEvent) => {
    if (!ENDINGS.has(event.type)) return;
    if (event.type !== "run:completed") failed++;
    if (++ended === RUNS) {
      doneAt = performance.now();
      resolveDone();
    }
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: RUNS }, (_, i) => executor.start(chain, { idx: i })));
  await done;
  stop();
  await executor.close();
  await storage.close();
  removeDir(dir);
  if (failed > 0) throw new Error(`${failed} runs did not complete`);
  return { wallMs: doneAt - t0, commits, transitions };
}

/** Single-row INSERT + COMMIT from one client, back to back, for FLOOR_MS: what one commit costs here. */
async function commitFloor(serverUrl: string): Promise<number> {
  const client = new pg.Client({ connectionString: await freshDatabase(serverUrl, "floor") });
  await client.connect();
  try {
    await client.query("CREATE TABLE t (id serial PRIMARY KEY, v text)");
    let n = 0;
    const t0 = performance.now();
    while (performance.now() - t0 < FLOOR_MS) {
      await client.query("INSERT INTO t (v) VALUES ('x')");
      n++;
    }
    return n / ((performance.now() - t0) / 1000);
  } finally {
    await client.end();
  }
}

// ---- worker processes ----------------------------------------------------------------------------

interface Worker {
  child: ChildProcess;
  /** Messages not yet taken, by type. */
  next(type: WorkerMessage["type"], timeoutMs?: number): Promise<WorkerMessage>;
  send(command: WorkerCommand): void;
  exited: Promise<void>;
}

function startWorker(args: string[]): Worker {
  const child = startChild("pg-worker", args);
  const inbox: WorkerMessage[] = [];
  let changed: () => void = () => {};
  let failure: string | undefined;
  child.on("message", (message: WorkerMessage) => {
    if (message.type === "error") failure = message.message;
    inbox.push(message);
    changed();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  void exited.then(() => changed());
  return {
    child,
    exited,
    send: (command) => child.send(command),
    async next(type, timeoutMs = 120_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const at = inbox.findIndex((m) => m.type === type);
        if (at >= 0) return inbox.splice(at, 1)[0]!;
        if (failure) throw new Error(`pg worker ${args[0]} failed: ${failure}`);
        if (child.exitCode !== null || child.signalCode !== null)
          throw new Error(`pg worker ${args[0]} exited (${child.signalCode ?? child.exitCode})`);
        if (Date.now() > deadline) throw new Error(`pg worker ${args[0]}: no ${type} within ${timeoutMs} ms`);
        await Promise.race([new Promise<void>((resolve) => (changed = resolve)), sleep(1_000)]);
      }
    },
  };
}

async function stopWorkers(workers: Worker[]): Promise<void> {
  for (const w of workers)
    if (w.child.exitCode === null && w.child.signalCode === null) w.send({ type: "close" });
  await Promise.race([Promise.all(workers.map((w) => w.exited)), sleep(15_000)]);
  for (const w of workers)
    if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill("SIGKILL");
}

/** A count from the runs table, read beside the workers. */
async function count(client: pg.Client, where: string): Promise<number> {
  return Number((await client.query(`SELECT count(*) AS n FROM runs WHERE ${where}`)).rows[0].n);
}

async function untilCount(client: pg.Client, where: string, n: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while ((await count(client, where)) < n) {
    if (Date.now() > deadline)
      throw new Error(`pg: fewer than ${n} runs where ${where} after ${timeoutMs} ms`);
    await sleep(20);
  }
}

/**
 * The engine workload split over `n` worker processes on one fresh database, each starting its share
 * when told; wall = the first start() in any worker -> the last run ended in any worker.
 */
async function workersRound(serverUrl: string, n: number, label: string): Promise<number> {
  const url = await freshDatabase(serverUrl, label);
  const dir = tempDir("pg-workers");
  const share = Math.ceil(RUNS / n);
  const workers = Array.from({ length: n }, (_, i) =>
    startWorker(["chain", url, dir, String(i * share), String(Math.min(share, RUNS - i * share))]),
  );
  try {
    for (const w of workers) await w.next("ready");
    for (const w of workers) w.send({ type: "go" });
    const results = [];
    for (const w of workers) results.push(await w.next("finished"));
    let first = Number.POSITIVE_INFINITY;
    let last = 0;
    for (const r of results) {
      if (r.type !== "finished") continue;
      if (r.failed > 0) throw new Error(`pg: ${r.failed} runs did not complete`);
      first = Math.min(first, r.firstStart);
      last = Math.max(last, r.lastEnd);
    }
    return last - first;
  } finally {
    await stopWorkers(workers);
    removeDir(dir);
  }
}

async function workersFigures(serverUrl: string, n: number): Promise<Figures> {
  const walls: number[] = [];
  for (let i = 0; i < WORKER_ROUNDS; i++) walls.push(await workersRound(serverUrl, n, `w${n}r${i}`));
  walls.sort((a, b) => a - b);
  const median = walls[Math.floor(walls.length / 2)]!;
  return {
    [`pg.actions_per_s_${n}w`]: Math.round((RUNS * ACTIONS) / (median / 1000)),
    [`pg.wall_ms_${n}w`]: round(median, 1),
  };
}

/**
 * 2,000 approval runs parked by two workers (each starts and wakes its half), signalled through a
 * third that holds none, 500 in flight; per run, signal() called -> the run's endedAt (stamped by the
 * worker that completed it).
 */
async function signalFigures(serverUrl: string): Promise<Figures> {
  const url = await freshDatabase(serverUrl, "signal");
  const dir = tempDir("pg-signal");
  const client = new pg.Client({ connectionString: url });
  const half = SIGNAL_RUNS / 2;
  const holders = [0, 1].map(() => startWorker(["hold", url, dir, String(half)]));
  const signaller = startWorker(["signal", url, dir]);
  const workers = [...holders, signaller];
  try {
    for (const w of workers) await w.next("ready");
    await client.connect();
    // Parked: waiting and out of every worker's memory.
    await untilCount(client, "status = 'waiting' AND owner IS NULL", SIGNAL_RUNS, 120_000);
    const ids = (await client.query("SELECT id FROM runs ORDER BY id")).rows.map((r) => r.id as string);
    const t0 = epochNow();
    signaller.send({ type: "signal", ids, inFlight: SIGNAL_IN_FLIGHT });
    const sent = await signaller.next("sent");
    const sentMs = epochNow() - t0;
    await untilCount(client, "status = 'completed'", SIGNAL_RUNS, 120_000);
    const allMs = epochNow() - t0;
    const ended = new Map<string, number>(
      (await client.query("SELECT id, ended_at FROM runs")).rows.map((r) => [r.id, Number(r.ended_at)]),
    );
    const latency = sent.type === "sent" ? sent.sent.map(([id, at]) => ended.get(id)! - at) : [];
    if (latency.length !== SIGNAL_RUNS) throw new Error(`pg: ${latency.length}/${SIGNAL_RUNS} signals sent`);
    const sorted = sortedCopy(latency);
    return {
      "pg.signal_runs": SIGNAL_RUNS,
      "pg.signal_in_flight": SIGNAL_IN_FLIGHT,
      "pg.signal_p50_ms": round(percentile(sorted, 50), 1),
      "pg.signal_p99_ms": round(percentile(sorted, 99), 1),
      "pg.signal_max_ms": round(percentile(sorted, 100), 1),
      "pg.signal_send_ms": round(sentMs, 0),
      "pg.signal_all_done_ms": round(allMs, 0),
    };
  } finally {
    await client.end().catch(() => {});
    await stopWorkers(workers);
    removeDir(dir);
  }
}

/** Side log lines `a<k> <idx> <pid> [epoch]`. */
function readLog(file: string): { action: string; idx: number; pid: number; at: number }[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .split("\n")
    .filter((line) => line.length > 0)
    .map((line) => {
      const [action, idx, pid, at] = line.split(" ");
      return { action: action!, idx: Number(idx), pid: Number(pid), at: Number(at ?? Number.NaN) };
    });
}

/**
 * Two workers (default heartbeat and lease, pidLiveness off) each start 100 runs whose second action
 * waits for a gate file; once all 200 are in it, kill -9 of the first. Per run of the killed worker:
 * kill -> its waiting action started again on the survivor (the side log); failover = the slowest.
 * Then the gate opens and every run must complete; completed_rerun = first actions (committed before
 * the kill) that ran again.
 */
async function failoverFigures(serverUrl: string): Promise<Figures> {
  const url = await freshDatabase(serverUrl, "failover");
  const dir = tempDir("pg-failover");
  const log = join(dir, "side.log");
  const gate = join(dir, "gate");
  const client = new pg.Client({ connectionString: url });
  const half = FAILOVER_RUNS / 2;
  const workers = [0, 1].map((i) =>
    startWorker(["failover", url, dir, String(i * half), String(half), log, gate]),
  );
  const [victim, survivor] = workers as [Worker, Worker];
  try {
    for (const w of workers) await w.next("ready");
    await client.connect();
    const deadline = Date.now() + 120_000;
    while (readLog(log).filter((l) => l.action === "a1").length < FAILOVER_RUNS) {
      if (Date.now() > deadline)
        throw new Error("pg failover: the runs did not all reach their waiting action");
      await sleep(20);
    }
    const victimPid = victim.child.pid!;
    const survivorPid = survivor.child.pid!;
    const killAt = epochNow();
    victim.child.kill("SIGKILL");
    await victim.exited;
    // Every run of the victim progressing again: its waiting action started on the survivor.
    const taken = new Map<number, number>();
    const takeDeadline = Date.now() + 4 * LEASE_MS;
    while (taken.size < half) {
      if (Date.now() > takeDeadline)
        throw new Error(`pg failover: ${taken.size}/${half} runs taken over within ${4 * LEASE_MS} ms`);
      for (const l of readLog(log))
        if (l.action === "a1" && l.pid === survivorPid && l.idx < half && !taken.has(l.idx))
          taken.set(l.idx, l.at - killAt);
      await sleep(20);
    }
    writeFileSync(gate, "");
    await untilCount(client, "status = 'completed'", FAILOVER_RUNS, 120_000);
    const lines = readLog(log);
    const a0 = new Map<number, number>();
    for (const l of lines) if (l.action === "a0") a0.set(l.idx, (a0.get(l.idx) ?? 0) + 1);
    const completedRerun = [...a0.values()].filter((n) => n > 1).length;
    const a1Reruns = lines.filter((l) => l.action === "a1").length - FAILOVER_RUNS;
    const onVictim = lines.filter((l) => l.pid === victimPid && l.action === "a2").length;
    if (onVictim > 0) throw new Error(`pg failover: ${onVictim} runs ended on the killed worker`);
    const sorted = sortedCopy([...taken.values()]);
    return {
      "pg.failover_runs": FAILOVER_RUNS,
      "pg.failover_lease_ms": LEASE_MS,
      "pg.failover_heartbeat_ms": HEARTBEAT_MS,
      "pg.failover_ms": round(percentile(sorted, 100), 0),
      "pg.failover_first_ms": round(percentile(sorted, 0), 0),
      "pg.failover_p50_ms": round(percentile(sorted, 50), 0),
      "pg.failover_in_flight_rerun": a1Reruns,
      "pg.completed_rerun": completedRerun,
    };
  } finally {
    await client.end().catch(() => {});
    await stopWorkers(workers);
    removeDir(dir);
  }
}

/** $BENCH_PG_PARTS=one,workers,signal,failover runs a subset (all by default). */
const PARTS = new Set((process.env.BENCH_PG_PARTS ?? "one,workers,signal,failover").split(","));

childMain(async () => {
  const server = await startPostgres({ durable: true });
  if (!server)
    throw new Error("PostgreSQL is not installed (Debian's postgresql: apt-get install postgresql)");
  try {
    const figures: Figures = {};
    if (PARTS.has("one")) {
      await run(server.url, "warmup");
      const results = [];
      for (let i = 0; i < MEASURED; i++) results.push(await run(server.url, `run${i}`));
      const sorted = [...results].sort((a, b) => a.wallMs - b.wallMs);
      const median = sorted[Math.floor(sorted.length / 2)]!;
      const floor = await commitFloor(server.url);
      Object.assign(figures, {
        "pg.actions_per_s": Math.round((RUNS * ACTIONS) / (median.wallMs / 1000)),
        "pg.wall_ms": round(median.wallMs, 1),
        "pg.commit.calls": median.commits,
        "pg.commit.avg_batch": round(median.transitions / median.commits, 1),
        "pg.floor_commits_per_s": Math.round(floor),
      });
    }
    if (PARTS.has("workers"))
      Object.assign(figures, await workersFigures(server.url, 2), await workersFigures(server.url, 4));
    if (PARTS.has("signal")) Object.assign(figures, await signalFigures(server.url));
    if (PARTS.has("failover")) Object.assign(figures, await failoverFigures(server.url));
    return {
      figures,
      notes: [
        `pg: ${RUNS} runs x ${ACTIONS} actions started at once (burst, same saga, different inputs), one executor, PostgreSQL ${"on this machine"} with fsync on; median of ${MEASURED} runs, each on a fresh database; floor: one client's INSERT+COMMIT rate on the same cluster`,
        `pg workers: the same ${RUNS} x ${ACTIONS} split over 2 and 4 worker processes (each its own Executor and connection pool, starting its share when told), median of ${WORKER_ROUNDS} rounds`,
        `pg signal: ${SIGNAL_RUNS} runs parked by 2 workers, signalled through a 3rd (${SIGNAL_IN_FLIGHT} in flight); pg failover: ${FAILOVER_RUNS} runs on 2 workers, lease ${LEASE_MS} ms, heartbeat ${HEARTBEAT_MS} ms, pidLiveness off`,
      ],
    };
  } finally {
    await server.stop();
  }
});
