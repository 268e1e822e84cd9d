/**
 * A CLI process that runs pipeline runs: storage, an executor that takes only the runs it was given,
 * the engine's own log in a file (stdout belongs to the user), and the interrupt handling every
 * foreground command shares.
 */
import { once } from "node:events";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Logger, pino } from "pino";
import { Executor } from "../engine/executor.js";
import { createLogger } from "../logging.js";
import type { CompiledRun } from "../pipeline/compile.js";
import { runRoster } from "../pipeline/concurrency.js";
import { JobResources } from "../pipeline/resources.js";
import type { JobRuntime } from "../pipeline/step-context.js";
import { machineAdmission } from "../scheduler/config.js";
import type { SqliteStorage } from "../storage/sqlite/sqlite-storage.js";
import type { ExecutionStatus } from "../storage/types.js";
import { EXIT } from "./command.js";
import { dataDir, openStorage } from "./state.js";

export interface Session {
  storage: SqliteStorage;
  executor: Executor;
  dataDir: string;
  runtime: JobRuntime;
  close(): Promise<void>;
}

/**
 * How this process runs jobs. Jobs that declare `resources:` are admitted against this machine
 * (memory, cpu, free disk of the data directory's volume): parallel jobs of a run never overcommit
 * it, and a job that needs more than it has fails at once with the reason.
 */
export function jobRuntime(db: string): JobRuntime {
  const dir = dataDir(db);
  processRuntime ??= { dataDir: dir, resources: new JobResources(machineAdmission(dir)) };
  return processRuntime;
}

/** One runtime per process: every run this process hosts shares the machine (and its one database). */
let processRuntime: JobRuntime | undefined;

/**
 * Opens an executor for these compiled runs, taking only the executions in `ids` (a run started by
 * another terminal is that terminal's business, even when it is the same pipeline).
 */
export async function openSession(
  db: string,
  runs: readonly CompiledRun[],
  ids: ReadonlySet<string>,
): Promise<Session> {
  const dir = dataDir(db);
  mkdirSync(dir, { recursive: true });
  const storage = await openStorage(db);
  const log = engineLog(dir);
  const logger = log.logger;
  const sagas = new Map(runs.map((run) => [`${run.saga.name}@${run.saga.version}`, run.saga]));
  let executor: Executor;
  try {
    executor = await Executor.open({
      storage,
      sagas: [...sagas.values()],
      dataDir: dir,
      logger,
      accept: (execution) => ids.has(execution.id),
      recover: false,
      pollIntervalMs: 100,
    });
  } catch (error) {
    await storage.close();
    throw error;
  }
  const runtime = jobRuntime(db);
  runtime.runs = runRoster(storage, executor);
  runtime.resources?.usePeaks(storage.peaks());
  return {
    storage,
    executor,
    dataDir: dir,
    runtime,
    async close() {
      await executor.close();
      await storage.close();
      await log.flush();
    },
  };
}

/** The engine's own log: JSON lines in `<dir>/slipway.log` (stdout belongs to the user). */
export function engineLog(dir: string): { logger: Logger; flush(): Promise<void> } {
  const destination = pino.destination({ dest: join(dir, "slipway.log"), mkdir: true, sync: false });
  // The file opens asynchronously, and flushSync throws until it has: a run can end before that.
  const opened = once(destination, "ready").then(
    () => true,
    () => false,
  );
  return {
    logger: createLogger({}, destination),
    async flush() {
      if (await opened) destination.flushSync();
    },
  };
}

/** 0 completed; 1 failed (undone or held); 3 an undo failed; 130 cancelled after an interrupt. */
export function exitCodeOf(status: ExecutionStatus, interrupted: boolean): number {
  switch (status) {
    case "completed":
      return EXIT.ok;
    case "needs_attention":
      return EXIT.attention;
    default:
      return interrupted ? EXIT.interrupted : EXIT.failed;
  }
}

/**
 * The first SIGINT or SIGTERM calls `cancel` (nothing new starts, running jobs are stopped, undos
 * run); a second one exits at once, leaving the runs for `slipway resume`. Returns the uninstaller.
 */
export function onInterrupt(
  cancel: (signal: NodeJS.Signals) => void,
  io: { err(text: string): void },
): () => void {
  let count = 0;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) {
      io.err(
        `\n${signal}: cancelling (undoing what was done); press Ctrl-C again to stop at once and resume later\n`,
      );
      cancel(signal);
    } else {
      io.err(`\n${signal} again: stopping now; run "slipway resume" to continue\n`);
      process.exit(EXIT.interrupted);
    }
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return () => {
    process.off("SIGINT", handler);
    process.off("SIGTERM", handler);
  };
}
