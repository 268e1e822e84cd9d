/** JSON value types: everything Slipway persists is plain JSON. */
import { ValidationError } from "./errors.js";

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * How deep arrays and objects may nest in JSON Slipway is given (request bodies, signal payloads,
 * action outputs). Reading, checking and writing JSON recurse once per level, so a value nested
 * 100,000 deep would exhaust the stack; real payloads nest a few levels. See Limits in docs/server.md.
 */
export const MAX_JSON_DEPTH = 64;

const DEPTH_LIMIT_TEXT = `the limit of ${MAX_JSON_DEPTH} levels (MAX_JSON_DEPTH, a fixed limit: see Limits in docs/server.md)`;

/** `…nests deeper than the limit of 64 levels (…)`, for a JSON text or value too deep. */
export function tooDeepMessage(what: string): string {
  return `${what} nests arrays and objects deeper than ${DEPTH_LIMIT_TEXT}`;
}

/**
 * The offset in a JSON text where arrays and objects first nest deeper than `max`, or undefined.
 * A scan of the text, so nothing is built or recursed into before the depth is known.
 */
export function jsonTooDeep(text: string, max = MAX_JSON_DEPTH): number | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c)
        i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return i;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}

/**
 * Throws unless `value` survives JSON unchanged: plain objects, arrays, strings, finite numbers,
 * booleans and null. `where` names the value in the message.
 */
export function assertJson(value: unknown, where: string): asserts value is Json {
  const problem = findNonJson(value, where, new Set());
  if (problem === TOO_DEEP) throw new ValidationError("invalid_input", tooDeepMessage(where));
  if (problem) throw new TypeError(`${problem} is not JSON-serializable`);
}

const TOO_DEEP = "\0too deep";

function findNonJson(value: unknown, path: string, seen: Set<object>): string | undefined {
  // `seen` holds the objects being checked, one per level.
  if (seen.size >= MAX_JSON_DEPTH && typeof value === "object" && value !== null) return TOO_DEEP;
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${path} (${value})`;
    case "object": {
      if (value === null) return undefined;
      if (seen.has(value)) return `${path} (circular)`;
      seen.add(value);
      try {
        if (Array.isArray(value)) {
          for (let i = 0; i < value.length; i++) {
            const problem = findNonJson(value[i], `${path}[${i}]`, seen);
            if (problem) return problem;
          }
          return undefined;
        }
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null)
          return `${path} (a ${proto?.constructor?.name ?? "class"} instance)`;
        for (const key of Object.keys(value)) {
          const problem = findNonJson((value as Record<string, unknown>)[key], `${path}.${key}`, seen);
          if (problem) return problem;
        }
        return undefined;
      } finally {
        seen.delete(value);
      }
    }
    default:
      return `${path} (${typeof value})`;
  }
}
