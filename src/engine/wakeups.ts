/**
 * How an executor learns that something is due without being told in-process: a timer for the next
 * wake-up of a parked run, and a poll of storage for what other processes wrote (signals, cancel
 * requests, wake-ups, ends of awaited runs) that also runs recovery every half lease.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { ClockTimer } from "../clock.js";
import { SlipwayError } from "../errors.js";
import { type SignalWithRun, STOPPED_STATUSES } from "../storage/types.js";
import type { ExecutorSettings } from "./executor-options.js";
import { RunIntake } from "./intake.js";

/** Signals read from storage at once by a poll. */
const SIGNAL_PAGE = 1000;

export abstract class RunWakeups extends RunIntake {
  /** The last signal seq read from storage (or sent through this executor). */
  protected signalCursor = 0;
  /** Seqs of signals sent through this executor that the storage poll has not passed yet. */
  protected readonly sentHere = new Set<number>();
  #wakeTimer: ClockTimer | undefined;
  #wakeAt = Number.POSITIVE_INFINITY;
  #pollTimer: ClockTimer | undefined;
  #polling = false;
  /** The poll and the wake-up under way, if any: closing waits for them before storage goes. */
  #busy = new Set<Promise<void>>();

  protected constructor(settings: ExecutorSettings) {
    super(settings);
  }

  /** Stops the calls of `storage.onChange`, if the storage makes them. */
  #stopListening: (() => void) | undefined;
  /** A change was told while a poll ran: poll again once it ends. */
  #pollAgain = false;
  /** The last poll failed for want of storage (said once, not at every poll, until one succeeds). */
  #storageDown = false;

  /** Polls from now on (the executor is open), and at once when storage tells of a change. */
  protected startPolling(): void {
    this.#stopListening = this.storage.onChange?.(() => this.#pollNow());
    this.#schedulePoll();
  }

  /** Polls now rather than at the next tick (another process wrote a signal or a cancel request). */
  #pollNow(): void {
    if (this.closed) return;
    if (this.#polling) {
      this.#pollAgain = true;
      return;
    }
    this.clock.clearTimeout(this.#pollTimer);
    this.#tracked(() => this.#poll());
  }

  /** Stops the poll and the wake-up timer (the executor is closing), and waits for one under way. */
  protected async stopWakeups(): Promise<void> {
    this.#stopListening?.();
    this.clock.clearTimeout(this.#pollTimer);
    this.clock.clearTimeout(this.#wakeTimer);
    await Promise.all(this.#busy);
  }

  /** Runs `work` as one of the wake-ups `stopWakeups` waits for. */
  #tracked(work: () => Promise<void>): void {
    const done = work().finally(() => this.#busy.delete(done));
    this.#busy.add(done);
  }

  protected scheduleWake(at: number): void {
    if (this.closed || at >= this.#wakeAt) return;
    this.clock.clearTimeout(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = this.clock.setTimeout(
      () => this.#tracked(() => this.#wakeDue()),
      Math.max(0, at - this.clock.now()),
    );
  }

  async #wakeDue(): Promise<void> {
    this.#wakeTimer = undefined;
    this.#wakeAt = Number.POSITIVE_INFINITY;
    if (this.closed) return;
    const sagas = this.registry.names;
    try {
      const due = await this.storage.listRuns({
        sagas,
        statuses: ["waiting"],
        owner: null,
        wakeAtOrBefore: this.clock.now(),
        limit: 1000,
      });
      await Promise.all(
        due
          .filter((record) => this.registry.runsHere(record))
          .map((record) => this.claim(record.id, "timer")),
      );
      const next = await this.storage.nextWakeAt(sagas);
      if (next !== undefined) this.scheduleWake(due.length === 1000 ? this.clock.now() : next);
    } catch (error) {
      // Storage unreachable (a database restarting): the poll says so and, once it reads the next
      // wake-up again, sets this timer again; meanwhile it is tried at the poll's interval.
      if (!(error instanceof SlipwayError && error.code === "storage"))
        this.logger.error({ err: error }, "could not wake due runs");
      this.scheduleWake(this.clock.now() + this.settings.pollIntervalMs);
    }
  }

  #schedulePoll(): void {
    if (this.closed) return;
    this.#pollTimer = this.clock.setTimeout(
      () => this.#tracked(() => this.#poll()),
      this.settings.pollIntervalMs,
    );
  }

  /** A page of signals after `cursor`, with their runs where the storage reads them together. */
  async #signalsAfter(cursor: number): Promise<SignalWithRun[]> {
    if (this.storage.signalsWithRunsAfter) return this.storage.signalsWithRunsAfter(cursor, SIGNAL_PAGE);
    const signals = await this.storage.signalsAfter(cursor, SIGNAL_PAGE);
    return signals.map((signal) => ({ signal, run: undefined }));
  }

  /** Picks up what other processes wrote: signals, cancel requests, wake-ups, ends of awaited runs. */
  async #poll(): Promise<void> {
    if (this.#polling || this.closed) return;
    this.#polling = true;
    try {
      this.retryFailedWrites();
      // Signals sent through this executor were delivered when sent: step over a run of them without
      // reading them back (after a burst of sends, that is every signal since the last poll).
      while (this.sentHere.delete(this.signalCursor + 1)) this.signalCursor++;
      // Page after page while pages come full (a burst of signals), each delivered as it is read,
      // with its run read in the same statement where the storage can (whose it is to wake).
      for (;;) {
        const page = await this.#signalsAfter(this.signalCursor);
        for (const { signal, run } of page) {
          this.signalCursor = Math.max(this.signalCursor, signal.seq);
          // Signals sent through this executor were delivered when sent.
          if (!this.sentHere.delete(signal.seq) && signal.consumedBy === null) this.deliver(signal, run);
        }
        if (page.length < SIGNAL_PAGE || this.closed) break;
      }
      this.mayHaveStaged ||= existsSync(join(this.dataDir, "staged"));
      const sagas = this.registry.names;
      // Read together: one round trip of waiting, not three in a row (in a burst, the signals that
      // arrived meanwhile are read only once these are back).
      const [cancelling, cancelledParked, next] = await Promise.all([
        this.storage.listRuns({ owner: this.owner, cancelRequested: true }),
        this.storage.listRuns({ sagas, statuses: ["waiting"], owner: null, cancelRequested: true }),
        this.storage.nextWakeAt(sagas),
      ]);
      for (const record of cancelling) {
        const local = this.runs.get(record.id);
        if (local && local.status !== "compensating") local.cancel(record.cancelRequested ?? "cancelled");
      }
      for (const record of cancelledParked)
        if (this.registry.runsHere(record)) await this.claim(record.id, "cancel");
      if (next !== undefined) this.scheduleWake(next);
      for (const id of this.waiters.keys()) {
        if (this.runs.has(id)) continue;
        const record = await this.storage.getRun(id);
        if (record && STOPPED_STATUSES.includes(record.status)) this.resolveWaiters(id);
      }
      // Take over from executors that died, within a heartbeat of their death being provable.
      if (this.clock.now() - this.lastRecovery >= this.settings.heartbeatIntervalMs) await this.recover();
      if (this.#storageDown) this.logger.info("storage is reachable again: the executor goes on");
      this.#storageDown = false;
    } catch (error) {
      // Storage unreachable (a database restarting): nothing can be claimed or written; the poll
      // goes on trying at its interval, and runs whose commits failed are continued once it is back.
      const unreachable = error instanceof SlipwayError && error.code === "storage";
      if (!unreachable || !this.#storageDown)
        this.logger.error(
          { err: error },
          unreachable
            ? "storage is unreachable: the executor takes no new work until it is back"
            : "executor poll failed",
        );
      this.#storageDown ||= unreachable;
    } finally {
      this.#polling = false;
      if (this.#pollAgain) {
        this.#pollAgain = false;
        this.#pollNow();
      } else this.#schedulePoll();
    }
  }
}
