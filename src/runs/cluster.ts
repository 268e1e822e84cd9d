/**
 * A server's part in a cluster (several workers on one PostgreSQL): every heartbeat, and at once when
 * storage tells of a change, it takes the pipeline runs nobody alive runs that it has room for — those
 * of dead workers first, then runs queued for any worker or due to wake, oldest first — and lets go
 * of runs it took that another worker got first, or that parked here and another worker continued.
 */
import type { Logger } from "pino";
import type { Executor } from "../engine/executor.js";
import { findDeadExecutors } from "../engine/liveness.js";
import { runSpecOf } from "../pipeline/run-spec.js";
import { sweepDataDirOrphans } from "../shell/run-directory.js";
import {
  ACTIVE_STATUSES,
  FINAL_STATUSES,
  getRunsOf,
  type RunRecord,
  STOPPED_STATUSES,
  type Storage,
} from "../storage/types.js";
import { liveFollower } from "./liveness.js";

export interface ClusterWorkerOptions {
  storage: Storage;
  executor: Executor;
  dataDir: string;
  logger: Logger;
  /** Runs this worker may hold at once; Infinity: no limit. */
  maxRuns: number;
  /** How often it looks, ms (the executor's heartbeat). */
  intervalMs: number;
  /** Whether the run is hosted here (taken, whether or not it is in memory now). */
  hosted(id: string): boolean;
  /** Every run hosted here. */
  hostedIds(): readonly string[];
  /** Takes a run nobody alive runs: sweeps its orphans here, rebuilds its saga, hosts it. */
  take(record: RunRecord): Promise<void>;
  /** Forgets a run hosted here that another worker runs (or that ended elsewhere). */
  unhost(id: string): void;
}

/** Runs looked at per pass, per kind: a queue of thousands is taken a slice per heartbeat. */
const PASS_LIMIT = 500;

export class ClusterWorker {
  readonly #options: ClusterWorkerOptions;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #stopped = false;
  #stopListening: (() => void) | undefined;
  /** Runs taken here whose claim is not known to be won or lost yet (`#settle`). */
  readonly #contested = new Set<string>();
  /** The last pass stopped for want of room: a run leaving memory here looks again at once. */
  #full = false;
  /** Where the next pass goes on looking through the runs parked here (`#letGoOfContinuedElsewhere`). */
  #parkedCursor = 0;

  constructor(options: ClusterWorkerOptions) {
    this.#options = options;
  }

  /**
   * Joins: first kills what this machine's dead worker left running in the data directory, whoever
   * continues those runs now; then looks every heartbeat and whenever storage tells of a change.
   */
  async start(): Promise<void> {
    for (const orphan of await sweepDataDirOrphans(this.#options.dataDir)) {
      if (orphan.killed === 0) continue;
      this.#options.logger.warn(
        { pidFile: orphan.pidFile, pgid: orphan.identity.pgid, killed: orphan.killed },
        "killed leftover processes of a job whose worker died",
      );
    }
    this.#stopListening = this.#options.storage.onChange?.(() => this.poke());
    this.poke();
  }

  /** Looks now (a run was queued, a run here ended or parked: room freed). */
  poke(): void {
    if (this.#stopped) return;
    if (this.#running) {
      this.#again = true;
      return;
    }
    clearTimeout(this.#timer);
    this.#running = this.#pass()
      .catch((error: unknown) => this.#options.logger.error({ err: error }, "cluster pass failed"))
      .finally(() => {
        this.#running = undefined;
        if (this.#again) {
          this.#again = false;
          this.poke();
        } else if (!this.#stopped) {
          this.#timer = setTimeout(() => this.poke(), this.#options.intervalMs);
          this.#timer.unref();
        }
      });
  }

  /** A run left memory here: if the last pass was cut short for want of room, look again now. */
  freed(): void {
    if (this.#full) this.poke();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#stopListening?.();
    clearTimeout(this.#timer);
    await this.#running;
  }

  /** Room for more runs here: the limit less the runs in memory. */
  room(): number {
    return this.#options.maxRuns - this.#options.executor.activeRuns;
  }

  async #pass(): Promise<void> {
    const { storage, executor, dataDir } = this.#options;
    await this.#letGoOfContinuedElsewhere();
    let room = this.room();
    this.#full = room <= 0;
    if (this.#full) return;
    const dead = await findDeadExecutors(storage, executor.leaseMs, executor.owner);
    const unowned = { owner: null, limit: PASS_LIMIT } as const;
    const lists = await Promise.all([
      ...dead.map((owner) => storage.listRuns({ owner, statuses: ACTIVE_STATUSES, limit: PASS_LIMIT })),
      // Runs this worker owns and neither hosts nor holds in memory: no other worker takes a live
      // worker's runs, so it takes them back itself (a creation whose commit reached the database
      // although the answer was lost, or any other way a run can be let go of while still owned here).
      storage.listRuns({ owner: executor.owner, statuses: ["running", "compensating"], limit: PASS_LIMIT }),
      storage.listRuns({ ...unowned, statuses: ["running", "compensating"] }),
      storage.listRuns({ ...unowned, statuses: ["waiting"], wakeAtOrBefore: Date.now() }),
      storage.listRuns({ ...unowned, statuses: ["waiting"], cancelRequested: true }),
      storage.listRuns({ ...unowned, statuses: ["waiting"], withPendingSignals: true }),
    ]);
    await this.#settle(dead);
    const taken: string[] = [];
    const seen = new Set<string>();
    for (const record of lists.flat()) {
      if (room <= 0 || this.#stopped) {
        this.#full = room <= 0;
        break;
      }
      const { id } = record;
      if (seen.has(id) || this.#options.hosted(id) || executor.holds(id) || !runSpecOf(record)) continue;
      seen.add(id);
      // A terminal on this machine follows it (a foreground `slipway run`): left to it.
      const follower = liveFollower(dataDir, id);
      if (follower !== undefined && follower !== process.pid) continue;
      try {
        await this.#options.take(record);
        taken.push(id);
        room--;
      } catch (error) {
        this.#options.logger.error({ err: error, runId: id }, "could not take a run");
      }
    }
    if (taken.length === 0) return;
    for (const id of taken) this.#contested.add(id);
    await executor.recover();
    await this.#settle(dead);
  }

  /**
   * A run parked here (hosted, not in memory) that another worker woke, by a signal sent through it
   * say, is that worker's: its end is told there, not here, and hosted here it would stay so for
   * good. Each pass reads a slice of those runs (a server may hold thousands parked) and lets go of
   * the ones another worker owns or that have ended. A run not in storage (yet) is left alone: it may
   * be one submitted here whose creation has not committed.
   */
  async #letGoOfContinuedElsewhere(): Promise<void> {
    const { storage, executor } = this.#options;
    const parked = this.#options.hostedIds().filter((id) => !executor.holds(id) && !this.#contested.has(id));
    if (parked.length === 0) return;
    const from = this.#parkedCursor % parked.length;
    const slice = parked.slice(from, from + PASS_LIMIT);
    this.#parkedCursor = from + slice.length;
    const records = await getRunsOf(storage, slice);
    slice.forEach((id, i) => {
      const record = records[i];
      if (record === undefined || executor.holds(id)) return;
      const elsewhere = record.owner !== null && record.owner !== executor.owner;
      if (elsewhere || FINAL_STATUSES.includes(record.status)) this.#options.unhost(id);
    });
  }

  /**
   * Runs taken here whose claim another worker may have won: once storage says one is ours, it is;
   * once another live worker owns it (or it ended), it is that worker's to run, not ours to follow
   * (nor to take back when it parks). Claimed on its first transition, a run may be held here a moment
   * and still lose. A run taken over is still its dead owner's (`dead`) until its claim commits: let go
   * then, its saga would be unregistered while it runs on here, and once it left memory (a commit
   * failed while the database restarted) no worker would continue it, owned by this live one.
   */
  async #settle(dead: readonly string[]): Promise<void> {
    const { storage, executor } = this.#options;
    const ids = [...this.#contested];
    if (ids.length === 0) return;
    const records = await getRunsOf(storage, ids);
    ids.forEach((id, i) => {
      const record = records[i];
      // Nobody's yet, or still a dead worker's (the claim is on its way, or everybody lost): asked
      // again at the next pass.
      if (
        record &&
        !STOPPED_STATUSES.includes(record.status) &&
        (record.owner === null || dead.includes(record.owner))
      )
        return;
      this.#contested.delete(id);
      if (record?.owner !== executor.owner) this.#options.unhost(id);
    });
  }
}
