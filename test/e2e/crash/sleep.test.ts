/** Crash test (c): SIGKILL during a durable sleep; the new process re-arms the persisted timer, which fires on time. */
import { afterEach, describe, expect, it } from "vitest";
import { eventually, WAIT_MS } from "../../wait.js";
import { NAP_MS } from "./fixtures/sagas.js";
import { lifecycle, seqProblems, summarize, trail, Workspace } from "./harness.js";

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

describe("kill during a durable sleep", () => {
  it.each([
    { held: "unowned", executor: {} },
    { held: "owned", executor: { evictAfterMs: 120_000 } },
  ])(
    "$held sleep: the timer is re-armed by the new process and fires on time",
    async ({ held, executor }) => {
      ws = new Workspace();
      // Both processes load first and open on `go`: a slow process start (seconds on a busy machine)
      // cannot push the restart past the sleep's end.
      const first = ws.spawn("first", { start: { saga: "nap", inputs: [{}] }, executor, gated: true });
      const second = ws.spawn("second", { gated: true });
      await second.waitFor("it to be ready", () => second.message("ready"));
      await first.go();
      const [id] = await first.started();
      if (id === undefined) throw new Error("no run started");
      const storage = await ws.storage();
      await first.waitFor(`the sleep to be armed (${held})`, async () => {
        const snapshot = await storage.load(id);
        const waiting = snapshot?.steps.find((s) => s.action === "nap")?.status === "waiting";
        return waiting && (held === "owned" || snapshot?.run.owner === null);
      });
      await first.kill();

      const before = await storage.load(id);
      const until = before?.steps.find((s) => s.action === "nap")?.state?.until;
      if (typeof until !== "number")
        throw new Error(`nap has no persisted end: ${JSON.stringify(before?.steps)}`);
      expect(until - (before?.run.createdAt ?? 0)).toBeGreaterThanOrEqual(NAP_MS);
      if (held === "unowned")
        expect(before?.run).toMatchObject({ status: "waiting", owner: null, wakeAt: until });

      // Restart in the middle of the sleep, so both wrong outcomes are seconds away from the right one:
      // the timer firing at once (treated as overdue) or a full sleep after the restart (restarted from zero).
      const middle = until - NAP_MS / 2;
      await eventually(() => Date.now() >= middle, "the middle of the sleep", NAP_MS);
      await second.go({ await: [id] });
      const opened = await second.waitFor("the executor to open", () => second.message("open"));
      // Otherwise the sleep was already over at restart and this checks recovery, not re-arming.
      expect(opened.at, "restart happened before the sleep was due").toBeLessThan(until);
      const [ended] = await second.finished(NAP_MS + WAIT_MS);
      expect(ended).toMatchObject({ id, status: "completed" });

      const runs = ws.runs();
      expect(trail(runs, id, "before")).toEqual(["first:start:1", "first:end:1"]);
      expect(trail(runs, id, "after")).toEqual(["second:start:1", "second:end:1"]);
      const afterAt = runs.find((r) => r.action === "after")?.at ?? 0;
      // Not before the persisted end, and before a sleep restarted from zero in the new process would end.
      expect(afterAt).toBeGreaterThanOrEqual(until);
      expect(afterAt).toBeLessThan(opened.at + NAP_MS);

      const history = await storage.history(id);
      expect(seqProblems(history)).toEqual([]);
      expect(summarize(history).get("nap")).toMatchObject({ waiting: 1, completed: 1 });
      expect(lifecycle(history).at(-1)).toBe("run:completed");
    },
  );
});
