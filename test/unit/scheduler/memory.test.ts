/** `memory: auto`: p95 of measured peaks plus a margin, with a floor, a default before any measurement, and a cap. */
import { describe, expect, it } from "vitest";
import { autoMemory } from "../../../src/scheduler/memory.js";
import { GiB, MiB } from "./helpers.js";

describe("autoMemory", () => {
  it("requests the p95 of recent peaks plus 20 %, rounded up to a MiB", () => {
    // 20 samples: the p95 (nearest rank) is the 19th smallest, 1900 MiB; one outlier is ignored.
    const samples = Array.from({ length: 19 }, (_, i) => (i + 1) * 100 * MiB).concat([8 * GiB]);
    expect(autoMemory(samples)).toBe(Math.ceil((1900 * 1.2 * MiB) / MiB) * MiB);
  });

  it("uses the largest sample when there are few", () => {
    expect(autoMemory([1 * GiB, 2 * GiB, 3 * GiB], { margin: 0.5 })).toBe(4.5 * GiB);
  });

  it("never requests less than the floor", () => {
    expect(autoMemory([10 * MiB])).toBe(256 * MiB);
    expect(autoMemory([10 * MiB], { floorBytes: 512 * MiB })).toBe(512 * MiB);
  });

  it("requests 1 GiB before any run was measured, or what the caller chooses", () => {
    expect(autoMemory([])).toBe(1 * GiB);
    expect(autoMemory([Number.NaN, -1, 0])).toBe(1 * GiB);
    expect(autoMemory([], { unmeasuredBytes: 2 * GiB })).toBe(2 * GiB);
  });

  it("is capped by the pool so one bloated run can't make the job unadmittable", () => {
    expect(autoMemory([30 * GiB], { maxBytes: 16 * GiB })).toBe(16 * GiB);
  });

  it("refuses a negative margin", () => {
    expect(() => autoMemory([1], { margin: -0.1 })).toThrow("margin must be 0 or more");
  });
});
