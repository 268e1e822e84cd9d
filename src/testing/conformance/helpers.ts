/** Shared helpers of the conformance cases: the two owners, create-and-read, single commits and snapshots. */
import assert from "node:assert/strict";
import type { ExecutionRecord, Storage, Transition } from "../../storage/types.js";
import { createTransition, executionRecord } from "../records.js";

export const OWNER = "executor-a";
export const OTHER = "executor-b";

export async function create(
  storage: Storage,
  id: string,
  overrides: Partial<ExecutionRecord> = {},
  owner: string | null = OWNER,
): Promise<ExecutionRecord> {
  const record = executionRecord(id, overrides);
  const [result] = await storage.commit([
    createTransition(record, owner ?? OWNER, owner === null ? { execution: { release: true } } : {}),
  ]);
  assert.equal(result, "ok", `create ${id}`);
  const stored = await storage.getExecution(id);
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

/** Everything observable about one execution, to prove a failed write changed nothing. */
export async function observe(storage: Storage, id: string) {
  return { snapshot: await storage.load(id), history: await storage.history(id) };
}
