/** Conformance case for the optional trigger store: what triggers remember, acted on once. */
import assert from "node:assert/strict";
import type { Storage } from "../../storage/types.js";

export async function triggerStateIsDurableAndOnce(storage: Storage): Promise<void> {
  const store = storage.triggers!();
  const event = { key: "origin:push:refs/heads/main:abc", source: "origin", kind: "push", seenAt: 10 };
  assert.equal(await store.recordEvent({ ...event, event: { sha: "abc", n: [1, "é"] } }), true);
  assert.equal(
    await store.recordEvent({ ...event, event: { sha: "other" }, seenAt: 11 }),
    false,
    "a key is seen once",
  );
  assert.deepEqual(await store.getEvent(event.key), { ...event, event: { sha: "abc", n: [1, "é"] } });
  assert.equal(await store.getEvent("missing"), undefined);
  await store.recordEvent({ key: "other:push:x", source: "other", kind: "push", event: {}, seenAt: 20 });

  const started = { key: event.key, pipeline: "ci", verdict: "started" as const, reason: null, runId: "r1" };
  await store.putVerdict({ ...started, workspace: "/w/1", at: 12 });
  await store.putVerdict({
    ...started,
    pipeline: "lint",
    verdict: "ignored",
    reason: "branch main",
    runId: null,
    workspace: null,
    at: 12,
  });
  // A later verdict of the same pipeline replaces the earlier one.
  await store.putVerdict({ ...started, workspace: "/w/2", at: 13 });
  assert.deepEqual(
    (await store.verdicts(event.key)).map((v) => [v.pipeline, v.verdict, v.runId, v.workspace, v.at]),
    [
      ["ci", "started", "r1", "/w/2", 13],
      ["lint", "ignored", null, null, 12],
    ],
  );
  const recent = await store.recentEvents(10);
  assert.deepEqual(
    recent.map((e) => [e.key, e.verdicts.length]),
    [
      ["other:push:x", 0],
      [event.key, 2],
    ],
    "newest first, with verdicts",
  );
  assert.deepEqual(
    (await store.recentEvents(10, "origin")).map((e) => e.key),
    [event.key],
  );
  assert.deepEqual(
    (await store.workspaces()).map((v) => v.workspace),
    ["/w/2"],
  );
  await store.clearWorkspace(event.key, "ci");
  assert.deepEqual(await store.workspaces(), []);

  assert.equal(await store.recordDelivery("origin", "d1", 1), true);
  assert.equal(await store.recordDelivery("origin", "d1", 2), false, "a replayed delivery");
  assert.equal(await store.recordDelivery("other", "d1", 2), true, "delivery ids are per source");

  assert.equal(await store.getSourceState("origin"), undefined);
  const state = {
    source: "origin",
    refs: { "refs/heads/main": "abc" },
    lastPollAt: 5,
    outcome: "ok",
    failures: 0,
    nextPollAt: 9,
    extra: { etag: "W/1" },
  };
  await store.putSourceState(state);
  await store.putSourceState({ ...state, source: "a", outcome: "git ls-remote failed", failures: 2 });
  await store.putSourceState({ ...state, refs: { "refs/heads/main": "def" } });
  assert.deepEqual(await store.getSourceState("origin"), { ...state, refs: { "refs/heads/main": "def" } });
  assert.deepEqual(
    (await store.listSourceStates()).map((s) => [s.source, s.failures]),
    [
      ["a", 2],
      ["origin", 0],
    ],
  );

  assert.deepEqual(await store.approvals("origin", 4), []);
  await store.approve("origin", 4, "bbb", "ana", 1);
  await store.approve("origin", 4, "aaa", "bo", 2);
  await store.approve("origin", 4, "aaa", "bo", 3);
  await store.approve("other", 4, "ccc", "ana", 1);
  assert.deepEqual(
    await store.approvals("origin", 4),
    ["aaa", "bbb"],
    "per source and pull request, once each",
  );

  assert.equal(await store.lastFiring("nightly"), undefined);
  assert.equal(await store.claimFiring("nightly", 60_000), true);
  assert.equal(await store.claimFiring("nightly", 60_000), false, "one minute fires once");
  assert.equal(await store.claimFiring("nightly", 0), false, "never an earlier minute");
  assert.equal(await store.claimFiring("nightly", 120_000), true);
  assert.equal(await store.lastFiring("nightly"), 120_000);
}
