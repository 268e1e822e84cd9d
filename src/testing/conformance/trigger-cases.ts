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

/**
 * A trigger lease (the one worker that polls a source): taken when free, renewed by its owner, refused
 * to others until it expires at an injected `now`, taken over then, released only by its owner.
 */
export async function triggerLeaseHasOneHolder(storage: Storage): Promise<void> {
  const store = storage.triggers!();
  const lease = "source:app";
  assert.deepEqual(await store.listLeases(), []);
  assert.equal(await store.takeLease(lease, "a", 1_000, 10_000), true, "a free lease is taken");
  assert.equal(await store.takeLease(lease, "b", 1_001, 10_000), false, "held by another");
  assert.equal(await store.takeLease(lease, "a", 5_000, 10_000), true, "its owner renews it");
  assert.deepEqual(await store.listLeases(), [{ name: lease, owner: "a", expiresAt: 15_000 }]);
  assert.equal(await store.takeLease(lease, "b", 14_999, 10_000), false, "renewed: not expired yet");
  assert.deepEqual(await store.listLeases(), [{ name: lease, owner: "a", expiresAt: 15_000 }], "unchanged");
  assert.equal(await store.takeLease(lease, "b", 15_000, 10_000), true, "expired: taken over");
  assert.equal(await store.takeLease(lease, "a", 15_001, 10_000), false, "the old owner lost it");
  assert.equal(await store.takeLease("schedule:x", "a", 15_001, 10_000), true, "leases are by name");

  // Released only by its owner.
  await store.releaseLease(lease, "a");
  assert.deepEqual(await store.listLeases(), [
    { name: "schedule:x", owner: "a", expiresAt: 25_001 },
    { name: lease, owner: "b", expiresAt: 25_000 },
  ]);
  await store.releaseLease(lease, "b");
  assert.equal(await store.takeLease(lease, "a", 15_002, 10_000), true, "released: free at once");

  // Taken by many at once (a cluster starting): exactly one gets it.
  const won = await Promise.all(
    ["c", "d", "e", "f"].map((owner) => store.takeLease("source:race", owner, 50_000, 10_000)),
  );
  assert.equal(won.filter(Boolean).length, 1, "one holder");
  const expired = await Promise.all(
    ["c", "d", "e", "f"].map((owner) => store.takeLease("source:race", owner, 60_000, 10_000)),
  );
  assert.equal(
    expired.filter(Boolean).length,
    1,
    "one holder of an expired lease, the previous one included",
  );
}
