/** JSON text for storage columns, shared by the backends so they accept and reject exactly the same values. */
import { ValidationError } from "../errors.js";

/** JSON text of a value, or a ValidationError naming it when JSON cannot represent it. */
export function toJsonText(value: unknown, what: string): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (error) {
    throw new ValidationError("storage", `${what} is not JSON-serializable: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (text === undefined) throw new ValidationError("storage", `${what} is not JSON-serializable`);
  return text;
}

export function toNullableJsonText(value: unknown, what: string): string | null {
  return value === null || value === undefined ? null : toJsonText(value, what);
}

export function parseNullable<T>(text: string | null): T | null {
  return text === null ? null : (JSON.parse(text) as T);
}
