/**
 * PostgreSQL phase (child): the engine workload (500 runs x 10 chained no-op actions, started at once)
 * on PostgresStorage, one executor, every commit durable (fsync on, synchronous_commit on), against a
 * throwaway cluster on this machine; and, as the floor, the same cluster's one-client commit rate.
 */
import { join } from "node:path";
import pg from "pg";
import { Executor, PostgresStorage, type RunEvent } from "slipway";
import { freshDatabase, startPostgres } from "slipway/testing";
import { chainSaga, childMain, type Figures, quietLogger, removeDir, round, tempDir } from "./common.js";

const RUNS = Number(process.env.BENCH_PG_RUNS ?? 500);
const ACTIONS = 10;
const MEASURED = 5;
const FLOOR_MS = 2_000;

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

childMain(async () => {
  const server = await startPostgres({ durable: true });
  if (!server)
    throw new Error("PostgreSQL is not installed (Debian's postgresql: apt-get install postgresql)");
  try {
    await run(server.url, "warmup");
    const results = [];
    for (let i = 0; i < MEASURED; i++) results.push(await run(server.url, `run${i}`));
    const sorted = [...results].sort((a, b) => a.wallMs - b.wallMs);
    const median = sorted[Math.floor(sorted.length / 2)]!;
    const floor = await commitFloor(server.url);
    const figures: Figures = {
      "pg.actions_per_s": Math.round((RUNS * ACTIONS) / (median.wallMs / 1000)),
      "pg.wall_ms": round(median.wallMs, 1),
      "pg.commit.calls": median.commits,
      "pg.commit.avg_batch": round(median.transitions / median.commits, 1),
      "pg.floor_commits_per_s": Math.round(floor),
    };
    return {
      figures,
      notes: [
        `pg: ${RUNS} runs x ${ACTIONS} actions started at once (burst, same saga, different inputs), one executor, PostgreSQL ${"on this machine"} with fsync on; median of ${MEASURED} runs, each on a fresh database; floor: one client's INSERT+COMMIT rate on the same cluster`,
      ],
    };
  } finally {
    await server.stop();
  }
});
