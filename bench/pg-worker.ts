/**
 * One worker of the PostgreSQL phase's clusters (a grandchild of the bench: bench/pg.ts forks several
 * of these on one database): an Executor of its own, driven over IPC.
 *   chain <url> <dir> <from> <count>  starts runs from..from+count-1 of the 10-action chain on "go"
 *   hold <url> <dir> <count>          starts `count` approval runs and wakes only those (accept),
 *                                     wherever they were signalled
 *   signal <url> <dir>                takes no run (accept: none); signals the runs it is sent
 *   failover <url> <dir> <from> <count> <log> <gate>
 *                                     starts runs from..from+count-1 of a 3-action saga: a0 logs,
 *                                     a1 logs its start then waits for the gate file, a2 logs;
 *                                     the lease alone tells it dead (pidLiveness off)
 */
import { appendFileSync, existsSync } from "node:fs";
import { join } from "node:path";
import { Executor, PostgresStorage, type RunEvent, type Saga } from "slipway";
import { approvalSaga, chainSaga, epochNow, quietLogger, sleep } from "./common.js";

/** What a worker tells pg.ts. */
export type WorkerMessage =
  | { type: "ready" }
  | { type: "finished"; firstStart: number; lastEnd: number; failed: number }
  | { type: "sent"; sent: [string, number][] }
  | { type: "error"; message: string };

/** What pg.ts tells a worker. */
export type WorkerCommand =
  | { type: "go" }
  | { type: "signal"; ids: string[]; inFlight: number }
  | { type: "close" };

const ENDINGS: ReadonlySet<string> = new Set([
  "run:completed",
  "run:compensated",
  "run:cancelled",
  "run:needs_attention",
]);

const [mode, url, dir, ...rest] = process.argv.slice(2) as [string, string, string, ...string[]];

function send(message: WorkerMessage): void {
  process.send?.(message);
}

/** Runs each id through `fn` with at most `limit` at once. */
async function pool<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]!);
  });
  await Promise.all(lanes);
}

/** The failover saga: a0 (a completed action, logged), a1 (logs its start, waits for the gate), a2. */
function failoverSaga(log: string, gate: string): Saga {
  return chainSaga("failover", 3, async (idx, action, ctx) => {
    if (action === 1) {
      appendFileSync(log, `a1 ${idx} ${process.pid} ${epochNow()}\n`);
      while (!existsSync(gate) && !ctx.signal.aborted) await sleep(50);
      return;
    }
    appendFileSync(log, `a${action} ${idx} ${process.pid}\n`);
  });
}

async function main(): Promise<void> {
  const storage = new PostgresStorage({ url });
  const base = { storage, dataDir: join(dir, `data-${process.pid}`), logger: quietLogger(), recover: false };
  const commands: WorkerCommand[] = [];
  let wake: () => void = () => {};
  process.on("message", (command: WorkerCommand) => {
    commands.push(command);
    wake();
  });
  const next = async (): Promise<WorkerCommand> => {
    while (commands.length === 0) await new Promise<void>((resolve) => (wake = resolve));
    return commands.shift()!;
  };
  let executor: Executor;
  if (mode === "chain") {
    const [from, count] = rest.map(Number) as [number, number];
    const chain = chainSaga("chain", 10, () => undefined);
    executor = await Executor.open({ ...base, sagas: [chain] });
    let ended = 0;
    let failed = 0;
    let lastEnd = 0;
    let resolveDone: () => void = () => {};
    const done = new Promise<void>((resolve) => (resolveDone = resolve));
    executor.on((event: RunEvent) => {
      if (!ENDINGS.has(event.type)) return;
      if (event.type !== "run:completed") failed++;
      if (++ended === count) {
        lastEnd = epochNow();
        resolveDone();
      }
    });
    send({ type: "ready" });
    await next();
    const firstStart = epochNow();
    await Promise.all(Array.from({ length: count }, (_, i) => executor.start(chain, { idx: from + i })));
    await done;
    send({ type: "finished", firstStart, lastEnd, failed });
  } else if (mode === "hold") {
    const [count] = rest.map(Number) as [number];
    const approval = approvalSaga();
    // The runs started here are the ones woken here (the approval saga keeps no input to tell by).
    const mine = new Set<string>();
    executor = await Executor.open({ ...base, sagas: [approval], accept: (run) => mine.has(run.id) });
    const ids = Array.from({ length: count }, () => executor.newRunId());
    for (const id of ids) mine.add(id);
    await Promise.all(ids.map((id) => executor.start(approval, {}, { id })));
    send({ type: "ready" });
  } else if (mode === "signal") {
    executor = await Executor.open({ ...base, sagas: [approvalSaga()], accept: () => false });
    send({ type: "ready" });
    const command = await next();
    if (command.type !== "signal") throw new Error(`signal worker: unexpected ${command.type}`);
    const sent: [string, number][] = [];
    await pool(command.ids, command.inFlight, async (id) => {
      sent.push([id, epochNow()]);
      await executor.signal(id, "go", { ok: true });
    });
    send({ type: "sent", sent });
  } else if (mode === "failover") {
    const [from, count] = rest.slice(0, 2).map(Number) as [number, number];
    const [log, gate] = rest.slice(2) as [string, string];
    const saga = failoverSaga(log, gate);
    executor = await Executor.open({ ...base, sagas: [saga], pidLiveness: false });
    await Promise.all(Array.from({ length: count }, (_, i) => executor.start(saga, { idx: from + i })));
    send({ type: "ready" });
  } else throw new Error(`unknown mode ${mode}`);
  while ((await next()).type !== "close") {}
  await executor.close();
  await storage.close();
  process.exit(0);
}

main().catch((error: unknown) => {
  console.error(error);
  send({ type: "error", message: String((error as Error)?.stack ?? error) });
  setTimeout(() => process.exit(1), 100);
});
