/** A job's `matrix:`: axes, `exclude` entries, and `include` legs that may be opt-in through an `if:` reading inputs. */
import { isMap, isScalar, isSeq, type Node } from "yaml";
import { closest, listOr } from "../problems.js";
import { describe, type Reader } from "../yaml-reader.js";
import type { ExprScope } from "./expressions.js";
import { MAX_MATRIX_LEGS, overLimit } from "./limits.js";
import type { Matrix, MatrixInclude, MatrixValue } from "./model.js";
import { condition } from "./parse-values.js";

/** Besides these, a matrix's keys are its axes; an `include` leg's keys are the axes and `if`. */
export const MATRIX_KEYS = ["include", "exclude"] as const;
export const INCLUDE_KEYS = ["if"] as const;

/** Matrix axes are read as `matrix.<axis>`, so they follow the expression language's names. */
const AXIS_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

export interface MatrixContext {
  reader: Reader;
  inputs: readonly string[];
  jobs: readonly string[];
}

export function parseMatrix(ctx: MatrixContext, job: string, node: Node): Matrix | undefined {
  const r = ctx.reader;
  const label = `\`matrix\` of job \`${job}\``;
  const entries = r.map(node, label);
  if (!isMap(node)) return undefined;
  const matrix: Matrix = { axes: {}, exclude: [], include: [] };
  // Only an axis written as `[]` empties the product; one whose values are all wrong is reported already.
  let emptyAxis = false;
  for (const entry of entries) {
    if ((MATRIX_KEYS as readonly string[]).includes(entry.name)) continue;
    if (!AXIS_NAME.test(entry.name)) {
      r.report(
        entry.key,
        `matrix axis \`${entry.name}\` is not a valid name: use letters, digits, \`-\` and \`_\`, starting with a letter or \`_\``,
      );
      continue;
    }
    const values: MatrixValue[] = [];
    for (const item of r.list(entry.value, `matrix axis \`${entry.name}\``) ?? []) {
      const value = matrixValue(r, item, `a value of matrix axis \`${entry.name}\``);
      if (value === undefined) continue;
      if (values.includes(value)) r.report(item, `matrix axis \`${entry.name}\` lists \`${value}\` twice`);
      else values.push(value);
    }
    matrix.axes[entry.name] = values;
    if (isSeq(entry.value) && entry.value.items.length === 0) emptyAxis = true;
  }
  const axes = Object.keys(matrix.axes);
  if (axes.length === 0) {
    r.report(
      node,
      `${label} needs at least one axis, e.g. \`platform: [linux/amd64]\` (\`include\` adds legs to it)`,
    );
    return undefined;
  }
  const legs = (key: "include" | "exclude") => {
    const entry = entries.find((e) => e.name === key);
    return entry && r.list(entry.value, `\`${key}\` of ${label}`);
  };
  for (const item of legs("exclude") ?? []) {
    const values = matrixLeg(r, item, matrix, "exclude", []);
    if (isMap(item) && item.items.length === 0) {
      r.report(item, "an `exclude` entry must name at least one axis");
    } else if (values !== undefined && Object.keys(values).length > 0) {
      matrix.exclude.push(values);
    }
  }
  const scope: ExprScope = {
    roots: {
      inputs: true,
      matrix: INCLUDE_IF_INPUTS_ONLY,
      needs: INCLUDE_IF_INPUTS_ONLY,
      env: INCLUDE_IF_INPUTS_ONLY,
      outputs: INCLUDE_IF_INPUTS_ONLY,
    },
    inputs: ctx.inputs,
    needs: [],
    jobs: ctx.jobs,
    env: [],
    job,
  };
  for (const item of legs("include") ?? []) {
    const values = matrixLeg(r, item, matrix, "include", INCLUDE_KEYS);
    if (values === undefined) continue;
    const missing = axes.filter((axis) => !(axis in values));
    if (missing.length > 0) {
      r.report(item, `an \`include\` leg names every axis: add ${listOr(missing, "and")}`);
      continue;
    }
    const leg: MatrixInclude = { values, pos: r.at(item) };
    const pair = isMap(item) ? item.items.find((p) => isScalar(p.key) && p.key.value === "if") : undefined;
    if (pair) {
      const cond = condition(r, r.resolve(pair.value) ?? item, "`if` of an `include` leg", scope);
      if (cond) leg.if = cond;
    }
    matrix.include.push(leg);
  }
  if (matrix.include.length === 0 && emptyAxis) {
    r.report(node, `${label} has no legs: an axis is empty and nothing is included`);
  }
  const made = countLegs(matrix);
  if (made.count > MAX_MATRIX_LEGS.max) {
    r.report(node, `${label} makes ${made.text}, ${overLimit(MAX_MATRIX_LEGS)}`);
    return undefined;
  }
  return matrix;
}

/** Past this many combinations of the axes, `exclude` is not applied to count the legs. */
const COUNTED_EXACTLY = 65_536;

/**
 * How many legs a matrix can have: the product of its axes, less what `exclude` removes, plus each
 * `include` leg that adds one (as if every `if:` were true, so a plan never has more). Counted
 * without building the legs when the product is large (an 8 × 8 × … × 8 matrix is 16,777,216 legs).
 */
export function countLegs(matrix: Matrix): { count: number; text: string } {
  const sizes = Object.values(matrix.axes).map((values) => values.length);
  const product = sizes.reduce((a, b) => a * b, 1);
  const plural = (n: number, what: string) => `${n.toLocaleString("en-US")} ${what}${n === 1 ? "" : "s"}`;
  const formula = sizes.length > 1 ? ` (${sizes.join(" × ")})` : "";
  if (product > COUNTED_EXACTLY) {
    const count = product + matrix.include.length;
    const before = matrix.exclude.length > 0 ? " before `exclude`" : "";
    const text = Number.isSafeInteger(product)
      ? `${plural(product, "combination")} of its axes${formula}${before}`
      : `more than ${Number.MAX_SAFE_INTEGER.toLocaleString("en-US")} combinations of its axes${formula}`;
    return { count, text };
  }
  const axes = Object.entries(matrix.axes);
  const keys = new Set<string>();
  // Every combination in turn, as a counter whose digits are indexes into the axes (no recursion:
  // a matrix may have thousands of one-value axes).
  const digits = axes.map(() => 0);
  for (let n = 0; n < product && axes.length > 0; n++) {
    const leg = axes.map(([, values], i) => values[digits[i]!]!);
    const excluded = matrix.exclude.some((pattern) =>
      axes.every(([axis], i) => !(axis in pattern) || pattern[axis] === leg[i]),
    );
    if (!excluded) keys.add(JSON.stringify(leg));
    for (let i = axes.length - 1; i >= 0; i--) {
      const next = digits[i]! + 1;
      digits[i] = next < axes[i]![1].length ? next : 0;
      if (next < axes[i]![1].length) break;
    }
  }
  for (const include of matrix.include) keys.add(JSON.stringify(axes.map(([axis]) => include.values[axis])));
  return { count: keys.size, text: plural(keys.size, "leg") };
}

const INCLUDE_IF_INPUTS_ONLY =
  "an `include` leg's `if:` can read only `inputs` (it decides which legs exist before anything runs)";

function matrixValue(r: Reader, node: Node, label: string): MatrixValue | undefined {
  if (isScalar(node) && ["string", "number", "boolean"].includes(typeof node.value)) {
    return node.value as MatrixValue;
  }
  r.report(node, `${label} must be a string, number or boolean, got ${describe(node)}`);
  return undefined;
}

/** An `include` or `exclude` entry: axis values, each naming an axis of the matrix (and a value of it, for `exclude`). */
function matrixLeg(
  r: Reader,
  node: Node,
  matrix: Matrix,
  key: "include" | "exclude",
  reserved: readonly string[],
): Record<string, MatrixValue> | undefined {
  if (!isMap(node)) {
    r.report(node, `an \`${key}\` entry must be a map of axis values, got ${describe(node)}`);
    return undefined;
  }
  const axes = Object.keys(matrix.axes);
  const values: Record<string, MatrixValue> = {};
  for (const entry of r.map(node, `an \`${key}\` entry`)) {
    if (reserved.includes(entry.name)) continue;
    if (!axes.includes(entry.name)) {
      r.report(
        entry.key,
        `\`${key}\` names \`${entry.name}\`, which is not an axis of the matrix (axes: ${listOr(axes, "and")})`,
        closest(entry.name, axes),
      );
      continue;
    }
    const value = matrixValue(r, entry.value, `matrix value \`${entry.name}\``);
    if (value === undefined) continue;
    const known = matrix.axes[entry.name]!;
    if (key === "exclude" && !known.includes(value)) {
      r.report(
        entry.value,
        `\`exclude\` names \`${entry.name}: ${value}\`, which axis \`${entry.name}\` does not have (values: ${listOr(known.map(String), "and")})`,
        closest(String(value), known.map(String)),
      );
      continue;
    }
    values[entry.name] = value;
  }
  return values;
}
