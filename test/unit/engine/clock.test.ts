/** The manual test clock: time moves only on `advance`, timers fire in order, work settles between them. */
import { describe, expect, it } from "vitest";
import { systemClock } from "../../../src/clock.js";
import { ManualClock } from "../../../src/testing/clock.js";

describe("ManualClock", () => {
  it("stands still until advanced, then fires what is due in time order, same times in setting order", async () => {
    const clock = new ManualClock(1_000);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`c@${clock.now()}`), 30);
    clock.setTimeout(() => fired.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 10);
    clock.setTimeout(() => fired.push(`late@${clock.now()}`), 31);
    expect(clock.now()).toBe(1_000);
    expect(clock.pending).toBe(4);
    expect(clock.nextAt).toBe(1_010);
    await clock.advance(30);
    expect(fired).toEqual(["a@1010", "b@1010", "c@1030"]);
    expect(clock.now()).toBe(1_030);
    expect(clock.pending).toBe(1);
  });

  it("fires timers set by fired timers and by the work they start, within the same advance", async () => {
    const clock = new ManualClock(0);
    const fired: number[] = [];
    const tick = () => {
      fired.push(clock.now());
      // Re-armed from a later turn of the event loop, as a storage write's callback would.
      setImmediate(() => Promise.resolve().then(() => clock.setTimeout(tick, 10)));
    };
    clock.setTimeout(tick, 10);
    await clock.advance(45);
    expect(fired).toEqual([10, 20, 30, 40]);
    expect(clock.nextAt).toBe(50);
  });

  it("clears timers, ignores a cleared or fired one, and works unbound", async () => {
    const clock = new ManualClock(5);
    const { now, setTimeout, clearTimeout } = clock;
    let fired = 0;
    const timer = setTimeout(() => (fired += 1), 1);
    clearTimeout(timer);
    clearTimeout(timer);
    clearTimeout(undefined);
    const negative = setTimeout(() => (fired += 10), -5);
    await clock.advance(1);
    clearTimeout(negative);
    expect(fired).toBe(10);
    expect(now()).toBe(6);
    expect(clock.pending).toBe(0);
  });

  it("next() jumps to the next due timer; advance refuses to go back", async () => {
    const clock = new ManualClock(0);
    expect(await clock.next()).toBe(false);
    let fired = false;
    clock.setTimeout(() => (fired = true), 250);
    expect(await clock.next()).toBe(true);
    expect(fired).toBe(true);
    expect(clock.now()).toBe(250);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    await clock.advanceTo(100);
    expect(clock.now()).toBe(250);
  });

  it("starts at the real time by default", () => {
    const before = Date.now();
    const now = new ManualClock().now();
    expect(now).toBeGreaterThanOrEqual(before);
    expect(now).toBeLessThanOrEqual(Date.now());
  });
});

describe("systemClock", () => {
  it("reads the real time and sets real timers", async () => {
    const { now, setTimeout, clearTimeout } = systemClock;
    expect(Math.abs(now() - Date.now())).toBeLessThan(1_000);
    clearTimeout(setTimeout(() => expect.unreachable("cleared timer fired"), 0));
    await new Promise<void>((resolve) => setTimeout(resolve, 0));
  });
});
