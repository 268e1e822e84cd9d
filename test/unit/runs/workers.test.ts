/** `GET /workers`' capacity figures, from executor rows and the runs each owns, on every backend. */
import { describe, expect, it } from "vitest";
import { loadWorkers } from "../../../src/runs/workers.js";
import { createTransition, executorRecord, runRecord } from "../../../src/testing/records.js";
import { backends, tempDir } from "../../helpers.js";

describe.each(backends)("workers on $name", (backend) => {
  it("report each one's maxRuns and its free room: maxRuns less the runs it holds, at least 0; null when unlimited", async () => {
    const storage = backend.open(tempDir());
    await storage.init();
    try {
      const now = Date.now();
      // On another host, beating now: alive, whatever their pids are here.
      const beat = { host: "elsewhere", startedAt: now, heartbeatAt: now };
      await storage.upsertExecutor(executorRecord("a-ten", { ...beat, maxRuns: 10 }));
      await storage.upsertExecutor(executorRecord("b-two", { ...beat, maxRuns: 2 }));
      await storage.upsertExecutor(executorRecord("c-unlimited", { ...beat, maxRuns: null }));
      const held = { "a-ten": 3, "b-two": 3, "c-unlimited": 4 };
      const results = await storage.commit(
        Object.entries(held).flatMap(([owner, count]) =>
          Array.from({ length: count }, (_, n) =>
            createTransition(runRecord(`${owner}-${n}`, { owner }), owner),
          ),
        ),
      );
      expect(new Set(results)).toEqual(new Set(["ok"]));

      const { workers } = await loadWorkers(storage, "a-ten", now);
      expect(
        workers.map((w) => ({
          id: w.id,
          alive: w.alive,
          runs: w.runs.length,
          maxRuns: w.maxRuns,
          free: w.free,
        })),
      ).toEqual([
        { id: "a-ten", alive: true, runs: 3, maxRuns: 10, free: 7 },
        // Holding more runs than its limit: no room, never less than none.
        { id: "b-two", alive: true, runs: 3, maxRuns: 2, free: 0 },
        { id: "c-unlimited", alive: true, runs: 4, maxRuns: null, free: null },
      ]);
    } finally {
      await storage.close();
    }
  });
});
