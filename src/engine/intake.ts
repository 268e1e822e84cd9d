/**
 * How runs come into an executor's memory: claimed (as a write of its own, or riding on the
 * run's first transition), hosted, handed the signals that arrived meanwhile; recovered from dead
 * executors; reopened after someone acted on them.
 */
import { NotFoundError, SlipwayError } from "../errors.js";
import {
  type ClaimRequest,
  FINAL_STATUSES,
  getRunsOf,
  type RunRecord,
  type RunSnapshot,
  type RunStatus,
  type SignalRecord,
  type Transition,
} from "../storage/types.js";
import { Batcher } from "./batcher.js";
import type { ExecutorSettings } from "./executor-options.js";
import type { RunHandle } from "./handles.js";
import { HostedRun } from "./hosted-run.js";
import { RunHosting } from "./hosting.js";

/** Pauses between tries to continue runs whose commit failed (doubling from the first). */
const MIN_WRITE_RETRY_MS = 500;
const MAX_WRITE_RETRY_MS = 4_000;

/** Largest batch of claims or snapshot loads handed to storage at once (see the constructor). */
const INTAKE_BATCH = 128;

export abstract class RunIntake extends RunHosting {
  /** Runs being claimed, with the signals delivered to them meanwhile (handed over once hosted). */
  protected readonly claiming = new Map<string, SignalRecord[]>();
  protected readonly claims: Batcher<ClaimRequest, RunSnapshot | undefined>;
  /** Batched snapshot reads, when the storage can claim in a transition (`loadMany`). */
  protected readonly loads: Batcher<string, RunSnapshot | undefined> | undefined;
  /** Batched reads of the runs signals name, to tell which are this executor's to wake. */
  readonly #runReads: Batcher<string, RunRecord | undefined>;
  /** When recovery last ran. */
  protected lastRecovery = 0;
  /** When runs whose commit failed are next tried again, and the pause after that. */
  #retryWritesAt = 0;
  #retryWritesPauseMs = MIN_WRITE_RETRY_MS;

  protected constructor(settings: ExecutorSettings) {
    super(settings);
    // Runs come into memory (claims, loads) in smaller batches than commits: a burst of
    // wake-ups then flows through as a pipeline, the first woken finishing while later ones are still
    // being loaded, instead of thousands held in memory at once and moving through every step
    // together. Less live at once is less garbage-collector work, the action slots are not all taken
    // at once, and the whole burst ends sooner.
    this.claims = new Batcher((requests) => this.storage.claimMany(requests), INTAKE_BATCH);
    const storage = this.storage;
    if (typeof storage.loadMany === "function")
      this.loads = new Batcher((ids) => storage.loadMany!(ids), INTAKE_BATCH);
    // A poll hands over up to a page of signals at once: their runs are read in one statement.
    this.#runReads = new Batcher((ids) => getRunsOf(storage, ids));
  }

  /** Claims and continues every incomplete run of this executor's sagas that nobody alive runs. */
  async recover(): Promise<number> {
    if (this.closed) return 0;
    this.lastRecovery = this.clock.now();
    const sagas = this.registry.names;
    const deadList = await this.ownership.deadOwners();
    const dead = new Set(deadList);
    const now = this.clock.now();
    const unownedWaiting = { sagas, statuses: ["waiting"], owner: null } as const;
    // Parked runs are only read when something is due for them: thousands may be parked.
    const lists = await Promise.all([
      this.storage.listRuns({ sagas, statuses: ["running", "compensating"] }),
      this.storage.listRuns({ ...unownedWaiting, wakeAtOrBefore: now }),
      this.storage.listRuns({ ...unownedWaiting, cancelRequested: true }),
      this.storage.listRuns({ ...unownedWaiting, withPendingSignals: true }),
      ...deadList.map((owner) => this.storage.listRuns({ sagas, statuses: ["waiting"], owner })),
    ]);
    const ids = new Set<string>();
    for (const record of lists.flat()) {
      if (this.runs.has(record.id) || !this.registry.runsHere(record)) continue;
      if (record.owner === null || record.owner === this.owner || dead.has(record.owner)) ids.add(record.id);
    }
    // All at once, so the claims go to storage as one batch.
    const claimed = await Promise.all([...ids].map((id) => this.claim(id, "recovery", deadList)));
    // Forget dead executors that own nothing any more; their lock slots and waiting rows first: once
    // an executor is forgotten, nothing proves it dead, and a slot of its would be held for good.
    for (const id of deadList) {
      if ((await this.storage.listRuns({ owner: id, limit: 1 })).length > 0) continue;
      await this.storage.locks?.().freeOwners([id]);
      await this.storage.removeExecutor(id);
    }
    return claimed.filter(Boolean).length;
  }

  /**
   * Continues from storage the runs whose commit storage threw (a full disk): their first
   * transition fails again while it still throws (they are remembered again, and tried after a
   * longer pause, up to a few seconds), and succeeds once space is back.
   */
  protected retryFailedWrites(): void {
    if (this.writeFailures.size === 0 || this.closed) {
      this.#retryWritesPauseMs = MIN_WRITE_RETRY_MS;
      return;
    }
    const now = this.clock.now();
    if (now < this.#retryWritesAt) return;
    this.#retryWritesAt = now + this.#retryWritesPauseMs;
    this.#retryWritesPauseMs = Math.min(this.#retryWritesPauseMs * 2, MAX_WRITE_RETRY_MS);
    for (const [id, dropped] of this.writeFailures) {
      // Its aborted bodies first settle: a job must never run twice at once.
      if (dropped.busy) continue;
      this.writeFailures.delete(id);
      this.claim(id, "storage writable again").catch((error: unknown) => {
        this.writeFailures.set(id, dropped);
        this.logger.error({ err: error, runId: id }, "could not claim a run again");
      });
    }
  }

  /**
   * Claims a run that stopped for someone to act (`from`), rewrites it as `change` says, and
   * continues it here.
   */
  protected async reopen(
    runId: string,
    from: RunStatus,
    reason: string,
    change: (snapshot: RunSnapshot) => Pick<Transition, "run" | "steps">,
  ): Promise<RunHandle> {
    this.assertOpen();
    const record = await this.storage.getRun(runId);
    if (!record) throw new NotFoundError(`no run ${runId}`);
    if (record.status !== from)
      throw new SlipwayError(
        "conflict",
        `run ${runId} is ${record.status}, not ${from}: nothing to ${reason}`,
      );
    const snapshot = await this.claims.submit({
      runId,
      owner: this.owner,
      takeOverFrom: await this.ownership.deadOwners(),
    });
    if (!snapshot) throw new SlipwayError("conflict", `run ${runId} is owned by another executor`);
    const { run, steps } = change(snapshot);
    const now = this.clock.now();
    const transition: Transition = { runId, owner: this.owner };
    if (run) transition.run = run;
    if (steps) transition.steps = steps.map((step) => ({ ...step, updatedAt: now }));
    if ((await this.commits.submit(transition)) !== "ok")
      throw new SlipwayError("conflict", `run ${runId} changed during ${reason}`);
    const fresh = await this.storage.load(runId);
    if (fresh) this.#host(fresh, reason, undefined);
    return this.handle(runId);
  }

  /**
   * Claims a run and continues it here. False if someone else has it or it is not ours. With
   * a claim on the first transition, true once it is hosted here (as before, its first transition is
   * then on its way): should another executor get there first, that transition fails and the
   * run leaves quietly, having run nothing.
   */
  protected claim(runId: string, reason: string, takeOverFrom?: readonly string[]): Promise<boolean> {
    if (this.loads)
      return new Promise((resolve) => this.#claimOnFirstTransition(runId, reason, takeOverFrom, resolve));
    return this.#claimThenHost(runId, reason, takeOverFrom);
  }

  /** The claim as its own write (storages without `loadMany`): claim and snapshot, then host. */
  async #claimThenHost(
    runId: string,
    reason: string,
    takeOverFrom: readonly string[] | undefined,
  ): Promise<boolean> {
    if (this.closed || this.runs.has(runId) || this.claiming.has(runId)) return false;
    const delivered: SignalRecord[] = [];
    this.claiming.set(runId, delivered);
    try {
      const snapshot = await this.claims.submit({
        runId,
        owner: this.owner,
        takeOverFrom: takeOverFrom ?? (await this.ownership.deadOwners()),
      });
      if (!snapshot) return false;
      if (!this.registry.hasName(snapshot.run.saga)) {
        await this.commits.submit({ runId, owner: this.owner, run: { release: true } });
        return false;
      }
      const run = this.#host(snapshot, reason, undefined);
      for (const signal of delivered) run?.deliver(signal);
      return run !== undefined;
    } finally {
      this.claiming.delete(runId);
    }
  }

  /**
   * The claim without a write of its own: load the snapshot (a read, batched), decide, and let the
   * run's first transition take ownership on the condition that its revision has not moved
   * (`Transition.claim`). Nothing runs before that transition commits; if it loses, nothing was
   * written. Callbacks rather than promises: a burst of signals wakes thousands at once.
   */
  #claimOnFirstTransition(
    runId: string,
    reason: string,
    takeOverFrom: readonly string[] | undefined,
    done?: (claimed: boolean) => void,
  ): void {
    if (this.closed || this.runs.has(runId) || this.claiming.has(runId)) {
      done?.(false);
      return;
    }
    const delivered: SignalRecord[] = [];
    this.claiming.set(runId, delivered);
    // Claiming lasts until the claim is settled (committed or lost); `done` hears once it is hosted.
    const settled = () => {
      if (this.claiming.get(runId) === delivered) this.claiming.delete(runId);
    };
    const finish = (claimed: boolean) => {
      settled();
      done?.(claimed);
    };
    const host = (snapshot: RunSnapshot) => {
      if (this.closed || this.runs.has(runId)) return finish(false);
      const revision = snapshot.run.revision;
      snapshot.run = { ...snapshot.run, owner: this.owner };
      const run = this.#host(snapshot, reason, revision, settled);
      if (!run) return finish(false);
      // Signals persisted since the snapshot was read (the run dedups those it already has).
      for (const signal of delivered) run.deliver(signal);
      done?.(true);
    };
    this.loads!.enqueue(runId, (error, snapshot) => {
      if (error !== undefined) {
        this.logger.error({ err: error, runId }, "could not load a run to claim it");
        return finish(false);
      }
      if (!snapshot) return finish(false);
      const record = snapshot.run;
      if (FINAL_STATUSES.includes(record.status) || record.status === "needs_attention") return finish(false);
      if (!this.registry.hasName(record.saga)) return finish(false);
      const owner = record.owner;
      if (owner === null || owner === this.owner) return host(snapshot);
      const takeOver = (dead: readonly string[]) => (dead.includes(owner) ? host(snapshot) : finish(false));
      if (takeOverFrom) return takeOver(takeOverFrom);
      this.ownership.deadOwners().then(takeOver, (lookupError: unknown) => {
        this.logger.error({ err: lookupError, runId }, "could not look up dead executors");
        finish(false);
      });
    });
  }

  /**
   * Continues a claimed run here. A run of a version newer than any registered here is
   * released for an up-to-date executor (rolling deploys); one of a retired version needs attention.
   */
  #host(
    snapshot: RunSnapshot,
    reason: string,
    claimRevision: number | undefined,
    onClaim?: (won: boolean) => void,
  ): HostedRun | undefined {
    const record = snapshot.run;
    const saga = this.registry.get(record.saga, record.version);
    if (saga) {
      const run = new HostedRun(this, saga, snapshot, claimRevision, onClaim);
      this.runs.set(record.id, run);
      run.resume(reason);
      return run;
    }
    const versions = this.registry.versions(record.saga);
    if (!this.registry.runsHere(record)) {
      // Claimed on the first transition: nothing was taken, nothing to give back.
      if (claimRevision === undefined)
        this.commits
          .submit({ runId: record.id, owner: this.owner, run: { release: true } })
          .catch((error: unknown) =>
            this.logger.error({ err: error, runId: record.id }, "could not release a run of another version"),
          );
      return undefined;
    }
    const message = `saga ${record.saga} v${record.version} is not registered with this executor (it has ${versions.map((v) => `v${v}`).join(", ")}); register that version and resume the run`;
    this.logger.error({ runId: record.id }, message);
    const event = {
      runId: record.id,
      seq: snapshot.nextEventSeq,
      type: "run:needs_attention" as const,
      action: null,
      at: this.clock.now(),
      data: { error: message },
    };
    this.commits
      .submit({
        runId: record.id,
        owner: this.owner,
        run: {
          status: "needs_attention",
          error: { name: "NotRegisteredError", message, code: "not_registered" },
          release: true,
        },
        events: [event],
        ...(claimRevision !== undefined && { claim: { revision: claimRevision } }),
      })
      .then(
        (result) => {
          if (result !== "ok") return;
          this.publish([{ ...event, saga: record.saga, runName: record.runName }]);
          this.resolveWaiters(record.id);
        },
        // Storage unreachable: recovery comes back to the run and says so again.
        (error: unknown) =>
          this.logger.error({ err: error, runId: record.id }, "could not mark a run as needing attention"),
      );
    return undefined;
  }

  /** Hands a persisted signal to its run, here if it runs here, else by waking it if it waits unowned. */
  protected deliver(signal: SignalRecord, known?: RunRecord): void {
    const local = this.runs.get(signal.runId);
    if (local) return local.deliver(signal);
    // Being claimed: the snapshot may predate this signal; hand it over once the run is hosted.
    const claiming = this.claiming.get(signal.runId);
    if (claiming) claiming.push(signal);
    else this.#wakeIfOurs(signal.runId, "signal", known);
  }

  /** `known`: the record as the caller just read it; read again unless it says parked. */
  #wakeIfOurs(runId: string, reason: string, known?: RunRecord): void {
    const wake = (record: RunRecord | undefined) => {
      if (!record || !this.registry.runsHere(record) || record.status !== "waiting" || record.owner !== null)
        return;
      if (this.loads) this.#claimOnFirstTransition(runId, reason, undefined);
      else
        this.#claimThenHost(runId, reason, undefined).catch((error: unknown) =>
          this.logger.error({ err: error, runId }, "could not claim a run"),
        );
    };
    if (known?.status === "waiting" && known.owner === null) return wake(known);
    this.#runReads.enqueue(runId, (error, record) => {
      if (error === undefined) wake(record);
      else this.logger.error({ err: error, runId }, "could not read a run to wake it");
    });
  }
}
