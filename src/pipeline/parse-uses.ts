/** Parsing child pipelines: a job's `uses: ./other.yml` with its `with:` inputs, and a pipeline's top-level `outputs:`. */
import { isMap, isScalar, type Node } from "yaml";
import { describe, type Entry, type Reader } from "../yaml-reader.js";
import type { ExprScope } from "./expressions.js";
import type { Job, Template, UsesJob, WithValue } from "./model.js";
import { template } from "./parse-values.js";

/** Keys a `uses:` job may not have: the child pipeline's own jobs do the work. */
const NOT_WITH_USES = [
  "undo",
  "cleanup",
  "ready",
  "retries",
  "resources",
  "env",
  "working_directory",
] as const;

/** Input names, as `inputs:` declares them. */
const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

type Base = Omit<UsesJob, "kind" | "uses" | "usesPos" | "with" | "timeoutMs">;

/** A job with `uses:`: the child pipeline's path, its `with:` values, its `timeout`. */
export function parseUsesJob(
  r: Reader,
  fields: ReadonlyMap<string, Entry>,
  base: Base,
  scope: ExprScope,
): UsesJob {
  const name = base.name;
  for (const key of NOT_WITH_USES) {
    const field = fields.get(key);
    if (field === undefined) continue;
    const why =
      key === "resources"
        ? ": the child pipeline's jobs declare what they need, and this job holds nothing while it waits"
        : key === "env" || key === "working_directory"
          ? ": give the child pipeline what it needs as inputs in `with:`"
          : "";
    r.report(
      field.key,
      `\`${key}\` applies to \`run\` jobs only (job \`${name}\` uses another pipeline)${why}`,
    );
  }
  const usesEntry = fields.get("uses")!;
  const path = r.string(usesEntry.value, `\`uses\` of job \`${name}\``) ?? "";
  if (path !== "" && !/\.ya?ml$/i.test(path)) {
    r.report(
      usesEntry.value,
      `\`uses\` of job \`${name}\` must name a pipeline file (\`./other.yml\`, relative to this file), got \`${path}\``,
    );
  }
  const job: UsesJob = {
    ...base,
    kind: "uses",
    uses: path,
    usesPos: r.at(usesEntry.value),
    with: {},
  };
  const withEntry = fields.get("with");
  if (withEntry) job.with = parseWith(r, withEntry.value, name, scope);
  const timeout = fields.get("timeout");
  const timeoutMs = timeout && r.duration(timeout.value, `\`timeout\` of job \`${name}\``);
  if (timeoutMs !== undefined) job.timeoutMs = timeoutMs;
  return job;
}

/** `with:`: input name → a string (expressions allowed), a number or a boolean. */
function parseWith(r: Reader, node: Node, job: string, scope: ExprScope): Record<string, WithValue> {
  const values: Record<string, WithValue> = {};
  for (const entry of r.map(node, `\`with\` of job \`${job}\``)) {
    const label = `\`with.${entry.name}\` of job \`${job}\``;
    if (!INPUT_NAME.test(entry.name)) {
      r.report(entry.key, `${label}: \`${entry.name}\` is not a valid input name`);
      continue;
    }
    const value = entry.value;
    const pos = r.at(value ?? entry.key);
    const keyPos = r.at(entry.key);
    if (isScalar(value) && (typeof value.value === "number" || typeof value.value === "boolean")) {
      values[entry.name] = { value: value.value, pos, keyPos };
      continue;
    }
    if (!isScalar(value) || typeof value.value !== "string") {
      r.report(
        value ?? entry.key,
        `${label} must be a string, a number or a boolean, got ${describe(value)}`,
      );
      continue;
    }
    const text = template(r, value, label, scope);
    if (text) values[entry.name] = { value: text, pos, keyPos };
  }
  return values;
}

/** `with:` without `uses:`. */
export function reportWithoutUses(r: Reader, fields: ReadonlyMap<string, Entry>, job: string): void {
  const given = fields.get("with");
  if (given && !fields.has("uses"))
    r.report(
      given.key,
      `\`with\` gives inputs to the pipeline a job \`uses\`: job \`${job}\` has no \`uses\``,
    );
}

/**
 * The pipeline's `outputs:` (name → `${{ needs.<job>.outputs.<name> }}`), read when a run of it
 * completes as a child run: any job's outputs may be read, and its inputs.
 */
export function parsePipelineOutputs(
  r: Reader,
  node: Node,
  jobs: readonly Job[],
  inputs: readonly string[],
): Record<string, Template> {
  const outputs: Record<string, Template> = {};
  if (!isMap(node)) {
    r.report(node, `\`outputs\` must be a map of output names to values, got ${describe(node)}`);
    return outputs;
  }
  const names = jobs.map((job) => job.name);
  const only = "`outputs` can read only `needs.<job>.outputs.<name>` (any job's)";
  const scope: ExprScope = {
    roots: { needs: true, inputs: only, matrix: only, env: only, outputs: only },
    inputs,
    needs: names,
    jobs: names,
    env: [],
  };
  for (const entry of r.map(node, "`outputs`")) {
    if (!INPUT_NAME.test(entry.name)) {
      r.report(entry.key, `output name \`${entry.name}\` is not valid: use letters, digits, \`-\` and \`_\``);
      continue;
    }
    const text = template(r, entry.value, `\`outputs.${entry.name}\``, scope);
    if (text) outputs[entry.name] = text;
  }
  return outputs;
}
