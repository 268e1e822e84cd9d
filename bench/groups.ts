/**
 * Groups phase (child): how fast loops iterate. 1,000 runs started at once (a burst), each a loop of
 * 10 iterations of one no-op action (same input shape, different idx), on SQLite FULL; beside it, in
 * the same sitting, the floor: the same runs as a chain of 10 no-op actions (the engine phase's saga).
 * Then how soon a child run starts: 200 parents one after the other, each a step starting a child
 * run of one no-op action, from the parent's step waiting to the child's first action running.
 */
import { join } from "node:path";
import { Executor, type RunEvent, type Saga, SqliteStorage, saga } from "slipway";
import { z } from "zod";
import {
  chainSaga,
  childMain,
  type Figures,
  percentile,
  quietLogger,
  removeDir,
  round,
  sortedCopy,
  tempDir,
} from "./common.js";

const RUNS = 1_000;
const ITERATIONS = 10;
const SERIES = 5;

const loop = saga("loop", { version: 1, input: { idx: z.number() } })
  .loop("spin", {
    max: ITERATIONS,
    body: (steps) =>
      steps.action("step", {
        reads: ["idx", "iteration"],
        output: z.number(),
        run: ({ iteration }) => iteration,
      }),
    until: ({ step }) => step === ITERATIONS,
  })
  .build() as unknown as Saga;

const chain = chainSaga("chain", ITERATIONS, () => undefined);

/** Wall time from the first start() to the last run ending, with every run started at once. */
async function burst(target: Saga): Promise<number> {
  const dir = tempDir("groups");
  const storage = new SqliteStorage({ path: join(dir, "bench.sqlite"), synchronous: "full" });
  const executor = await Executor.open({
    storage,
    sagas: [target],
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
    if (!event.type.startsWith("run:") || event.type === "run:started" || event.type === "run:waiting")
      return;
    if (event.type !== "run:completed") failed++;
    if (++ended === RUNS) {
      doneAt = performance.now();
      resolveDone();
    }
  });
  const t0 = performance.now();
  await Promise.all(Array.from({ length: RUNS }, (_, idx) => executor.start(target, { idx })));
  await done;
  stop();
  await executor.close();
  await storage.close();
  removeDir(dir);
  if (failed > 0) throw new Error(`${failed} runs of ${target.name} did not complete`);
  return doneAt - t0;
}

const CHILD_PARENTS = 200;

const leaf = saga("leaf", { version: 1 })
  .action("first", { run: () => undefined })
  .build();
const parent = saga("parent", { version: 1, input: { idx: z.number() } })
  .child("sub", { saga: leaf })
  .build() as unknown as Saga;

/** Per parent, ms from its child step's `action:waiting` to its child's first `action:started`. */
async function childStarts(): Promise<number[]> {
  const dir = tempDir("children");
  const storage = new SqliteStorage({ path: join(dir, "bench.sqlite"), synchronous: "full" });
  const executor = await Executor.open({
    storage,
    sagas: [parent],
    dataDir: join(dir, "data"),
    logger: quietLogger(),
    recover: false,
  });
  const waitingAt = new Map<string, number>();
  const delays: number[] = [];
  const stop = executor.on((event: RunEvent) => {
    if (event.type === "action:waiting" && event.action === "sub")
      waitingAt.set(`${event.runId}.sub`, performance.now());
    else if (event.type === "action:started" && event.saga === "leaf") {
      const at = waitingAt.get(event.runId);
      if (at !== undefined) delays.push(performance.now() - at);
    }
  });
  for (let idx = 0; idx < CHILD_PARENTS; idx++) {
    const outcome = await (await executor.start(parent, { idx })).result();
    if (outcome.status !== "completed") throw new Error(`parent ${outcome.id} ended ${outcome.status}`);
  }
  stop();
  await executor.close();
  await storage.close();
  removeDir(dir);
  return delays;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

childMain(async () => {
  // Warm-up (JIT, SQLite, fs caches); not reported.
  await burst(loop);
  await burst(chain);
  // Interleaved, so both see the same machine.
  const loopMs: number[] = [];
  const chainMs: number[] = [];
  for (let i = 0; i < SERIES; i++) {
    loopMs.push(await burst(loop));
    chainMs.push(await burst(chain));
  }
  await childStarts(); // warm-up
  const starts = await childStarts();
  const iterations = RUNS * ITERATIONS;
  const figures: Figures = {
    "engine.loop_iterations_per_s": Math.round(iterations / (median(loopMs) / 1000)),
    "engine.loop_chain_actions_per_s": Math.round(iterations / (median(chainMs) / 1000)),
    "engine.loop_over_chain": round(median(chainMs) / median(loopMs), 3),
    "engine.child_start_p50_ms": round(percentile(sortedCopy(starts), 50), 2),
    "engine.child_start_p99_ms": round(percentile(sortedCopy(starts), 99), 2),
  };
  return { figures };
});
