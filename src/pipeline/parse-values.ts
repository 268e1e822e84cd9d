/** Values that hold expressions (templates, `if:` conditions, `env` maps), parsed and checked against what may be read where. */
import { isScalar, type Node, type Scalar } from "yaml";
import { describe, type Locate, type Position, type Reader } from "../yaml-reader.js";
import { checkExpr, ExpressionError, type ExprScope, parseCondition, parseTemplate } from "./expressions.js";
import type { Condition, Template } from "./model.js";

/** Stands in for a template that failed to parse; the pipeline is rejected anyway. */
export function placeholder(pos: Position): Template {
  return { source: "", parts: [], pos };
}

/** Reports an expression problem at its place in the file. */
function reportExpr(r: Reader, locate: Locate, label: string, error: unknown): void {
  if (!(error instanceof ExpressionError)) throw error;
  r.report(locate(error.offset), `${label}: ${error.message}`, error.suggestion);
}

/** A string with `${{ }}` parts, each parsed and checked against what `scope` allows. */
export function template(r: Reader, node: Node, label: string, scope: ExprScope): Template | undefined {
  const text = r.string(node, label);
  if (text === undefined) return undefined;
  const locate = r.locate(node as Scalar);
  let parsed: Template;
  try {
    parsed = parseTemplate(text, locate);
  } catch (error) {
    reportExpr(r, locate, label, error);
    return undefined;
  }
  for (const part of parsed.parts) {
    if (part.kind !== "expr") continue;
    for (const issue of checkExpr(part.expr, scope)) {
      r.report(locate(issue.offset), `${label}: ${issue.message}`, issue.suggestion);
    }
  }
  return parsed;
}

/** An `if:`: a YAML boolean, `${{ expr }}` or a bare expression, checked against `scope`. */
export function condition(r: Reader, node: Node, label: string, scope: ExprScope): Condition | undefined {
  if (!isScalar(node) || (typeof node.value !== "string" && typeof node.value !== "boolean")) {
    r.report(node, `${label} must be a condition such as \`\${{ inputs.deploy }}\`, got ${describe(node)}`);
    return undefined;
  }
  const locate = r.locate(node);
  let parsed: Condition;
  try {
    parsed = parseCondition(node.value, locate);
  } catch (error) {
    reportExpr(r, locate, label, error);
    return undefined;
  }
  for (const issue of checkExpr(parsed.expr, scope)) {
    r.report(locate(issue.offset), `${label}: ${issue.message}`, issue.suggestion);
  }
  return parsed;
}

/** Environment variable names, as POSIX shells accept them. */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * An `env:` map. Numbers and booleans are kept as written (`1.10` stays `1.10`, as GitHub does);
 * an empty value is refused, since `KEY:` is more often a slip than a wish for an empty string.
 */
export function parseEnv(
  r: Reader,
  node: Node,
  owner: string,
  scope: ExprScope,
  secrets: readonly string[],
): Record<string, Template> {
  const env: Record<string, Template> = {};
  for (const entry of r.map(node, `\`env\` of ${owner}`)) {
    if (!ENV_NAME.test(entry.name)) {
      r.report(
        entry.key,
        `\`${entry.name}\` in \`env\` of ${owner} is not a valid variable name: use letters, digits and \`_\`, not starting with a digit`,
      );
      continue;
    }
    if (secrets.includes(entry.name)) {
      r.report(
        entry.key,
        `\`${entry.name}\` in \`env\` of ${owner} is also a secret, which every step already has under that name: rename one`,
      );
      continue;
    }
    const value = entry.value;
    const itemLabel = `\`env.${entry.name}\` of ${owner}`;
    if (isScalar(value) && (typeof value.value === "boolean" || typeof value.value === "number")) {
      const [start = 0, end = start] = value.range ?? [];
      const text = r.source.slice(start, end);
      env[entry.name] = { source: text, parts: [{ kind: "text", text }], pos: r.at(value) };
      continue;
    }
    if (isScalar(value) && value.value === null) {
      r.report(value, `${itemLabel} has no value: write one, or \`''\` for an empty string`);
      continue;
    }
    if (isScalar(value) && typeof value.value === "string" && value.value === "") {
      env[entry.name] = { source: "", parts: [], pos: r.at(value) };
      continue;
    }
    const parsed = template(r, value, itemLabel, scope);
    if (parsed) env[entry.name] = parsed;
  }
  return env;
}
