/**
 * A transition encoded into SQLite bind-ready arguments (everything
 * serialized before the first write); rows map back to records in ../rows.ts.
 */
import { SlipwayError } from "../../errors.js";
import { toJsonText, toNullableJsonText } from "../json-text.js";
import type { RunRecord, Transition } from "../types.js";
import { CLAIM_BIT, PATCH_COLUMNS, RELEASE_BIT, type Statement } from "./statements.js";

/** A transition with every value already bound-ready, so nothing can fail to serialize mid-write. */
export interface EncodedTransition {
  runId: string;
  /** Insert arguments when the transition creates the run. */
  insert: unknown[] | null;
  /** Conditional UPDATE (ownership check + patch) when it does not. */
  update: Statement | null;
  updateArgs: unknown[];
  steps: unknown[][];
  events: unknown[][];
  consume: unknown[][];
  /** Signals to other runs (`Transition.notify`): run id, name, payload text, created at, run id. */
  notify: unknown[][];
}

/** Encodes `t`; `updateStatement` gives the conditional UPDATE for a mask of patch fields. */
export function encodeTransition(
  t: Transition,
  now: number,
  updateStatement: (mask: number) => Statement,
): EncodedTransition {
  const encoded: EncodedTransition = {
    runId: t.runId,
    insert: null,
    update: null,
    updateArgs: [],
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
      for (const [field] of PATCH_COLUMNS) {
        if (patch[field] !== undefined) (merged as unknown as Record<string, unknown>)[field] = patch[field];
      }
      if (patch.release) merged.owner = null;
    }
    encoded.insert = [
      merged.id,
      merged.saga,
      merged.version,
      merged.status,
      toJsonText(merged.input, `input of ${merged.id}`),
      merged.runName ?? null,
      merged.owner,
      merged.revision,
      merged.wakeAt ?? null,
      merged.cancelRequested ?? null,
      toNullableJsonText(merged.cause, `cause of ${merged.id}`),
      toNullableJsonText(merged.error, `error of ${merged.id}`),
      merged.createdAt,
      merged.updatedAt,
      merged.endedAt ?? null,
      merged.parent?.runId ?? null,
      merged.parent?.step ?? null,
    ];
  } else {
    let mask = 0;
    const args: unknown[] = [now];
    if (patch) {
      for (let bit = 0; bit < PATCH_COLUMNS.length; bit++) {
        const field = PATCH_COLUMNS[bit]![0];
        const value = patch[field];
        if (value === undefined) continue;
        mask |= 1 << bit;
        args.push(
          field === "cause" || field === "error"
            ? toNullableJsonText(value, `${field} of ${t.runId}`)
            : value,
        );
      }
      if (patch.release) mask |= RELEASE_BIT;
    }
    if (t.claim) {
      mask |= CLAIM_BIT;
      if (!(mask & RELEASE_BIT)) args.push(t.owner);
      args.push(t.runId, t.claim.revision);
    } else args.push(t.runId, t.owner);
    encoded.update = updateStatement(mask);
    encoded.updateArgs = args;
  }
  for (const step of t.steps ?? []) {
    if (step.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries a step of ${step.runId}`);
    }
    const where = `step ${step.action} of ${step.runId}`;
    encoded.steps.push([
      step.runId,
      step.action,
      step.status,
      step.attempt,
      step.failures,
      toNullableJsonText(step.output, `output of ${where}`),
      toNullableJsonText(step.error, `error of ${where}`),
      toNullableJsonText(step.state, `state of ${where}`),
      step.undoAttempt,
      toNullableJsonText(step.undoError, `undoError of ${where}`),
      step.startedAt ?? null,
      step.endedAt ?? null,
      step.updatedAt,
    ]);
  }
  for (const event of t.events ?? []) {
    if (event.runId !== t.runId) {
      throw new SlipwayError("storage", `transition for ${t.runId} carries an event of ${event.runId}`);
    }
    encoded.events.push([
      event.runId,
      event.seq,
      event.type,
      event.action ?? null,
      event.at,
      toNullableJsonText(event.data, `data of event ${event.seq} of ${event.runId}`),
    ]);
  }
  for (const consumed of t.consumeSignals ?? []) {
    encoded.consume.push([consumed.action, consumed.seq, t.runId]);
  }
  for (const signal of t.notify ?? []) {
    const payload = toJsonText(signal.payload, `payload of signal ${signal.name} to ${signal.runId}`);
    encoded.notify.push([signal.runId, signal.name, payload, signal.createdAt, signal.runId]);
  }
  return encoded;
}
