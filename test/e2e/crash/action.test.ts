/** Crash test (a): SIGKILL while the 3rd of 5 sequential actions runs; a new process finishes the run. */
import { afterEach, describe, expect, it } from "vitest";
import type { EventRecord } from "../../../src/index.js";
import { blockKey } from "./fixtures/protocol.js";
import { CHAIN_ACTIONS } from "./fixtures/sagas.js";
import {
  keysOf,
  lifecycle,
  seqProblems,
  stateProblems,
  stepStatuses,
  summarize,
  trail,
  Workspace,
} from "./harness.js";

let ws: Workspace;
afterEach(async () => {
  await ws.dispose();
});

describe("kill during an action", () => {
  it.each([
    { kills: 1, procs: ["first", "last"] },
    // A crash loop: the restarted process dies in the same action before a third one gets through.
    { kills: 2, procs: ["first", "second", "last"] },
  ])(
    "killed $kills time(s): resumes at the interrupted action, never re-runs completed ones, loses no transition",
    async ({ kills, procs }) => {
      ws = new Workspace();
      const storage = await ws.storage();
      let id = "";
      const owners: string[] = [];
      const histories: EventRecord[][] = [];
      for (const [attempt, proc] of procs.slice(0, kills).map((p, i) => [i + 1, p] as const)) {
        const runner =
          attempt === 1
            ? ws.spawn(proc, { start: { saga: "chain", inputs: [{ tag: "t" }] } }, [blockKey("s3", "run")])
            : ws.spawn(proc, { await: [id] }, [blockKey("s3", "run")]);
        if (attempt === 1) id = (await runner.started())[0] ?? "";
        // s3's body starts only after the transition that completed s2 and started s3 is committed.
        await runner.waitFor(`s3 attempt ${attempt} to start`, () =>
          ws.runs().some((r) => r.action === "s3" && r.event === "start" && r.proc === proc),
        );
        await runner.kill();
        owners.push(runner.message("open")?.owner ?? "");

        // What the dead process left in the database, read before anyone recovers it.
        const before = await storage.load(id);
        if (!before) throw new Error("run missing after the kill");
        expect(stateProblems(before, await storage.history(id))).toEqual([]);
        expect(stepStatuses(before)).toEqual({
          s1: "completed#1",
          s2: "completed#1",
          s3: `running#${attempt}`,
        });
        expect(before?.run).toMatchObject({ status: "running", owner: owners.at(-1) });
        histories.push(await storage.history(id));
      }

      const last = ws.spawn("last", { await: [id] });
      const ended = await last.finished();
      expect(ended).toEqual([
        {
          kind: "ended",
          id,
          status: "completed",
          output: {
            tag: "t",
            v1: "t>s1",
            v2: "t>s1>s2",
            v3: "t>s1>s2>s3",
            v4: "t>s1>s2>s3>s4",
            v5: "t>s1>s2>s3>s4>s5",
          },
        },
      ]);

      const runs = ws.runs();
      // Completed before the first kill: ran once, in the first process, never again.
      for (const action of ["s1", "s2"])
        expect(trail(runs, id, action), action).toEqual(["first:start:1", "first:end:1"]);
      // Interrupted: ran again in each new process, with a higher attempt, under the same idempotency key.
      expect(trail(runs, id, "s3")).toEqual([
        ...procs.slice(0, kills).map((proc, i) => `${proc}:start:${i + 1}`),
        `last:start:${kills + 1}`,
        `last:end:${kills + 1}`,
      ]);
      expect(keysOf(runs, id, "s3", "run")).toEqual([`${id}/s3`]);
      for (const action of ["s4", "s5"])
        expect(trail(runs, id, action), action).toEqual(["last:start:1", "last:end:1"]);
      expect(runs.filter((r) => r.phase !== "run")).toEqual([]);

      // The history every killed process committed is kept whole, and the next one continued it.
      const history = await storage.history(id);
      expect(seqProblems(history)).toEqual([]);
      for (const before of histories) expect(history.slice(0, before.length)).toEqual(before);
      expect(lifecycle(history)).toEqual([
        "run:started",
        ...Array.from({ length: kills }, () => "run:resumed"),
        "run:completed",
      ]);
      const summary = summarize(history);
      const retries = Array.from({ length: kills }, (_, i) => i + 2);
      for (const action of CHAIN_ACTIONS) {
        const expected =
          action === "s3"
            ? { started: [1, ...retries], recovered: retries }
            : { started: [1], recovered: [] };
        expect(summary.get(action), action).toMatchObject({
          ...expected,
          completed: 1,
          failed: 0,
          undoStarted: [],
        });
      }
      const after = await storage.load(id);
      expect(stepStatuses(after)).toEqual({
        s1: "completed#1",
        s2: "completed#1",
        s3: `completed#${kills + 1}`,
        s4: "completed#1",
        s5: "completed#1",
      });
      expect(after?.run.owner).toBeNull();
    },
  );
});
