import { describe, expect, it } from "vitest";
import { Turns } from "../../../src/http/turns.js";

/**
 * Takes a turn for each name; each, once granted, is recorded and spends `costMs` of the fake clock.
 * The first, alone in line when it came, starts in a turn of its own, whose end schedules the next
 * turn's grants; its handler then queues a marker with setImmediate, which runs after those grants:
 * where the marker lands shows which requests started in the second turn.
 */
async function order(turns: Turns, clock: { now: number }, names: string[], costMs: number) {
  const seen: string[] = [];
  await Promise.all(
    names.map((name, i) =>
      turns.take().then(() => {
        seen.push(name);
        clock.now += costMs;
        if (i === 0) setImmediate(() => seen.push("next turn"));
      }),
    ),
  );
  await new Promise((resolve) => setImmediate(resolve));
  return seen;
}

describe("Turns", () => {
  it("starts requests in the order they came, several in one turn while the budget lasts", async () => {
    const clock = { now: 0 };
    const turns = new Turns({ budgetMs: 8, now: () => clock.now });
    expect(await order(turns, clock, ["a", "b", "c", "d"], 1)).toEqual(["a", "b", "c", "d", "next turn"]);
  });

  it("leaves the rest for the next turn of the loop once a turn has spent its budget", async () => {
    const clock = { now: 0 };
    const turns = new Turns({ budgetMs: 8, now: () => clock.now });
    // The second turn starts b at 5 and c at 10 (5 ms into it); d would start 10 ms into it, past the
    // budget: the loop turns first.
    expect(await order(turns, clock, ["a", "b", "c", "d"], 5)).toEqual(["a", "b", "c", "next turn", "d"]);
    expect(turns.waiting).toBe(0);
  });

  it("starts at most maxPerTurn in one turn", async () => {
    const clock = { now: 0 };
    const turns = new Turns({ budgetMs: 8, maxPerTurn: 2, now: () => clock.now });
    expect(await order(turns, clock, ["a", "b", "c", "d", "e"], 0)).toEqual([
      "a",
      "b",
      "c",
      "next turn",
      "d",
      "e",
    ]);
  });

  it("always starts one request per turn, however long each takes", async () => {
    const clock = { now: 0 };
    const turns = new Turns({ budgetMs: 8, now: () => clock.now });
    expect(await order(turns, clock, ["a", "b", "c"], 100)).toEqual(["a", "b", "next turn", "c"]);
  });
});
