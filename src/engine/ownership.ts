/** An executor's standing in storage: its heartbeat, and which other executors are provably dead. */
import { hostname } from "node:os";
import type { Logger } from "pino";
import type { Clock, ClockTimer } from "../clock.js";
import type { Storage } from "../storage/types.js";
import { findDeadExecutors } from "./liveness.js";

export interface OwnershipOptions {
  storage: Storage;
  owner: string;
  clock: Clock;
  logger: Logger;
  heartbeatIntervalMs: number;
  leaseMs: number;
  /** How long one lookup of dead executors is reused. */
  deadOwnersTtlMs: number;
  /** Whether an executor of this host whose process is gone is dead at once (else the lease alone decides). */
  pidLiveness: boolean;
  /** Written with every beat: the most runs this executor holds at once; null: no limit. */
  maxRuns: number | null;
}

export class Ownership {
  readonly #options: OwnershipOptions;
  #startedAt: number | undefined;
  #timer: ClockTimer | undefined;
  #stopped = false;
  #deadOwnersCache: { at: number; value: Promise<string[]> } | undefined;

  constructor(options: OwnershipOptions) {
    this.#options = options;
  }

  /** Proves this executor alive now (registering it on the first beat); a failure is logged. */
  async beat(): Promise<void> {
    const { storage, owner, clock, logger, maxRuns } = this.#options;
    try {
      const now = clock.now();
      this.#startedAt ??= now;
      await storage.upsertExecutor({
        id: owner,
        host: hostname(),
        pid: process.pid,
        startedAt: this.#startedAt,
        heartbeatAt: now,
        maxRuns,
      });
    } catch (error) {
      logger.error({ err: error }, "heartbeat failed");
    }
  }

  /** Beats every heartbeat interval until stopped. */
  start(): void {
    if (this.#stopped) return;
    const { clock, heartbeatIntervalMs } = this.#options;
    this.#timer = clock.setTimeout(() => {
      void this.beat();
      this.start();
    }, heartbeatIntervalMs);
  }

  stop(): void {
    this.#stopped = true;
    this.#options.clock.clearTimeout(this.#timer);
  }

  /** Dead executors, looked up at most once per TTL (a burst of wake-ups shares one lookup). */
  deadOwners(): Promise<string[]> {
    const { storage, owner, clock, leaseMs, deadOwnersTtlMs, pidLiveness } = this.#options;
    const now = clock.now();
    if (!this.#deadOwnersCache || now - this.#deadOwnersCache.at > deadOwnersTtlMs) {
      this.#deadOwnersCache = {
        at: now,
        value: findDeadExecutors(storage, leaseMs, owner, now, pidLiveness),
      };
    }
    return this.#deadOwnersCache.value;
  }
}
