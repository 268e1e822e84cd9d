/**
 * `GET /events`: the server-wide change notices (runs/changes.ts) as Server-Sent Events, so a
 * dashboard re-reads its runs list and queue when told rather than on a timer.
 */
import type { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { RunService } from "../runs/service.js";
import type { ApiEnv } from "./access.js";

export function routeChanges(api: Hono<ApiEnv>, runs: RunService, keepAliveMs: number): void {
  api.get("/events", async (c) => {
    const aborted = new AbortController();
    // A malformed Last-Event-ID is refused here, before the stream starts.
    const changes = await runs.changes({ after: c.req.header("last-event-id"), signal: aborted.signal });
    return streamSSE(c, async (stream) => {
      stream.onAbort(() => aborted.abort());
      // Not while a write waits for the connection: a stalled listener gets nothing more queued.
      let writing = false;
      const keepAlive = setInterval(() => {
        if (!writing) void stream.write(": keep-alive\n\n").catch(() => {});
      }, keepAliveMs);
      try {
        // Sent at once, so a listener knows the stream is open before anything changes.
        await stream.write(": connected\n\n");
        // Each write waits until the connection takes it: a listener that reads slowly holds up only
        // its own notices, which the feed bounds (past a limit it drops them for one `reset`).
        for await (const { cursor, ...change } of changes) {
          writing = true;
          await stream.writeSSE({ event: change.kind, data: JSON.stringify(change), id: cursor });
          writing = false;
        }
      } finally {
        clearInterval(keepAlive);
        aborted.abort();
      }
    });
  });
}
