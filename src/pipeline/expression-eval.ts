/** Evaluating parsed expressions and rendering templates, when a run is planned and when its jobs run. */
import { ExpressionError } from "./expressions.js";
import type { Condition, Expr, MatrixValue, Template, Value } from "./model.js";

/** What expressions read at run time. Outputs are strings (what a step wrote). */
export interface ExpressionContext {
  inputs: Record<string, Value>;
  matrix?: Record<string, MatrixValue>;
  needs?: Record<string, { outputs: Record<string, string> }>;
  /** The job's own outputs, for `undo`. */
  outputs?: Record<string, string>;
  env?: Record<string, string>;
  /** What started the run (docs/triggers.md); `{ kind: "manual" }` for a run started by hand. */
  event?: Record<string, unknown>;
  /** In a loop's jobs: the iteration (from 1) and the previous one's jobs, null in the first. */
  loop?: { iteration: number; previous: Record<string, { outputs: Record<string, string> }> | null };
}

export interface EvaluateOptions {
  /**
   * What a reference to something unset gives: `error` (the default; a command must not run with
   * a hole in it) or `null` (conditions, so `needs.a.outputs.changed == 'true'` is simply false).
   */
  missing?: "error" | "null";
}

/** Truthiness as in GitHub: false, 0, NaN, '' and null are false; everything else is true. */
export function isTruthy(value: Value): boolean {
  return !(value === false || value === null || value === "" || value === 0 || Number.isNaN(value));
}

function toNumber(value: Value): number {
  if (value === null) return 0;
  if (typeof value === "boolean") return value ? 1 : 0;
  if (typeof value === "string") return value.trim() === "" ? 0 : Number(value);
  return value;
}

/**
 * `==` as in GitHub: values of one type compare directly (strings case-sensitively, unlike
 * GitHub); values of different types compare as numbers, so `'3' == 3` and `true == 1`.
 */
export function looseEquals(a: Value, b: Value): boolean {
  if (a === null || b === null) return a === b || toNumber(a) === toNumber(b);
  if (typeof a === typeof b) return a === b;
  return toNumber(a) === toNumber(b);
}

function lookup(ref: Extract<Expr, { kind: "ref" }>, ctx: ExpressionContext): Value | undefined {
  let current: unknown = ctx[ref.root];
  for (const key of ref.path) {
    if (current === null || typeof current !== "object" || !Object.hasOwn(current, key)) return undefined;
    current = (current as Record<string, unknown>)[key];
  }
  if (current === undefined) return undefined;
  if (current === null || ["string", "number", "boolean"].includes(typeof current)) return current as Value;
  return undefined;
}

function refText(ref: Extract<Expr, { kind: "ref" }>): string {
  return [ref.root, ...ref.path].join(".");
}

/** Evaluates an expression. `&&` and `||` give an operand (as in GitHub), the others a boolean. */
export function evaluate(expr: Expr, ctx: ExpressionContext, options: EvaluateOptions = {}): Value {
  switch (expr.kind) {
    case "literal":
      return expr.value;
    case "not":
      return !isTruthy(evaluate(expr.operand, ctx, options));
    case "ref": {
      const value = lookup(expr, ctx);
      if (value !== undefined) return value;
      // An event field a kind lacks (`event.pull_request.number` of a push) reads as empty, as in GitHub;
      // so does `loop.previous...` in a loop's first iteration, which has no previous one.
      if (options.missing === "null" || expr.root === "event") return null;
      if (expr.root === "loop" && expr.path[0] === "previous" && ctx.loop?.previous === null) return null;
      const text = refText(expr);
      const why =
        expr.root === "needs"
          ? `job \`${expr.path[0]}\` did not output \`${expr.path[2]}\``
          : expr.root === "outputs"
            ? `the job did not output \`${expr.path[0]}\``
            : expr.root === "loop" && expr.path[0] === "previous"
              ? `job \`${expr.path[1]}\` did not output \`${expr.path[3]}\` in the previous iteration`
              : "nothing gave it a value";
      throw new ExpressionError(`\`${text}\` is not set: ${why}`, expr.offset);
    }
    case "call": {
      const value = fromJson(expr, ctx, options);
      if (value === null || ["string", "number", "boolean"].includes(typeof value)) return value as Value;
      throw new ExpressionError(
        `${callText(expr)} gives ${Array.isArray(value) ? "a list" : "an object"}: only \`matrix:\` takes one (a value here must be a string, number, boolean or null)`,
        expr.offset,
      );
    }
    case "binary": {
      const left = evaluate(expr.left, ctx, options);
      if (expr.op === "&&") return isTruthy(left) ? evaluate(expr.right, ctx, options) : left;
      if (expr.op === "||") return isTruthy(left) ? left : evaluate(expr.right, ctx, options);
      const equal = looseEquals(left, evaluate(expr.right, ctx, options));
      return expr.op === "==" ? equal : !equal;
    }
  }
}

/**
 * Evaluates an expression that may give any JSON value: `fromJSON(...)` gives what its text says (a
 * list, an object); anything else gives what {@link evaluate} does. What a run-time matrix is read with.
 */
export function evaluateJson(expr: Expr, ctx: ExpressionContext): unknown {
  return expr.kind === "call" ? fromJson(expr, ctx, {}) : evaluate(expr, ctx);
}

/** The JSON value `fromJSON(x)` reads from the text of `x`; a value that is not text is taken as is. */
function fromJson(
  expr: Extract<Expr, { kind: "call" }>,
  ctx: ExpressionContext,
  options: EvaluateOptions,
): unknown {
  const text = evaluate(expr.arg, ctx, options);
  if (typeof text !== "string") return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    const shown = text.length > 60 ? `${text.slice(0, 60)}…` : text;
    throw new ExpressionError(
      `${callText(expr)}: the text is not JSON (${(error as Error).message}): ${JSON.stringify(shown)}`,
      expr.offset,
    );
  }
}

/** `fromJSON(needs.plan.outputs.packages)`, for messages. */
function callText(expr: Extract<Expr, { kind: "call" }>): string {
  return `fromJSON(${expr.arg.kind === "ref" ? refText(expr.arg) : "…"})`;
}

/** Evaluates an `if:`; unset references read as null. */
export function evaluateCondition(condition: Condition, ctx: ExpressionContext): boolean {
  return isTruthy(evaluate(condition.expr, ctx, { missing: "null" }));
}

/** How a value reads inside a string: null as empty, the rest as written. */
export function formatValue(value: Value): string {
  return value === null ? "" : String(value);
}

export interface RenderOptions {
  /**
   * Applied to each interpolated value, e.g. shell quoting, so a value like `; rm -rf ~` stays
   * one argument. Literal text of the template is left alone.
   */
  escape?: (value: string) => string;
}

/**
 * Renders a template: text as is, each `${{ }}` evaluated and formatted. A reference to something
 * unset throws an {@link ExpressionError} that carries the file position.
 */
export function renderTemplate(
  template: Template,
  ctx: ExpressionContext,
  options: RenderOptions = {},
): string {
  let out = "";
  for (const part of template.parts) {
    if (part.kind === "text") {
      out += part.text;
      continue;
    }
    let value: Value;
    try {
      value = evaluate(part.expr, ctx);
    } catch (error) {
      if (!(error instanceof ExpressionError)) throw error;
      throw new ExpressionError(error.message, error.offset, { pos: part.pos });
    }
    const text = formatValue(value);
    out += options.escape ? options.escape(text) : text;
  }
  return out;
}
