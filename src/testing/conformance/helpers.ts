/** Shared helpers of the conformance cases: the two owners, create-and-read, single commits and snapshots. */
import assert from "node:assert/strict";
import type { RunRecord, Storage, Transition } from "../../storage/types.js";
import { createTransition, runRecord } from "../records.js";

export const OWNER = "executor-a";
export const OTHER = "executor-b";

export async function create(
  storage: Storage,
  id: string,
  overrides: Partial<RunRecord> = {},
  owner: string | null = OWNER,
): Promise<RunRecord> {
  const record = runRecord(id, overrides);
  const [result] = await storage.commit([
    createTransition(record, owner ?? OWNER, owner === null ? { run: { release: true } } : {}),
  ]);
  assert.equal(result, "ok", `create ${id}`);
  const stored = await storage.getRun(id);
  assert.ok(stored, `${id} readable after create`);
  return stored;
}

export async function commitOne(storage: Storage, transition: Transition): Promise<string | undefined> {
  const results = await storage.commit([transition]);
  assert.equal(results.length, 1);
  return results[0];
}

export function ids(records: readonly { id: string }[]): string[] {
  return records.map((r) => r.id);
}

export async function mustLoad(storage: Storage, id: string) {
  const snapshot = await storage.load(id);
  assert.ok(snapshot, `${id} exists`);
  return snapshot;
}

/** Everything observable about one run, to prove a failed write changed nothing. */
export async function observe(storage: Storage, id: string) {
  return { snapshot: await storage.load(id), history: await storage.history(id) };
}
