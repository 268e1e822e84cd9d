/** The `event` context of expressions: its fields, and the check of a reference to one (`event.pull_request.number`). */
import { closest, listOr } from "../problems.js";
import type { Expr } from "./model.js";

/**
 * What `event` holds (see docs/triggers.md): fields absent for a kind read as empty, so one pipeline
 * serves pushes, pull requests and manual runs alike.
 */
export const EVENT_FIELDS: Readonly<Record<string, readonly string[] | null>> = {
  kind: null,
  source: null,
  sha: null,
  ref: null,
  branch: null,
  tag: null,
  before: null,
  action: null,
  pull_request: ["number", "sha", "base", "head", "fork", "author", "url"],
  comment: ["id", "body", "author", "command"],
  schedule: ["cron", "time_zone", "minute"],
};

/** Checks `event.<field>[.<sub>]` against {@link EVENT_FIELDS}, reporting an unknown field with the closest one. */
export function checkEventRef(
  ref: Extract<Expr, { kind: "ref" }>,
  report: (offset: number, message: string, suggestion?: string) => void,
): void {
  const [first, second, ...rest] = ref.path;
  const fields = Object.keys(EVENT_FIELDS);
  if (first === undefined) {
    report(ref.offset, "`event` is not a value: name one, e.g. `event.sha`");
    return;
  }
  const at = (i: number) => ref.pathOffsets[i] ?? ref.offset;
  if (!Object.hasOwn(EVENT_FIELDS, first)) {
    report(
      at(0),
      `unknown event field \`${first}\` (fields: ${listOr(fields, "and")})`,
      closest(first, fields),
    );
    return;
  }
  const nested = EVENT_FIELDS[first];
  if (nested === null || nested === undefined) {
    if (second !== undefined) report(at(1), `\`event.${first}\` is a plain value: it has no \`${second}\``);
    return;
  }
  if (second === undefined) {
    report(ref.offset, `\`event.${first}\` is not a value: name one, e.g. \`event.${first}.${nested[0]}\``);
  } else if (!nested.includes(second)) {
    report(
      at(1),
      `unknown field \`${second}\` of \`event.${first}\` (fields: ${listOr(nested, "and")})`,
      closest(second, nested),
    );
  } else if (rest.length > 0) {
    report(at(2), `\`event.${first}.${second}\` is a plain value: it has no \`${rest[0]}\``);
  }
}
