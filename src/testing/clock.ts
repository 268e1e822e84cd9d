/** A clock that moves only when a test says so: timeouts, sleeps, backoff and leases without real waiting. */
import type { Clock, ClockTimer } from "../clock.js";

interface Pending {
  readonly at: number;
  /** Order of setting, so timers due at the same time fire in the order they were set. */
  readonly seq: number;
  readonly callback: () => void;
}

/** Turns of the event loop let run after each fired timer (see `settle`). */
const SETTLE_TURNS = 20;
/** More timers than this fired by one `advance` is a timer re-arming itself forever. */
const MAX_FIRED = 100_000;

/**
 * A manual clock for tests. Pass it as the executor's `clock`; time stands still until `advance`,
 * which fires every timer due in order, letting the work each one starts settle before the next.
 *
 * ```ts
 * const clock = new ManualClock();
 * const executor = await Executor.open({ storage, sagas: [deploy], clock });
 * const handle = await executor.start(deploy, {});
 * await clock.advance(60_000); // the saga's one-minute sleep ends
 * ```
 *
 * Settling lets a fixed number of event-loop turns pass (enough for in-memory and SQLite storage);
 * work that waits on other I/O needs a wait for its outcome. `Executor.close()` bounds its wait for
 * running bodies in real time, so a test that never advances its clock still closes.
 */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<ClockTimer, Pending>();

  /** `start`: the time it shows first, in epoch ms; default the real time when it is created. */
  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  readonly now = (): number => this.#now;

  readonly setTimeout = (callback: () => void, ms: number): ClockTimer => {
    const timer = {};
    const delay = Number.isFinite(ms) ? Math.max(0, ms) : 0;
    this.#timers.set(timer, { at: this.#now + delay, seq: this.#seq++, callback });
    return timer;
  };

  readonly clearTimeout = (timer: ClockTimer | undefined): void => {
    if (timer !== undefined) this.#timers.delete(timer);
  };

  /** Timers set and not yet fired or cleared. */
  get pending(): number {
    return this.#timers.size;
  }

  /** When the next timer is due; undefined when none is set. */
  get nextAt(): number | undefined {
    return this.#next()?.[1].at;
  }

  /**
   * Moves time forward by `ms`, firing each timer that falls due on the way at its own time, in order
   * (timers set by fired ones included), and settling after each.
   */
  advance(ms: number): Promise<void> {
    if (!(Number.isFinite(ms) && ms >= 0)) throw new RangeError(`advance: ms must be >= 0, got ${ms}`);
    return this.advanceTo(this.#now + ms);
  }

  /** Moves time forward to `time` (epoch ms), as `advance` does; a time in the past only settles. */
  async advanceTo(time: number): Promise<void> {
    await settle();
    for (let fired = 0; ; fired++) {
      if (fired >= MAX_FIRED)
        throw new Error(`ManualClock: more than ${MAX_FIRED} timers fired in one advance`);
      const next = this.#next();
      if (!next || next[1].at > time) break;
      const [timer, pending] = next;
      this.#timers.delete(timer);
      this.#now = Math.max(this.#now, pending.at);
      pending.callback();
      await settle();
    }
    this.#now = Math.max(this.#now, time);
    await settle();
  }

  /** Moves time to the next due timer and fires what is due then; false when no timer is set. */
  async next(): Promise<boolean> {
    const at = this.nextAt;
    if (at === undefined) return false;
    await this.advanceTo(at);
    return true;
  }

  #next(): [ClockTimer, Pending] | undefined {
    let best: [ClockTimer, Pending] | undefined;
    for (const entry of this.#timers) {
      const pending = entry[1];
      if (!best || pending.at < best[1].at || (pending.at === best[1].at && pending.seq < best[1].seq))
        best = entry;
    }
    return best;
  }
}

/** Lets promise chains, group commits (`setImmediate`) and storage callbacks started so far run. */
export async function settle(turns = SETTLE_TURNS): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}
