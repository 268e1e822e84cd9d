/**
 * Matrices decided at run time: `matrix: ${{ fromJSON(needs.plan.outputs.packages) }}` (the whole
 * matrix from an earlier job's output) or an axis given that way beside axes written out. Parsed and
 * checked here when the file is read; its legs are worked out here when the job's needs are done.
 */
import { isMap, isScalar, type Node, type Scalar } from "yaml";
import { closest, listOr } from "../problems.js";
import { describe, type Reader } from "../yaml-reader.js";
import { type ExpressionContext, evaluateJson } from "./expression-eval.js";
import { checkExpr, ExpressionError, type ExprScope, parseTemplate } from "./expressions.js";
import { MAX_MATRIX_LEGS, MAX_STEPS, overLimit } from "./limits.js";
import type { Expr, MatrixValue, RunTimeMatrix, TemplatePart } from "./model.js";
import { MATRIX_KEYS } from "./parse-matrix.js";

/** The axis a list of plain values (`["libfoo", "libbar"]`) gives: each leg reads its value as `matrix.value`. */
export const VALUE_AXIS = "value";

/** Matrix axes are read as `matrix.<axis>`, so they follow the expression language's names. */
const AXIS_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** Whether a job's `matrix:` is decided at run time: it is, or one of its axes is, a `${{ }}` string. */
export function isRunTimeMatrix(node: Node): boolean {
  if (isExpressionString(node)) return true;
  return isMap(node) && node.items.some((pair) => isExpressionString(pair.value as Node));
}

function isExpressionString(node: Node | null | undefined): boolean {
  return isScalar(node) && typeof node.value === "string" && node.value.includes("${{");
}

export interface RunTimeMatrixContext {
  reader: Reader;
  /** What the expressions may read: the job's needs, inputs, the event. */
  scope: ExprScope;
}

const NOT_IN_MATRIX = "a matrix's expression can read `inputs`, `needs` and `event` only";

/** What a run-time matrix's expressions may read: inputs, the event and the outputs of the job's needs. */
export function matrixContext(
  ctx: { reader: Reader; inputs: readonly string[]; jobs: readonly string[] },
  job: string,
  needs: readonly string[],
): RunTimeMatrixContext {
  return {
    reader: ctx.reader,
    scope: {
      roots: { inputs: true, needs: true, matrix: NOT_IN_MATRIX, env: NOT_IN_MATRIX, outputs: NOT_IN_MATRIX },
      inputs: ctx.inputs,
      needs,
      jobs: ctx.jobs,
      env: [],
      job,
    },
  };
}

/** What a job with a run-time matrix can't be (yet): a wait, a poll, or have a readiness probe. */
export function refuseWithRunTimeMatrix(
  r: Reader,
  job: string,
  kind: { name: string; key: Node } | undefined,
  ready: { key: Node } | undefined,
): void {
  const why = "a matrix decided at run time runs `run` jobs only";
  if (kind && kind.name !== "run")
    r.report(kind.key, `job \`${job}\` ${kind.name === "wait" ? "waits for a signal" : "polls"}: ${why}`);
  if (ready)
    r.report(
      ready.key,
      `\`ready\` of job \`${job}\`: ${why}, without a readiness probe (probe in a job that needs this one)`,
    );
}

/** Parses a run-time `matrix:`; problems go to the reader. */
export function parseRunTimeMatrix(
  ctx: RunTimeMatrixContext,
  job: string,
  node: Node,
): RunTimeMatrix | undefined {
  const r = ctx.reader;
  const label = `\`matrix\` of job \`${job}\``;
  if (isScalar(node)) {
    const from = matrixExpr(ctx, node, label);
    return from && { from, axes: {}, exclude: [], include: [] };
  }
  const matrix: RunTimeMatrix = { axes: {}, exclude: [], include: [] };
  const entries = r.map(node, label);
  for (const entry of entries) {
    if ((MATRIX_KEYS as readonly string[]).includes(entry.name)) continue;
    if (!AXIS_NAME.test(entry.name)) {
      r.report(
        entry.key,
        `matrix axis \`${entry.name}\` is not a valid name: use letters, digits, \`-\` and \`_\`, starting with a letter or \`_\``,
      );
      continue;
    }
    const axisLabel = `matrix axis \`${entry.name}\` of job \`${job}\``;
    if (isScalar(entry.value)) {
      const expr = matrixExpr(ctx, entry.value, axisLabel);
      if (expr) matrix.axes[entry.name] = expr;
      continue;
    }
    const values: MatrixValue[] = [];
    for (const item of r.list(entry.value, axisLabel) ?? []) {
      const value = scalarNode(r, item, `a value of ${axisLabel}`);
      if (value === undefined) continue;
      if (values.includes(value)) r.report(item, `${axisLabel} lists \`${value}\` twice`);
      else values.push(value);
    }
    matrix.axes[entry.name] = values;
  }
  const axes = Object.keys(matrix.axes);
  for (const key of ["exclude", "include"] as const) {
    const entry = entries.find((e) => e.name === key);
    if (!entry) continue;
    for (const item of r.list(entry.value, `\`${key}\` of ${label}`) ?? []) {
      const leg: Record<string, MatrixValue> = {};
      for (const pair of r.map(item, `an \`${key}\` entry of ${label}`)) {
        if (!axes.includes(pair.name)) {
          r.report(
            pair.key,
            `\`${key}\` names \`${pair.name}\`, which is not an axis of the matrix (axes: ${listOr(axes, "and")})`,
            closest(pair.name, axes),
          );
          continue;
        }
        const value = scalarNode(r, pair.value, `matrix value \`${pair.name}\``);
        if (value !== undefined) leg[pair.name] = value;
      }
      if (Object.keys(leg).length === 0) continue;
      const missing = axes.filter((axis) => !(axis in leg));
      if (key === "include" && missing.length > 0)
        r.report(item, `an \`include\` leg names every axis: add ${listOr(missing, "and")}`);
      else if (key === "include") matrix.include.push(leg);
      else matrix.exclude.push(leg);
    }
  }
  return matrix;
}

/** `${{ fromJSON(...) }}`, alone in its string, its references checked. */
function matrixExpr(ctx: RunTimeMatrixContext, node: Scalar, label: string): RunTimeMatrix["from"] {
  const r = ctx.reader;
  const text = r.string(node, label);
  if (text === undefined) return undefined;
  const locate = r.locate(node);
  let expr: Extract<TemplatePart, { kind: "expr" }> | undefined;
  try {
    const parts = parseTemplate(text, locate).parts;
    const exprs = parts.filter((p) => p.kind === "expr");
    const alone = parts.every((p) => p.kind === "expr" || p.text.trim() === "");
    if (exprs.length === 1 && alone) expr = exprs[0];
  } catch (error) {
    if (!(error instanceof ExpressionError)) throw error;
    r.report(locate(error.offset), `${label}: ${error.message}`, error.suggestion);
    return undefined;
  }
  if (expr?.expr.kind !== "call") {
    r.report(
      node,
      `${label} from a value is one \`\${{ fromJSON(...) }}\`, e.g. \`\${{ fromJSON(needs.plan.outputs.packages) }}\`: a JSON list or object, read when the job's needs are done`,
    );
    return undefined;
  }
  for (const issue of checkExpr(expr.expr, ctx.scope))
    r.report(locate(issue.offset), `${label}: ${issue.message}`, issue.suggestion);
  return { expr: expr.expr, source: expr.source.trim(), pos: expr.pos };
}

function scalarNode(r: Reader, node: Node, label: string): MatrixValue | undefined {
  if (isScalar(node) && ["string", "number", "boolean"].includes(typeof node.value))
    return node.value as MatrixValue;
  r.report(node, `${label} must be a string, number or boolean, got ${describe(node)}`);
  return undefined;
}

/** The axes a run-time matrix's legs are known to have before it runs (for checking `matrix.<axis>`); undefined: any. */
export function knownAxes(matrix: RunTimeMatrix): string[] | undefined {
  return matrix.from ? undefined : Object.keys(matrix.axes);
}

// ---------------------------------------------------------------------------------------------
// At run time

/** A matrix that can't give legs: the job fails with this message. */
export class MatrixError extends Error {
  override name = "MatrixError";
}

type Leg = Record<string, MatrixValue>;

/**
 * The legs of job `job`'s run-time matrix, with the values its expressions read now (its needs are
 * done). `otherSteps` is how many steps the run has besides this job's legs (MAX_STEPS). Throws
 * {@link MatrixError} for a value of the wrong shape or past a limit, naming the job and the limit.
 */
export function runTimeLegs(
  job: string,
  matrix: RunTimeMatrix,
  scope: ExpressionContext,
  otherSteps: number,
): Leg[] {
  const where = `job "${job}"`;
  const read = (expr: Expr, what: string): unknown => {
    try {
      return evaluateJson(expr, scope);
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      throw new MatrixError(`${where}: ${what}: ${error.message}`);
    }
  };
  let legs: Leg[];
  if (matrix.from) {
    const value = read(matrix.from.expr, `its matrix ${matrix.from.source}`);
    legs = legsOfValue(where, value, matrix.from.source);
  } else {
    const axes: Record<string, MatrixValue[]> = {};
    for (const [axis, values] of Object.entries(matrix.axes)) {
      if (Array.isArray(values)) {
        axes[axis] = values;
        continue;
      }
      const value = read(values.expr, `matrix axis \`${axis}\` ${values.source}`);
      axes[axis] = axisValues(where, `matrix axis \`${axis}\` (${values.source})`, value);
    }
    legs = product(where, axes, matrix.exclude, matrix.include);
  }
  if (legs.length > MAX_MATRIX_LEGS.max)
    throw new MatrixError(
      `${where}: its matrix makes ${count(legs.length)} legs, ${overLimit(MAX_MATRIX_LEGS)}`,
    );
  if (otherSteps + legs.length > MAX_STEPS.max)
    throw new MatrixError(
      `${where}: its ${count(legs.length)} legs make the run ${count(otherSteps + legs.length)} steps, ${overLimit(MAX_STEPS)}`,
    );
  return legs;
}

const count = (n: number) => n.toLocaleString("en-US");

/**
 * What a whole matrix's JSON means: a list of plain values (one leg each, read as `matrix.value`), a
 * list of objects (one leg each, its keys the axes), or an object of axes (their combinations, with
 * `include` and `exclude` as in a matrix written out).
 */
function legsOfValue(where: string, value: unknown, source: string): Leg[] {
  const shape = `its matrix (${source})`;
  if (Array.isArray(value)) {
    if (value.length > MAX_MATRIX_LEGS.max) return value as Leg[]; // refused by the caller, unread
    if (value.every(isMatrixValue)) return value.map((v) => ({ [VALUE_AXIS]: v }));
    return value.map((item, i) => {
      if (item === null || typeof item !== "object" || Array.isArray(item))
        throw new MatrixError(
          `${where}: ${shape} is a list mixing ${describeJson(item)} (item ${i + 1}) with other items: list plain values (each leg reads \`matrix.value\`) or objects (each leg reads their keys as \`matrix.<key>\`)`,
        );
      return legOf(where, `item ${i + 1} of ${shape}`, item as Record<string, unknown>);
    });
  }
  if (value === null || typeof value !== "object")
    throw new MatrixError(
      `${where}: ${shape} must be a JSON list (one leg per item) or an object of axes, got ${describeJson(value)}`,
    );
  const axes: Record<string, MatrixValue[]> = {};
  let exclude: Leg[] = [];
  let include: Leg[] = [];
  for (const [key, values] of Object.entries(value)) {
    if (key === "include" || key === "exclude") {
      if (!Array.isArray(values))
        throw new MatrixError(`${where}: \`${key}\` of ${shape} must be a list, got ${describeJson(values)}`);
      const list = values.map((item, i) => {
        if (item === null || typeof item !== "object" || Array.isArray(item))
          throw new MatrixError(
            `${where}: item ${i + 1} of \`${key}\` of ${shape} must be an object, got ${describeJson(item)}`,
          );
        return legOf(where, `item ${i + 1} of \`${key}\` of ${shape}`, item as Record<string, unknown>);
      });
      if (key === "include") include = list;
      else exclude = list;
      continue;
    }
    checkAxisName(where, key, shape);
    axes[key] = axisValues(where, `axis \`${key}\` of ${shape}`, values);
  }
  if (Object.keys(axes).length === 0 && include.length === 0)
    throw new MatrixError(
      `${where}: ${shape} is an object with no axes: give axes as lists, e.g. {"arch": ["x86_64"]}`,
    );
  return product(where, axes, exclude, include);
}

/** The combinations of the axes, less `exclude` matches, plus `include` legs not already there. */
function product(where: string, axes: Record<string, MatrixValue[]>, exclude: Leg[], include: Leg[]): Leg[] {
  const entries = Object.entries(axes);
  const combinations = entries.reduce((n, [, values]) => n * values.length, 1);
  if (combinations > MAX_MATRIX_LEGS.max && exclude.length === 0)
    throw new MatrixError(
      `${where}: its matrix makes ${count(combinations)} legs (${entries.map(([, v]) => v.length).join(" × ")}), ${overLimit(MAX_MATRIX_LEGS)}`,
    );
  let legs: Leg[] = entries.length === 0 ? [] : [{}];
  for (const [axis, values] of entries) {
    legs = legs.flatMap((leg) => values.map((value) => ({ ...leg, [axis]: value })));
    // With `exclude`, still never more than the limit times an axis in memory.
    if (legs.length > MAX_MATRIX_LEGS.max * 64)
      throw new MatrixError(
        `${where}: its matrix makes more than ${count(legs.length)} combinations, ${overLimit(MAX_MATRIX_LEGS)}`,
      );
  }
  const matches = (leg: Leg, pattern: Leg) => Object.entries(pattern).every(([k, v]) => leg[k] === v);
  legs = legs.filter((leg) => !exclude.some((pattern) => matches(leg, pattern)));
  for (const leg of include) if (!legs.some((l) => matches(l, leg) && matches(leg, l))) legs.push({ ...leg });
  return legs;
}

function legOf(where: string, what: string, item: Record<string, unknown>): Leg {
  const leg: Leg = {};
  for (const [key, value] of Object.entries(item)) {
    checkAxisName(where, key, what);
    if (!isMatrixValue(value))
      throw new MatrixError(
        `${where}: ${what} has \`${key}\`: ${describeJson(value)}; a matrix value is a string, number or boolean`,
      );
    leg[key] = value;
  }
  return leg;
}

function axisValues(where: string, what: string, value: unknown): MatrixValue[] {
  if (!Array.isArray(value))
    throw new MatrixError(`${where}: ${what} must be a JSON list of values, got ${describeJson(value)}`);
  if (value.length > MAX_MATRIX_LEGS.max)
    throw new MatrixError(
      `${where}: ${what} has ${count(value.length)} values, ${overLimit(MAX_MATRIX_LEGS)}`,
    );
  const values: MatrixValue[] = [];
  for (const [i, item] of value.entries()) {
    if (!isMatrixValue(item))
      throw new MatrixError(
        `${where}: item ${i + 1} of ${what} is ${describeJson(item)}; a matrix value is a string, number or boolean`,
      );
    if (!values.includes(item)) values.push(item);
  }
  return values;
}

function checkAxisName(where: string, key: string, what: string): void {
  if (!AXIS_NAME.test(key))
    throw new MatrixError(
      `${where}: ${what} names axis \`${key}\`, which is not a valid name: use letters, digits, \`-\` and \`_\`, starting with a letter or \`_\``,
    );
}

function isMatrixValue(value: unknown): value is MatrixValue {
  return (
    typeof value === "string" ||
    typeof value === "boolean" ||
    (typeof value === "number" && Number.isFinite(value))
  );
}

function describeJson(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "an object";
  const text = JSON.stringify(value);
  return `${typeof value === "string" ? "a string" : `a ${typeof value}`} ${text.length > 40 ? `${text.slice(0, 40)}…` : text}`;
}

/** How a leg reads in labels: `libfoo, x86_64`. */
export function legText(leg: Record<string, unknown>): string {
  return Object.values(leg).map(String).join(", ");
}
