/**
 * Transitions encoded into the JSON rows the set-wise statements take (statements.ts), everything
 * serialized before the first write, and batches split so that no statement touches one run twice.
 */
import { SlipwayError } from "../../errors.js";
import { toJsonText, toNullableJsonText } from "../json-text.js";
import type { RunRecord, Transition } from "../types.js";
import { PATCH_FIELDS } from "./statements.js";

export interface EncodedTransition {
  /** Its place in the batch, where its result goes. */
  index: number;
  runId: string;
  /** A `runs` row when the transition creates the run. */
  insert: Record<string, unknown> | null;
  /** An UPDATE_RUNS row when it does not. */
  update: Record<string, unknown> | null;
  steps: Record<string, unknown>[];
  events: Record<string, unknown>[];
  consume: Record<string, unknown>[];
  notify: Record<string, unknown>[];
}

export function encodeTransition(t: Transition, now: number, index = 0): EncodedTransition {
  const encoded: EncodedTransition = {
    index,
    runId: t.runId,
    insert: null,
    update: null,
    steps: [],
    events: [],
    consume: [],
    notify: [],
  };
  const patch = t.run;
  if (t.create) {
    const c = t.create;
    if (c.id !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} creates a different run ${c.id}`);
    }
    // The patch of a creating transition is folded into the inserted row.
    const merged: RunRecord = { ...c, owner: t.owner };
    if (patch) {
      for (const field of PATCH_FIELDS) {
        if (patch[field] !== undefined) (merged as unknown as Record<string, unknown>)[field] = patch[field];
      }
      if (patch.release) merged.owner = null;
    }
    encoded.insert = {
      id: merged.id,
      saga: merged.saga,
      version: merged.version,
      status: merged.status,
      input: toJsonText(merged.input, `input of ${merged.id}`),
      run_name: merged.runName ?? null,
      owner: merged.owner,
      revision: merged.revision,
      wake_at: merged.wakeAt ?? null,
      cancel_requested: merged.cancelRequested ?? null,
      cause: toNullableJsonText(merged.cause, `cause of ${merged.id}`),
      error: toNullableJsonText(merged.error, `error of ${merged.id}`),
      created_at: merged.createdAt,
      updated_at: merged.updatedAt,
      ended_at: merged.endedAt ?? null,
      parent_run_id: merged.parent?.runId ?? null,
      parent_step: merged.parent?.step ?? null,
    };
  } else {
    let m = 0;
    const row: Record<string, unknown> = {
      id: t.runId,
      owner: t.owner,
      claim_revision: t.claim ? t.claim.revision : null,
      release: patch?.release === true,
      now,
    };
    if (patch) {
      PATCH_FIELDS.forEach((field, bit) => {
        const value = patch[field];
        if (value === undefined) return;
        m |= 1 << bit;
        row[COLUMN[field]] =
          field === "cause" || field === "error"
            ? toNullableJsonText(value, `${field} of ${t.runId}`)
            : value;
      });
    }
    row.m = m;
    encoded.update = row;
  }
  for (const step of t.steps ?? []) {
    if (step.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries a step of ${step.runId}`);
    }
    const where = `step ${step.action} of ${step.runId}`;
    encoded.steps.push({
      run_id: step.runId,
      action: step.action,
      status: step.status,
      attempt: step.attempt,
      failures: step.failures,
      output: toNullableJsonText(step.output, `output of ${where}`),
      error: toNullableJsonText(step.error, `error of ${where}`),
      state: toNullableJsonText(step.state, `state of ${where}`),
      undo_attempt: step.undoAttempt,
      undo_error: toNullableJsonText(step.undoError, `undoError of ${where}`),
      started_at: step.startedAt ?? null,
      ended_at: step.endedAt ?? null,
      updated_at: step.updatedAt,
    });
  }
  // A step written twice by one transition: the last write wins, as sequential upserts would have it.
  if (encoded.steps.length > 1) {
    const last = new Map(encoded.steps.map((s) => [s.action, s]));
    if (last.size < encoded.steps.length) encoded.steps = [...last.values()];
  }
  for (const event of t.events ?? []) {
    if (event.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries an event of ${event.runId}`);
    }
    encoded.events.push({
      run_id: event.runId,
      seq: event.seq,
      type: event.type,
      action: event.action ?? null,
      at: event.at,
      data: toNullableJsonText(event.data, `data of event ${event.seq} of ${event.runId}`),
    });
  }
  for (const consumed of t.consumeSignals ?? []) {
    encoded.consume.push({ seq: consumed.seq, action: consumed.action, run_id: t.runId });
  }
  for (const signal of t.notify ?? []) {
    encoded.notify.push({
      run_id: signal.runId,
      name: signal.name,
      payload: toJsonText(signal.payload, `payload of signal ${signal.name} to ${signal.runId}`),
      created_at: signal.createdAt,
    });
  }
  return encoded;
}

const COLUMN = {
  status: "status",
  wakeAt: "wake_at",
  cause: "cause",
  error: "error",
  endedAt: "ended_at",
  cancelRequested: "cancel_requested",
} as const satisfies Record<(typeof PATCH_FIELDS)[number], string>;

/**
 * Splits a batch, in order, into parts in which each run appears once: a statement cannot update a
 * row twice, and a later transition of a run must see what the earlier one wrote.
 */
export function partsWithDistinctRuns(batch: readonly EncodedTransition[]): EncodedTransition[][] {
  const parts: EncodedTransition[][] = [];
  let part: EncodedTransition[] = [];
  let runs = new Set<string>();
  for (const t of batch) {
    if (runs.has(t.runId)) {
      parts.push(part);
      part = [];
      runs = new Set();
    }
    part.push(t);
    runs.add(t.runId);
  }
  if (part.length > 0) parts.push(part);
  return parts;
}
