/**
 * Recovery phase child. `run`: starts the slow chains and works until SIGKILLed. `restart`: opens an
 * executor on the same file (it recovers on open), waits for every run to end, reports when done.
 */
import { appendFileSync } from "node:fs";
import { join } from "node:path";
import { Executor, SqliteStorage } from "slipway";
import {
  chainSaga,
  epochNow,
  quietLogger,
  sendToParent,
  sleep,
  statsFigures,
  timedStorage,
} from "./common.js";

const loadedAt = epochNow();
const [mode, dir, countArg, actionsArg, bodyMsArg] = process.argv.slice(2);
const runs = Number(countArg);
const actions = Number(actionsArg);
const bodyMs = Number(bodyMsArg);
const sideFile = join(dir!, "runs.log");

/** Every body, before anything else, appends "<run> <action>" to the side file. */
const slow = chainSaga("slow", actions, async (_idx, _action, ctx) => {
  appendFileSync(sideFile, `${ctx.runId} ${ctx.action}\n`);
  await sleep(bodyMs);
});

async function main(): Promise<void> {
  // The restart times its storage calls (synchronous part, fsync included) to show where the time goes.
  const sqlite = new SqliteStorage({ path: join(dir!, "bench.sqlite"), synchronous: "full" });
  const { storage, stats } = timedStorage(sqlite);
  const executor = await Executor.open({
    storage,
    sagas: [slow],
    dataDir: join(dir!, "data"),
    logger: quietLogger(),
  });
  const openedAt = epochNow();
  if (mode === "run") {
    await Promise.all(Array.from({ length: runs }, (_, i) => executor.start(slow, { idx: i })));
    await sendToParent({ type: "result", figures: { started: runs } });
    // Keep working until the parent kills us.
    await new Promise(() => {});
    return;
  }
  const records = await storage.listRuns({ sagas: ["slow"] });
  const results = await Promise.all(records.map((r) => executor.result(r.id)));
  const doneAt = epochNow();
  const completed = results.filter((r) => r.status === "completed").length;
  await sendToParent({
    type: "done",
    at: doneAt,
    figures: {
      runs: records.length,
      completed,
      processStartAt: performance.timeOrigin,
      loadedAt,
      openedAt,
      doneAt,
      ...statsFigures("storage", stats),
    },
  });
  await executor.close();
  await storage.close();
  process.exit(0);
}

main().catch(async (error: unknown) => {
  console.error(error);
  await sendToParent({ type: "error", message: String((error as Error)?.stack ?? error) }).catch(() => {});
  process.exit(1);
});
