/** Which executors are dead: the lease, and (unless `pidLiveness` is off) a process gone from this host. */
import { hostname } from "node:os";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import { saga } from "../../../src/definition/saga.js";
import { Executor } from "../../../src/engine/executor.js";
import { findDeadExecutors } from "../../../src/engine/liveness.js";
import { createLogger } from "../../../src/logging.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import type { Storage } from "../../../src/storage/types.js";
import { eventually, tempDir } from "../../helpers.js";

/** Above the largest pid Linux hands out (4,194,304 at most): no process has it. */
const GONE_PID = 4_194_305;

const work = saga("work", { version: 1 })
  .action("step", { produces: { done: z.boolean() }, run: () => ({ done: true }) })
  .build();

/** An executor of this host that heartbeat just now, whose process is gone, holding one running run. */
async function freshlyDead(storage: Storage, now: number): Promise<void> {
  await storage.upsertExecutor({
    id: "ghost",
    host: hostname(),
    pid: GONE_PID,
    startedAt: now,
    heartbeatAt: now,
    maxRuns: null,
  });
  const [result] = await storage.commit([
    {
      runId: "r1",
      owner: "ghost",
      create: {
        id: "r1",
        saga: "work",
        version: 1,
        status: "running",
        input: {},
        runName: null,
        owner: "ghost",
        revision: 0,
        wakeAt: null,
        cancelRequested: null,
        cause: null,
        error: null,
        createdAt: now,
        updatedAt: now,
        endedAt: null,
        parent: null,
      },
    },
  ]);
  expect(result).toBe("ok");
}

describe("executor liveness", () => {
  it("counts a gone process on this host as dead at once, unless pidLiveness is off", async () => {
    const storage = new MemoryStorage();
    const now = Date.now();
    await freshlyDead(storage, now);
    expect(await findDeadExecutors(storage, 10_000, undefined, now)).toEqual(["ghost"]);
    expect(await findDeadExecutors(storage, 10_000, undefined, now, false)).toEqual([]);
    // Past its lease it is dead either way.
    expect(await findDeadExecutors(storage, 10_000, undefined, now + 10_001, false)).toEqual(["ghost"]);
    await storage.close();
  });

  it("an executor with pidLiveness off leaves a gone process's runs alone until the lease ends", async () => {
    const storage = new MemoryStorage();
    await freshlyDead(storage, Date.now());
    const options = { storage, sagas: [work], dataDir: tempDir(), logger: createLogger({ level: "silent" }) };
    const leaseOnly = await Executor.open({ ...options, pidLiveness: false });
    expect((await storage.getRun("r1"))?.owner).toBe("ghost");
    await leaseOnly.close();
    const byPid = await Executor.open(options);
    await eventually(
      async () => (await storage.getRun("r1"))?.status === "completed",
      "the run taken over at once and completed",
    );
    await byPid.close();
    await storage.close();
  });

  it("writes its maxRuns with its heartbeat (null: no limit), and refuses one that is no positive integer", async () => {
    const storage = new MemoryStorage();
    const options = { storage, sagas: [work], dataDir: tempDir(), logger: createLogger({ level: "silent" }) };
    const limited = await Executor.open({ ...options, id: "a-limited", maxRuns: 10 });
    const unlimited = await Executor.open({ ...options, id: "b-unlimited" });
    expect((await storage.listExecutors()).map((e) => [e.id, e.maxRuns])).toEqual([
      ["a-limited", 10],
      ["b-unlimited", null],
    ]);
    await limited.close();
    await unlimited.close();
    for (const maxRuns of [0, 2.5, Number.POSITIVE_INFINITY])
      await expect(Executor.open({ ...options, maxRuns })).rejects.toThrow(
        `maxRuns must be a positive integer or null, got ${maxRuns}`,
      );
    await storage.close();
  });
});
