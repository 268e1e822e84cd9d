/**
 * Run name patterns (`--name`, the API's `name`): story 1's `{ticket}-{branch}-{attempt}`. Each
 * `{placeholder}` is an input of the run (`{ticket}`, or `{inputs.ticket}`), a field of what started
 * it (`{sha}`, `{pull_request.number}`, or `{event.branch}`), or `{attempt}`: one more than the
 * highest attempt of earlier runs whose names differ only there. `{{` and `}}` are literal braces.
 */
import { closest, listOr } from "../problems.js";
import { EVENT_FIELDS } from "./expressions.js";
import type { Value } from "./model.js";
import { PipelineInputError } from "./problems.js";

/** A resolved pattern with `{attempt}` still open: the name is `before`, the attempt, `after`. */
export interface AttemptPattern {
  before: string;
  after: string;
}

export const ATTEMPT = "attempt";

const PLACEHOLDER = /^[A-Za-z_][A-Za-z0-9_-]*(\.[A-Za-z_][A-Za-z0-9_-]*)*$/;

/** Whether a given name is a pattern (has a brace), rather than a name used as it is. */
export function isNamePattern(name: string): boolean {
  return name.includes("{") || name.includes("}");
}

/**
 * Resolves every placeholder but `{attempt}`: the name itself, or, with `{attempt}`, what surrounds
 * it. Unknown placeholders and values the run lacks are refused, each problem saying which and why.
 */
export function resolveNamePattern(
  pattern: string,
  values: { inputs: Readonly<Record<string, Value | undefined>>; event: Readonly<Record<string, unknown>> },
): string | AttemptPattern {
  const problems: string[] = [];
  const parts: string[] = [];
  let attemptAt: number | undefined;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if ((c === "{" || c === "}") && pattern[i + 1] === c) {
      parts.push(c);
      i++;
      continue;
    }
    if (c === "}") {
      problems.push(`a \`}\` without \`{\` at character ${i + 1} of the run name: write \`}}\` for a brace`);
      continue;
    }
    if (c !== "{") {
      parts.push(c);
      continue;
    }
    const end = pattern.indexOf("}", i);
    const placeholder = end === -1 ? undefined : pattern.slice(i + 1, end);
    if (placeholder === undefined || !PLACEHOLDER.test(placeholder)) {
      problems.push(
        `\`{\` at character ${i + 1} of the run name starts no placeholder such as \`{ticket}\`: write \`{{\` for a brace`,
      );
      if (end !== -1) i = end;
      continue;
    }
    i = end;
    if (placeholder === ATTEMPT) {
      if (attemptAt !== undefined) problems.push("the run name has `{attempt}` twice: it counts once");
      attemptAt = parts.join("").length;
      continue;
    }
    const value = lookUp(placeholder, values);
    if (typeof value === "string") parts.push(value);
    else problems.push(value.problem);
  }
  if (problems.length > 0) throw new PipelineInputError(problems);
  const name = parts.join("");
  return attemptAt === undefined ? name : { before: name.slice(0, attemptAt), after: name.slice(attemptAt) };
}

/** The attempt a name has under the pattern, if it is one of its names. */
export function attemptIn(name: string, pattern: AttemptPattern): number | undefined {
  if (!name.startsWith(pattern.before) || !name.endsWith(pattern.after)) return undefined;
  const middle = name.slice(pattern.before.length, name.length - pattern.after.length);
  return /^[1-9][0-9]{0,8}$/.test(middle) ? Number(middle) : undefined;
}

function lookUp(
  placeholder: string,
  values: { inputs: Readonly<Record<string, Value | undefined>>; event: Readonly<Record<string, unknown>> },
): string | { problem: string } {
  const [head, ...rest] = placeholder.split(".");
  const inputNames = Object.keys(values.inputs);
  const fromInput = (name: string): string | { problem: string } => {
    const value = values.inputs[name];
    if (value === undefined || value === null)
      return { problem: `\`{${placeholder}}\` in the run name: input ${name} has no value for this run` };
    return String(value);
  };
  if (head === "inputs" && rest.length === 1) {
    if (Object.hasOwn(values.inputs, rest[0]!)) return fromInput(rest[0]!);
    return unknown(placeholder, rest[0]!, inputNames, inputNames, `the pipeline has no input ${rest[0]}`);
  }
  if (rest.length === 0 && Object.hasOwn(values.inputs, head!)) return fromInput(head!);
  const path = head === "event" ? rest : [head!, ...rest];
  const [field, sub, ...more] = path;
  const nested = field === undefined ? undefined : EVENT_FIELDS[field];
  const known =
    field !== undefined &&
    Object.hasOwn(EVENT_FIELDS, field) &&
    more.length === 0 &&
    (sub === undefined ? nested === null : nested?.includes(sub) === true);
  if (!known) {
    const candidates = [
      ATTEMPT,
      ...inputNames,
      ...Object.entries(EVENT_FIELDS).flatMap(([f, subs]) => (subs ? subs.map((s) => `${f}.${s}`) : [f])),
    ];
    return unknown(
      placeholder,
      placeholder,
      candidates,
      inputNames,
      "it is no input of the pipeline and no event field",
    );
  }
  let value: unknown = values.event[field!];
  if (sub !== undefined) value = (value as Record<string, unknown> | undefined)?.[sub];
  if (value === undefined || value === null || value === "")
    return {
      problem: `\`{${placeholder}}\` in the run name: this run's event (${String(values.event.kind ?? "manual")}) has no ${path.join(".")}`,
    };
  return typeof value === "string" ? value : JSON.stringify(value);
}

function unknown(
  placeholder: string,
  name: string,
  candidates: readonly string[],
  inputs: readonly string[],
  why: string,
): { problem: string } {
  const near = closest(name, candidates);
  return {
    problem: `unknown placeholder \`{${placeholder}}\` in the run name: ${why}${near === undefined ? "" : ` (did you mean \`{${near}}\`?)`}; placeholders are \`{attempt}\`, inputs${inputs.length > 0 ? ` (${listOr(inputs.slice(0, 10), "and")})` : ""} and event fields (\`{sha}\`, \`{branch}\`, \`{pull_request.number}\`...)`,
  };
}
