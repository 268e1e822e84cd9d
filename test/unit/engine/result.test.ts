/**
 * `result()` of a run that ends while its storage read is on the way: the waiter is in place before the
 * read, so the end is told to it, not left for a poll to notice.
 */
import { join } from "node:path";
import { expect, it } from "vitest";
import { Executor } from "../../../src/engine/executor.js";
import { saga, z } from "../../../src/index.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import type { RunRecord } from "../../../src/storage/types.js";
import { captureLogs, eventually, tempDir, within } from "../../helpers.js";

/** Answers one run's reads as they were when asked, but only once `release` is called. */
class HeldReads extends MemoryStorage {
  held: { runId: string; asked: boolean; released: Promise<void>; release: () => void } | undefined;

  hold(runId: string): void {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    this.held = { runId, asked: false, released, release };
  }

  override async getRun(id: string): Promise<RunRecord | undefined> {
    const record = await super.getRun(id);
    const held = this.held;
    if (held?.runId === id) {
      held.asked = true;
      await held.released;
    }
    return record;
  }
}

it("tells the result of a run that ends while result() reads it", async () => {
  let go!: () => void;
  const gate = new Promise<void>((resolve) => (go = resolve));
  let started = false;
  const slow = saga("slow", { version: 1 })
    .action("work", {
      output: z.string(),
      run: async () => {
        started = true;
        await gate;
        return "done";
      },
    })
    .build();
  const storage = new HeldReads();
  // Polls once a minute: only the end itself can tell the waiter within the test's wait.
  const executor = await Executor.open({
    storage,
    sagas: [slow],
    dataDir: join(tempDir(), "data"),
    pollIntervalMs: 60_000,
    logger: captureLogs().logger,
  });
  try {
    const handle = await executor.start(slow, {});
    await eventually(() => started, "the action to start");
    storage.hold(handle.id);
    const result = handle.result();
    // Read while it runs; the run ends before the read is answered.
    await eventually(() => storage.held?.asked, "result() to read the run");
    go();
    await eventually(async () => (await storage.load(handle.id))?.run.status === "completed", "the end");
    storage.held!.release();
    expect(await within(result, "the result")).toMatchObject({ status: "completed" });
  } finally {
    await executor.close();
  }
});
