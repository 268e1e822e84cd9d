/** Idempotent starts: an existing run is returned only to a start that would have created it. */
import type { Saga } from "../definition/saga.js";
import { IdempotencyConflictError } from "../errors.js";
import type { Json, JsonObject } from "../json.js";
import type { RunRecord } from "../storage/types.js";

/** Throws unless an existing run is what a start with this saga and input would create. */
export function assertSameStart(record: RunRecord, saga: Saga, input: JsonObject): void {
  const what = `run ${record.id} already exists`;
  const advice = "start with a new id, or repeat the original start to get the existing run";
  if (record.saga !== saga.name || record.version !== saga.version)
    throw new IdempotencyConflictError(
      `${what} as saga ${record.saga} v${record.version}, not ${saga.name} v${saga.version}: ${advice}`,
    );
  const keys = new Set([...Object.keys(record.input), ...Object.keys(input)]);
  const differ = [...keys].filter((key) => !jsonEqual(record.input[key], input[key])).sort();
  if (differ.length > 0)
    throw new IdempotencyConflictError(
      `${what} with a different input (${differ.join(", ")} ${differ.length === 1 ? "differs" : "differ"}): ${advice}`,
    );
}

/** Deep equality of JSON values, ignoring the order of object keys. */
function jsonEqual(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((key) => Object.hasOwn(b, key) && jsonEqual(a[key], b[key]));
}
