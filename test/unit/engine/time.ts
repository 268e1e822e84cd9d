/** Driving a manual clock in engine tests: time moves only as far as the test says. */
import type { ManualClock } from "../../../src/testing/clock.js";
import { eventually } from "../../helpers.js";

/**
 * Waits until `check` holds without moving time: timers already due (set by work that settled after
 * the last `advance`) fire, nothing later does.
 */
export function reach<T>(clock: ManualClock, check: () => T | Promise<T>, what: string): Promise<T> {
  return eventually(async () => {
    const value = await check();
    if (!value) await clock.advance(0);
    return value;
  }, what);
}

/**
 * Fires the clock's timers one due time after another until `check` holds: for outcomes whose exact
 * timing the test does not assert.
 */
export function driveUntil<T>(clock: ManualClock, check: () => T | Promise<T>, what: string): Promise<T> {
  return eventually(async () => {
    const value = await check();
    if (!value) await clock.next();
    return value;
  }, what);
}
