/** Following a run: a follower that stops reading holds a bounded number of live events. */
import { describe, expect, it } from "vitest";
import type { EventListener, RunEvent } from "../../../src/engine/events.js";
import type { Executor } from "../../../src/engine/executor.js";
import { followEvents, MAX_BUFFERED_EVENTS } from "../../../src/runs/follow.js";
import { MemoryStorage } from "../../../src/storage/memory.js";
import { createTransition, runRecord } from "../../../src/testing/records.js";

/** An executor that only publishes what the test tells it to, and has no history. */
function publisher() {
  const listeners = new Set<EventListener>();
  const executor = {
    on: (listener: EventListener) => {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    history: async () => [],
  } as unknown as Executor;
  const publish = (event: RunEvent) => {
    for (const listener of listeners) listener(event);
  };
  return { executor, publish };
}

function line(i: number): RunEvent {
  const data = { message: `line ${i}`, stream: "out" };
  return {
    type: "action:progress",
    runId: "r1",
    saga: "deploy",
    runName: null,
    action: "build",
    at: i,
    data,
  };
}

describe("followEvents", () => {
  it("keeps at most MAX_BUFFERED_EVENTS live lines for a follower that stopped reading, and says how many it dropped", async () => {
    const storage = new MemoryStorage();
    await storage.init();
    const record = runRecord("r1", { owner: "w" });
    await storage.commit([createTransition(record, "w")]);
    const { executor, publish } = publisher();
    const events = followEvents({ executor, storage, record, after: 0, hostedHere: () => true });
    // The follower reads once (the first read starts listening), then stalls while the job prints.
    const first = events.next();
    publish(line(0));
    expect((await first).value).toMatchObject({ data: { message: "line 0" } });
    const printed = MAX_BUFFERED_EVENTS + 5_000;
    for (let i = 1; i <= printed; i++) publish(line(i));
    const ended = { ...line(printed + 1), type: "run:completed" as const, seq: 9, action: null, data: {} };
    publish(ended);
    const read: RunEvent[] = [];
    for await (const event of events) read.push(event);
    expect(read).toHaveLength(MAX_BUFFERED_EVENTS + 2);
    expect(read[0]!.data).toMatchObject({ message: "line 1" });
    expect(read.at(-2)!.data).toMatchObject({ dropped: printed - MAX_BUFFERED_EVENTS });
    expect(read.at(-1)!.type).toBe("run:completed");
  });
});
