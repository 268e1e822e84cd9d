/** A server's `retention:` prunes ended runs older than its age, at once and then every period, on the injected clock. */
import { describe, expect, it } from "vitest";
import { createLogger } from "../../../src/logging.js";
import { startRetention } from "../../../src/runs/retention.js";
import type { PruneOptions } from "../../../src/runs/service.js";
import { ManualClock } from "../../../src/testing/clock.js";

describe("retention", () => {
  it("prunes what ended before now minus the age, at start and every period, until stopped", async () => {
    const clock = new ManualClock(1_000_000);
    const asked: number[] = [];
    let failNext = false;
    const runs = {
      prune: async (options: PruneOptions) => {
        asked.push(options.endedBefore);
        if (failNext) {
          failNext = false;
          throw new Error("disk full");
        }
        return { removed: ["old"] };
      },
    };
    const retention = startRetention({
      runs,
      clock,
      logger: createLogger({ level: "silent" }),
      olderThanMs: 500,
      everyMs: 100,
    });
    expect(await retention.sweep()).toEqual({ removed: ["old"] });
    expect(asked).toEqual([999_500]);
    await clock.advance(100);
    expect(asked).toEqual([999_500, 999_600]);
    // A sweep that fails is tried again the next period.
    failNext = true;
    await clock.advance(100);
    await clock.advance(100);
    expect(asked).toEqual([999_500, 999_600, 999_700, 999_800]);
    await retention.stop();
    await clock.advance(1_000);
    expect(asked).toHaveLength(4);
  });
});
