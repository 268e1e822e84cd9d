/** The executor's options beside their defaults and validation. */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import type { Logger } from "pino";
import { type Clock, systemClock } from "../clock.js";
import type { Saga } from "../definition/saga.js";
import type { JsonObject } from "../json.js";
import { log as defaultLogger } from "../logging.js";
import type { RunRecord, Storage } from "../storage/types.js";
import { DEFAULT_LEASE_MS } from "./liveness.js";

export interface ExecutorOptions {
  storage: Storage;
  /** The sagas (and versions) this executor owns. Runs of other sagas in the same storage are left alone. */
  sagas: readonly Saga<never, never>[] | readonly Saga[];
  /** Where staged streams live. Default `.slipway`. */
  dataDir?: string;
  /** Stable identity of this executor; default random per process. */
  id?: string;
  logger?: Logger;
  /** Action bodies, undos and poll checks running at once in this executor. Default 1000. */
  maxConcurrentActions?: number;
  /** ... and within one run. Default 16. */
  perRunConcurrency?: number;
  /** @deprecated The same as `perRunConcurrency` (its name in 0.1). */
  perExecutionConcurrency?: number;
  /** How often storage is checked for signals, cancel requests and due wake-ups from other processes. Default 200 ms. */
  pollIntervalMs?: number;
  /**
   * How often this executor proves it is alive, and how often it looks for executors that died to
   * take their runs over. Default 2 s.
   */
  heartbeatIntervalMs?: number;
  /** An executor silent this long is dead and its runs are taken over. Default 10 s. */
  leaseMs?: number;
  /**
   * Whether an executor on this host whose process is gone counts as dead at once, before its lease
   * runs out. Default true; turn it off where pids are not comparable (containers sharing a hostname).
   */
  pidLiveness?: boolean;
  /**
   * The most runs this executor holds at once, written with its heartbeats for other processes to read
   * (`Storage.listExecutors`); its host keeps to it (a cluster's worker: `max_runs:`), the engine does
   * not. Default null: no limit.
   */
  maxRuns?: number | null;
  /** After an abort, how long a body may take to settle before it is given up on. Default 10 s. */
  abortGraceMs?: number;
  /** A run with nothing running leaves memory when its next timer is at least this far. Default 1 s. */
  evictAfterMs?: number;
  /** Staged data of runs that never started is swept once this old. Default 1 h. */
  stagedGraceMs?: number;
  /**
   * Narrows which runs of the registered sagas this executor takes (recovers, wakes, resumes);
   * default all. A CLI process that runs one pipeline run takes only that run.
   */
  accept?: (run: RunRecord) => boolean;
  /** Continue incomplete runs at open. Default true. */
  recover?: boolean;
  /**
   * Called before a child run is started, cancelled or undone here: a host that builds a saga per run
   * (pipelines) registers the child's saga and takes the run (`accept`) there. Throwing refuses it.
   */
  hostChild?: (child: ChildToHost) => void;
  /**
   * Where the time and timers come from: timeouts, sleeps and wake-ups, retry backoff, heartbeats and
   * leases, polling. Default the real time (`systemClock`); tests pass a `ManualClock` from
   * `slipway/testing` to move time without waiting.
   */
  clock?: Clock;
}

/** The options with every default applied and every number checked. */
export interface ExecutorSettings {
  storage: Storage;
  sagas: readonly Saga[];
  dataDir: string;
  /** The executor's identity (`id`). */
  owner: string;
  logger: Logger;
  maxConcurrentActions: number;
  perRunConcurrency: number;
  pollIntervalMs: number;
  heartbeatIntervalMs: number;
  leaseMs: number;
  pidLiveness: boolean;
  maxRuns: number | null;
  abortGraceMs: number;
  evictAfterMs: number;
  stagedGraceMs: number;
  accept: ((run: RunRecord) => boolean) | undefined;
  recover: boolean;
  hostChild: ((child: ChildToHost) => void) | undefined;
  clock: Clock;
}

/** A child run an executor is about to start or act on: its id, saga and input. */
export interface ChildToHost {
  id: string;
  saga: { readonly name: string; readonly version: number };
  input: JsonObject;
}

/** Applies the defaults; a number out of range throws a `RangeError` naming its option. */
export function resolveExecutorOptions(options: ExecutorOptions): ExecutorSettings {
  return {
    storage: options.storage,
    sagas: options.sagas as readonly Saga[],
    dataDir: options.dataDir ?? ".slipway",
    owner: options.id ?? `${hostname()}:${process.pid}:${randomBytes(4).toString("hex")}`,
    logger: options.logger ?? defaultLogger,
    maxConcurrentActions: positive(options.maxConcurrentActions ?? 1000, "maxConcurrentActions"),
    perRunConcurrency: positive(
      options.perRunConcurrency ?? options.perExecutionConcurrency ?? 16,
      "perRunConcurrency",
    ),
    pollIntervalMs: positive(options.pollIntervalMs ?? 200, "pollIntervalMs"),
    heartbeatIntervalMs: positive(options.heartbeatIntervalMs ?? 2_000, "heartbeatIntervalMs"),
    leaseMs: positive(options.leaseMs ?? DEFAULT_LEASE_MS, "leaseMs"),
    pidLiveness: options.pidLiveness ?? true,
    maxRuns: capacity(options.maxRuns ?? null),
    abortGraceMs: nonNegative(options.abortGraceMs ?? 10_000, "abortGraceMs"),
    evictAfterMs: nonNegative(options.evictAfterMs ?? 1_000, "evictAfterMs"),
    stagedGraceMs: nonNegative(options.stagedGraceMs ?? 3_600_000, "stagedGraceMs"),
    accept: options.accept,
    recover: options.recover ?? true,
    hostChild: options.hostChild,
    clock: options.clock ?? systemClock,
  };
}

function positive(value: number, name: string): number {
  if (!(Number.isFinite(value) && value > 0))
    throw new RangeError(`${name} must be a positive number, got ${value}`);
  return value;
}

function capacity(value: number | null): number | null {
  if (value !== null && !(Number.isInteger(value) && value > 0))
    throw new RangeError(`maxRuns must be a positive integer or null, got ${value}`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0))
    throw new RangeError(`${name} must be a number >= 0, got ${value}`);
  return value;
}
