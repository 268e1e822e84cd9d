/**
 * The one place a process that runs pipeline runs is wired: storage, the engine's log, the executor,
 * admission (pools, locks, measured peaks), the run lookup that `concurrency:` gates read, and the
 * release of what a run still held when it ends. A server and a foreground `slipway run` both open
 * their runtime here, so the two cannot drift apart.
 */
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { type Logger, pino } from "pino";
import { ENDING_EVENTS } from "../engine/events.js";
import { Executor } from "../engine/executor.js";
import type { ChildToHost } from "../engine/executor-options.js";
import { DEFAULT_LEASE_MS, findDeadExecutors } from "../engine/liveness.js";
import { createLogger, MAX_BUFFERED_LOG } from "../logging.js";
import { type Observability, type ObserveOptions, observe } from "../observability/observe.js";
import { runRoster } from "../pipeline/concurrency.js";
import { inheritOnly, SERVER_JOB_ENV } from "../pipeline/job-env.js";
import { JobResources } from "../pipeline/resources.js";
import type { JobRuntime } from "../pipeline/step-context.js";
import { ClusterLocks } from "../scheduler/cluster-locks.js";
import { admissionFor } from "../scheduler/config.js";
import { Launcher } from "../shell/launcher.js";
import { isPostgresUrl, openStorage, type SqlStorage } from "../storage/open.js";
import type { RunRecord } from "../storage/types.js";
import { loadServeConfig, type ServeConfig } from "./config.js";

export interface RuntimeOptions {
  /** The database: a SQLite file's path, or a `postgres://` URL. */
  db: string;
  /**
   * Job logs, pid files, follower marks and staged data (this machine's own): default the SQLite
   * file's directory, or `.slipway` in the working directory for PostgreSQL.
   */
  dataDir?: string | undefined;
  /** The engine's log; default JSON lines in `<dataDir>/slipway.log` (stdout belongs to the user). */
  logger?: Logger | undefined;
  /** The server's config file (runs/config.ts); absent: this machine's resources, nothing else. */
  config?: string | undefined;
  /**
   * What jobs inherit of this process's environment: all of it but Slipway's credentials (`all`, a
   * foreground run's default), or only the allow-list and the config's `job_env` (`allowed`, a server).
   */
  jobEnv?: "all" | "allowed" | undefined;
  /**
   * A lock no config declares: refused (`reject`, a server's default: its config says what exists),
   * or one holder at a time (`exclusive`: a foreground run has no config to declare it in).
   */
  undeclaredLocks?: "reject" | "exclusive" | undefined;
  /** How often storage is checked for what other processes wrote (signals, cancels), ms. */
  pollIntervalMs?: number | undefined;
  /**
   * Start job processes from a launcher process (a server: a fork of a large process stops its event
   * loop for milliseconds); default false: spawned directly.
   */
  launcher?: boolean | undefined;
  /** Which runs this process's executor may take: the runs it hosts. */
  accept: (run: RunRecord) => boolean;
  /** Takes a child run a `uses:` job starts (or acts on) here: ExecutorOptions.hostChild. */
  hostChild?: ((child: ChildToHost) => void) | undefined;
  /** Prometheus metrics (a server's), and where `OTEL_*` variables that turn traces on are read. */
  observe?: ObserveOptions | undefined;
}

export interface Runtime {
  readonly storage: SqlStorage;
  readonly executor: Executor;
  /** How jobs run here: their log directory, admission, the run lookup for `concurrency:`. */
  readonly jobs: JobRuntime;
  readonly dataDir: string;
  readonly logger: Logger;
  /** The config file as read (defaults without one). */
  readonly config: ServeConfig;
  /** Metrics when asked for, traces when the environment turns them on (observability/observe.ts). */
  readonly observability: Observability;
  /** Stops the executor (its jobs are stopped, its runs left resumable), then admission and storage. */
  close(): Promise<void>;
}

/** Opens the runtime; a config file with problems throws (ConfigError) before anything is opened. */
export async function openRuntime(options: RuntimeOptions): Promise<Runtime> {
  const dataDir = options.dataDir ?? defaultDataDir(options.db);
  mkdirSync(dataDir, { recursive: true });
  const config = loadServeConfig(options.config, dataDir);
  const resources = new JobResources(
    admissionFor(
      config.scheduler,
      options.undeclaredLocks ? { undeclaredLocks: options.undeclaredLocks } : {},
    ),
  );
  const log = options.logger ? { logger: options.logger, flush: async () => {} } : engineLog(dataDir);
  const storage = openStorage(options.db);
  let executor: Executor;
  try {
    await storage.init();
    executor = await Executor.open({
      storage,
      sagas: [],
      dataDir,
      logger: log.logger,
      pollIntervalMs: options.pollIntervalMs ?? 200,
      accept: options.accept,
      ...(options.hostChild && { hostChild: options.hostChild }),
      // What a cluster's worker keeps to (runs/cluster.ts); on SQLite nothing limits a server's runs.
      maxRuns: isPostgresUrl(options.db) ? (config.maxRuns ?? null) : null,
      // Runs are taken one by one, after their orphaned jobs are swept: never wholesale at open.
      recover: false,
    });
  } catch (error) {
    resources.admission.close();
    await storage.close();
    throw error;
  }
  const observability = await observe({ storage, executor, resources }, options.observe);
  const launcher = options.launcher ? Launcher.start() : undefined;
  const jobs: JobRuntime = {
    ...observability.jobs,
    dataDir,
    resources,
    runs: runRoster(storage, executor),
    ...(options.jobEnv === "allowed" && { inherit: inheritOnly([...SERVER_JOB_ENV, ...config.jobEnv]) }),
    ...(launcher && { launcher }),
  };
  resources.usePeaks(storage.peaks());
  const clusterLocks = isPostgresUrl(options.db)
    ? shareLocks(storage, executor, config, log.logger)
    : undefined;
  if (clusterLocks) resources.useClusterLocks(clusterLocks);
  // A grant kept for a readiness probe that never ran (cancelled in between) goes back to the pool.
  const stopReleasing = executor.on((event) => {
    if (ENDING_EVENTS.has(event.type)) resources.releaseRun(event.runId);
  });
  return {
    storage,
    executor,
    jobs,
    dataDir,
    logger: log.logger,
    config,
    observability,
    async close() {
      stopReleasing();
      // The executor first: closing aborts jobs waiting for admission, which leaves them resumable;
      // closing admission first would fail them.
      await executor.close();
      await observability.close();
      await launcher?.close();
      // Its jobs have stopped: whatever slots this worker still has in the database go back.
      await clusterLocks?.close();
      resources.admission.close();
      await storage.close();
      await log.flush();
    },
  };
}

/**
 * Named locks in the database, shared by every worker on it (PostgreSQL): a job holds its locks'
 * slots there, so no interleaving of workers admits more holders than a lock has slots. SQLite
 * keeps locks in the process (one server per file); its store serves the conformance suite.
 */
function shareLocks(
  storage: SqlStorage,
  executor: Executor,
  config: ServeConfig,
  logger: Logger,
): ClusterLocks {
  let toldAt = Number.NEGATIVE_INFINITY;
  return new ClusterLocks({
    store: storage.locks(),
    owner: executor.owner,
    capacity: config.scheduler.capacity.locks,
    deadOwners: () => findDeadExecutors(storage, DEFAULT_LEASE_MS, executor.owner),
    onError: (error) => {
      // Retried every second: said once in a while, not every time.
      if (Date.now() - toldAt < 30_000) return;
      toldAt = Date.now();
      logger.warn({ err: error }, "cluster locks: the database could not be read or written; retrying");
    },
  });
}

/**
 * The engine's own log: JSON lines in `<dir>/slipway.log`. Written synchronously (it gets few lines):
 * what is logged is on disk before anything else happens, and a full disk is an error handled on the
 * spot (`guardDestination`: lines kept in memory up to a bound, written once space returns).
 */
export function engineLog(dir: string): { logger: Logger; flush(): Promise<void> } {
  const destination = pino.destination({
    dest: join(dir, "slipway.log"),
    mkdir: true,
    sync: true,
    maxLength: MAX_BUFFERED_LOG,
  });
  // Guarded by createLogger, its flushSync included.
  const logger = createLogger({}, destination);
  return {
    logger,
    async flush() {
      destination.flushSync();
    },
  };
}

/** Where this machine's files go by default: beside a SQLite file, or in `./.slipway` for PostgreSQL. */
export function defaultDataDir(db: string): string {
  return isPostgresUrl(db) ? resolve(".slipway") : dirname(db);
}
