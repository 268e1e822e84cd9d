/** The change feed: notices from run events, a slow listener bounded and told to re-read, resuming after a cursor. */
import { describe, expect, it } from "vitest";
import type { RunEvent, RunEventType } from "../../../src/engine/events.js";
import { ChangeFeed, type RunChange } from "../../../src/runs/changes.js";

function event(type: RunEventType, runId: string, action: string | null = null): RunEvent {
  return { type, runId, saga: "ship", runName: null, action, at: 0, data: null };
}

async function take(iterator: AsyncIterator<RunChange>, n: number): Promise<RunChange[]> {
  const out: RunChange[] = [];
  for (let i = 0; i < n; i++) out.push((await iterator.next()).value as RunChange);
  return out;
}

describe("ChangeFeed", () => {
  it("makes small notices of status changes and queue moves, and none of log progress", async () => {
    const feed = new ChangeFeed();
    const notices = feed.listen()[Symbol.asyncIterator]();
    feed.publish(event("run:started", "r1"));
    feed.publish({ ...event("action:progress", "r1", "build"), data: { message: "50%" } });
    feed.publish(event("action:started", "r1", "build"));
    feed.publish(event("undo:started", "r1", "build"));
    feed.publish(event("run:failed", "r1"));
    const got = await take(notices, 3);
    expect(got.map(({ cursor: _, ...rest }) => rest)).toEqual([
      { kind: "run", run: "r1", pipeline: "ship", status: "running" },
      { kind: "queue", run: "r1", pipeline: "ship", job: "build" },
      { kind: "run", run: "r1", pipeline: "ship", status: "failed" },
    ]);
    feed.close();
    expect((await notices.next()).done).toBe(true);
    expect(feed.listeners).toBe(0);
  });

  it("drops the notices of a listener that does not read, for one reset: its memory stays bounded", async () => {
    const feed = new ChangeFeed({ maxPending: 10 });
    const slow = feed.listen()[Symbol.asyncIterator]();
    const first = slow.next();
    feed.publish(event("run:started", "r0"));
    expect((await first).value).toMatchObject({ kind: "run", run: "r0" });
    for (let i = 1; i <= 1000; i++) feed.publish(event("run:started", `r${i}`));
    const [reset, after] = [(await slow.next()).value, slow.next()];
    expect(reset).toMatchObject({ kind: "reset" });
    feed.publish(event("run:completed", "r1"));
    expect((await after).value).toMatchObject({ kind: "run", run: "r1", status: "completed" });
    // Runs pruned: no status to tell, every listener re-reads.
    feed.publish(event("run:completed", "r2"));
    feed.reset();
    expect((await slow.next()).value).toMatchObject({ kind: "reset" });
    feed.close();
  });

  it("replays after a cursor within its window, and says reset before it or for another process's cursor", async () => {
    const feed = new ChangeFeed({ window: 5 });
    const live = feed.listen()[Symbol.asyncIterator]();
    for (let i = 0; i < 8; i++) feed.publish(event("run:started", `r${i}`));
    const all = await take(live, 8);
    const aborted = new AbortController();
    const recent = feed.listen({ after: all[4]!.cursor, signal: aborted.signal })[Symbol.asyncIterator]();
    expect((await take(recent, 3)).map((c) => c.cursor)).toEqual(all.slice(5).map((c) => c.cursor));
    aborted.abort();
    expect((await recent.next()).done).toBe(true);
    const old = feed.listen({ after: all[1]!.cursor })[Symbol.asyncIterator]();
    expect((await old.next()).value).toMatchObject({ kind: "reset", cursor: all[7]!.cursor });
    const elsewhere = feed.listen({ after: "abc.3" })[Symbol.asyncIterator]();
    expect((await elsewhere.next()).value).toMatchObject({ kind: "reset" });
    expect(() => feed.listen({ after: "3" })).toThrow(/Last-Event-ID/);
    feed.close();
  });
});
