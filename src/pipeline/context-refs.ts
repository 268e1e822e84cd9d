/**
 * Checks of references to the `event` a run started by and, in a loop's jobs, to their iteration
 * (`loop.iteration`, `loop.previous.<job>.outputs.<name>`), where they are written.
 */
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

/** Checks an `event.` reference against the fields events have. */
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

export const LOOP_ONLY =
  "`loop` can be read only by the jobs of a loop (the `jobs:` of a job with `loop:`) and by its `until` and `reason`";

/** Checks a `loop.` reference against the body's jobs (`jobs`). */
export function checkLoopRef(
  ref: Extract<Expr, { kind: "ref" }>,
  jobs: readonly string[],
  report: (offset: number, message: string, suggestion?: string) => void,
): void {
  const [first, job, outputs, name, ...rest] = ref.path;
  const at = (i: number) => ref.pathOffsets[i] ?? ref.offset;
  const fields = ["iteration", "previous"];
  if (first === undefined) {
    report(
      ref.offset,
      "`loop` is not a value: write `loop.iteration` or `loop.previous.<job>.outputs.<name>`",
    );
    return;
  }
  if (!fields.includes(first)) {
    report(
      at(0),
      `unknown loop field \`${first}\` (fields: ${listOr(fields, "and")})`,
      closest(first, fields),
    );
    return;
  }
  if (first === "iteration") {
    if (job !== undefined) report(at(1), `\`loop.iteration\` is a plain value: it has no \`${job}\``);
    return;
  }
  const shape = "write `loop.previous.<job>.outputs.<name>`: the previous iteration's jobs' outputs";
  if (job === undefined) {
    report(ref.offset, shape);
    return;
  }
  if (!jobs.includes(job)) {
    report(
      at(1),
      `\`loop.previous\` reads the loop's own jobs, and \`${job}\` is not one of them (${listOr(jobs, "and")})`,
      closest(job, jobs),
    );
    return;
  }
  if (outputs !== "outputs" || name === undefined || rest.length > 0)
    report(
      outputs === undefined ? ref.offset : at(2),
      shape,
      outputs === undefined ? undefined : closest(outputs, ["outputs"]),
    );
}
