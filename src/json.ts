/** JSON value types: everything Slipway persists is plain JSON. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * Throws unless `value` survives JSON unchanged: plain objects, arrays, strings, finite numbers,
 * booleans and null. `where` names the value in the message.
 */
export function assertJson(value: unknown, where: string): asserts value is Json {
  const problem = findNonJson(value, where, new Set());
  if (problem) throw new TypeError(`${problem} is not JSON-serializable`);
}

function findNonJson(value: unknown, path: string, seen: Set<object>): string | undefined {
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
