/**
 * The small expression language of pipeline files: `${{ ... }}` templates in strings and `if:`
 * conditions. Literals, references (`inputs.x`, `matrix.x`, `needs.<job>.outputs.<k>`, `outputs.k`,
 * `env.X`), `==`, `!=`, `&&`, `||`, `!`, parentheses and `fromJSON(...)`: parsing and static checks.
 * Evaluation and rendering are in expression-eval.ts.
 */

import { closest, listOr } from "../problems.js";
import type { Locate, Position } from "../yaml-reader.js";
import { checkEventRef, checkLoopRef, LOOP_ONLY } from "./context-refs.js";
import { MAX_EXPRESSION_DEPTH, MAX_EXPRESSION_LENGTH, overLimit } from "./limits.js";
import type { Condition, ContextRoot, Expr, Template, TemplatePart } from "./model.js";

export const CONTEXT_ROOTS: readonly ContextRoot[] = [
  "inputs",
  "matrix",
  "needs",
  "outputs",
  "env",
  "event",
  "loop",
];

export { EVENT_FIELDS } from "./context-refs.js";

/**
 * An expression that can't be parsed or evaluated. `offset` is where in the parsed string (the
 * template or the condition) the problem is; `pos`, when known, is that place in the file.
 */
export class ExpressionError extends Error {
  override name = "ExpressionError";
  readonly offset: number;
  readonly suggestion: string | undefined;
  readonly pos: Position | undefined;
  constructor(message: string, offset: number, options: { suggestion?: string; pos?: Position } = {}) {
    super(message);
    this.offset = offset;
    this.suggestion = options.suggestion;
    this.pos = options.pos;
  }
}

/** Without a file to map to, the parsed string is line 1. */
const lineOne: Locate = (offset) => ({ line: 1, col: offset + 1, offset });

// ---------------------------------------------------------------------------------------------
// Tokens

type Token =
  | { type: "ident"; text: string; offset: number }
  | { type: "string"; value: string; offset: number }
  | { type: "number"; value: number; offset: number }
  | { type: "op"; text: "==" | "!=" | "&&" | "||" | "!" | "(" | ")" | "."; offset: number }
  | { type: "end"; offset: number };

const SUPPORTED = "literals, references, ==, !=, &&, ||, !, parentheses and fromJSON(...)";

/** The one function: GitHub spells it `fromJSON` and matches function names in any case. */
const FROM_JSON = "fromjson";

function tokenize(source: string, base: number): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fail = (message: string, at = i): never => {
    throw new ExpressionError(message, base + at);
  };
  while (i < source.length) {
    const c = source[i]!;
    const two = source.slice(i, i + 2);
    if (/\s/.test(c)) {
      i++;
    } else if (two === "==" || two === "!=" || two === "&&" || two === "||") {
      tokens.push({ type: "op", text: two, offset: base + i });
      i += 2;
    } else if (c === "!" || c === "(" || c === ")" || c === ".") {
      tokens.push({ type: "op", text: c, offset: base + i });
      i++;
    } else if (c === "'" || c === '"') {
      // GitHub quotes with '...' and doubles the quote to escape it; "..." works the same way.
      let value = "";
      let j = i + 1;
      for (;;) {
        if (j >= source.length) fail(`unterminated string: close it with ${c}`);
        if (source[j] === c) {
          if (source[j + 1] === c) {
            value += c;
            j += 2;
            continue;
          }
          break;
        }
        value += source[j];
        j++;
      }
      tokens.push({ type: "string", value, offset: base + i });
      i = j + 1;
    } else if (/[-\d]/.test(c)) {
      const match = /^-?\d+(?:\.\d+)?/.exec(source.slice(i));
      if (!match) fail(`unexpected \`${c}\`: expressions support ${SUPPORTED}`);
      tokens.push({ type: "number", value: Number(match![0]), offset: base + i });
      i += match![0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const text = /^[A-Za-z_][A-Za-z0-9_-]*/.exec(source.slice(i))![0];
      tokens.push({ type: "ident", text, offset: base + i });
      i += text.length;
    } else if (c === "=") {
      fail("use `==` to compare (a single `=` assigns nothing here)");
    } else if (c === "&") {
      fail("use `&&` for “and”");
    } else if (c === "|") {
      fail("use `||` for “or”");
    } else if (c === "<" || c === ">") {
      fail(`\`${/[<>]=/.test(two) ? two : c}\` is not supported: compare with \`==\` or \`!=\``);
    } else if (c === "[") {
      fail(
        "index syntax `[...]` is not supported: write the path with dots, e.g. `needs.build-app.outputs.digest`",
      );
    } else {
      fail(`unexpected \`${c}\`: expressions support ${SUPPORTED}`);
    }
  }
  tokens.push({ type: "end", offset: base + source.length });
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parser: or := and ('||' and)* ; and := eq ('&&' eq)* ; eq := unary (('=='|'!=') unary)* ;
// unary := '!' unary | primary ; primary := literal | ref | '(' or ')'. Same precedence as GitHub.

/**
 * Parses an expression (the text inside `${{ }}`, or a bare `if:`). Offsets in the result and in
 * errors are `base` plus the position in `source`. Throws {@link ExpressionError}.
 */
export function parseExpression(source: string, base = 0): Expr {
  if (source.length > MAX_EXPRESSION_LENGTH.max) {
    throw new ExpressionError(
      `the expression is ${source.length.toLocaleString("en-US")} characters long, ${overLimit(MAX_EXPRESSION_LENGTH)}`,
      base,
    );
  }
  const tokens = tokenize(source, base);
  let index = 0;
  // Parentheses and `!` recurse: counted, so no expression can exhaust the stack.
  let nesting = 0;
  const deeper = (token: Token) => {
    if (++nesting > MAX_EXPRESSION_DEPTH.max) throw tooDeep(token.offset);
  };
  const peek = () => tokens[index]!;
  const next = () => tokens[index++]!;
  const isOp = (token: Token, text: string) => token.type === "op" && token.text === text;
  const describe = (token: Token) =>
    token.type === "end"
      ? "the end"
      : token.type === "ident"
        ? `\`${token.text}\``
        : token.type === "op"
          ? `\`${token.text}\``
          : token.type === "string"
            ? `'${token.value}'`
            : `\`${token.value}\``;

  if (peek().type === "end") {
    throw new ExpressionError(
      "empty expression: write a value or a reference such as `inputs.tag`",
      base + source.length,
    );
  }

  const parseOr = (): Expr => {
    let left = parseAnd();
    while (isOp(peek(), "||")) {
      next();
      left = { kind: "binary", op: "||", left, right: parseAnd(), offset: left.offset };
    }
    return left;
  };
  const parseAnd = (): Expr => {
    let left = parseEquality();
    while (isOp(peek(), "&&")) {
      next();
      left = { kind: "binary", op: "&&", left, right: parseEquality(), offset: left.offset };
    }
    return left;
  };
  const parseEquality = (): Expr => {
    let left = parseUnary();
    for (;;) {
      const token = peek();
      if (!(isOp(token, "==") || isOp(token, "!="))) return left;
      next();
      const op = (token as { text: "==" | "!=" }).text;
      left = { kind: "binary", op, left, right: parseUnary(), offset: left.offset };
    }
  };
  const parseUnary = (): Expr => {
    const token = peek();
    if (isOp(token, "!")) {
      next();
      deeper(token);
      const operand = parseUnary();
      nesting--;
      return { kind: "not", operand, offset: token.offset };
    }
    return parsePrimary();
  };
  const parsePrimary = (): Expr => {
    const token = next();
    if (token.type === "string" || token.type === "number") {
      return { kind: "literal", value: token.value, offset: token.offset };
    }
    if (isOp(token, "(")) {
      deeper(token);
      const inner = parseOr();
      nesting--;
      const close = next();
      if (!isOp(close, ")")) {
        throw new ExpressionError(
          `expected \`)\` to close the \`(\`, found ${describe(close)}`,
          close.offset,
        );
      }
      return inner;
    }
    if (token.type === "ident") return parseReference(token);
    const where = index === 1 ? "at the start" : `after ${describe(tokens[index - 2]!)}`;
    throw new ExpressionError(`expected a value ${where}, found ${describe(token)}`, token.offset);
  };
  const parseReference = (first: { text: string; offset: number }): Expr => {
    if (isOp(peek(), "(")) {
      if (first.text.toLowerCase() !== FROM_JSON) {
        throw new ExpressionError(
          `functions such as \`${first.text}()\` are not supported: expressions support ${SUPPORTED}`,
          first.offset,
        );
      }
      const open = next();
      deeper(open);
      if (isOp(peek(), ")")) {
        throw new ExpressionError(
          "`fromJSON()` needs one value to read, e.g. `fromJSON(needs.plan.outputs.packages)`",
          peek().offset,
        );
      }
      const arg = parseOr();
      nesting--;
      const close = next();
      if (!isOp(close, ")")) {
        throw new ExpressionError(
          `expected \`)\` to close \`fromJSON(\`, found ${describe(close)} (it takes one value)`,
          close.offset,
        );
      }
      return { kind: "call", fn: "fromJSON", arg, offset: first.offset };
    }
    const path: string[] = [];
    const pathOffsets: number[] = [];
    while (isOp(peek(), ".")) {
      const dot = next();
      const name = next();
      if (name.type !== "ident") {
        throw new ExpressionError(`expected a name after \`.\`, found ${describe(name)}`, dot.offset + 1);
      }
      path.push(name.text);
      pathOffsets.push(name.offset);
    }
    if (path.length === 0) {
      if (first.text === "true" || first.text === "false") {
        return { kind: "literal", value: first.text === "true", offset: first.offset };
      }
      if (first.text === "null") return { kind: "literal", value: null, offset: first.offset };
    }
    if (!(CONTEXT_ROOTS as readonly string[]).includes(first.text)) {
      throw unknownRoot(first.text, first.offset, path.length === 0, path[0]);
    }
    return { kind: "ref", root: first.text as ContextRoot, path, offset: first.offset, pathOffsets };
  };

  const expr = parseOr();
  const rest = peek();
  if (rest.type !== "end") {
    throw new ExpressionError(
      `unexpected ${describe(rest)}: join conditions with \`&&\` or \`||\`, and quote text ('like this')`,
      rest.offset,
    );
  }
  // A chain such as `a || b || c ...` nests one level per operator without recursing to parse.
  const deepest = deepestNode(expr);
  if (deepest !== undefined) throw tooDeep(deepest.offset);
  return expr;
}

function tooDeep(offset: number): ExpressionError {
  return new ExpressionError(
    `the expression nests too deep here: ${overLimit(MAX_EXPRESSION_DEPTH)}`,
    offset,
  );
}

/** The first node nested deeper than MAX_EXPRESSION_DEPTH, found without recursing. */
function deepestNode(expr: Expr): Expr | undefined {
  const stack: [Expr, number][] = [[expr, 1]];
  for (let item = stack.pop(); item !== undefined; item = stack.pop()) {
    const [node, depth] = item;
    if (depth > MAX_EXPRESSION_DEPTH.max) return node;
    if (node.kind === "not") stack.push([node.operand, depth + 1]);
    else if (node.kind === "call") stack.push([node.arg, depth + 1]);
    else if (node.kind === "binary") stack.push([node.right, depth + 1], [node.left, depth + 1]);
  }
  return undefined;
}

function unknownRoot(name: string, offset: number, bare: boolean, field?: string): ExpressionError {
  if (name === "secrets") {
    return new ExpressionError(
      `expressions can't read secrets (they would show in command lines and logs): each secret is in the step's environment under its name, e.g. \`$${field ?? "REGISTRY_TOKEN"}\``,
      offset,
    );
  }
  const suggestion = closest(name, CONTEXT_ROOTS);
  const contexts = `contexts are ${listOr(CONTEXT_ROOTS)}`;
  if (bare && suggestion === undefined) {
    return new ExpressionError(
      `unknown name \`${name}\`: quote text ('${name}'), or read a context (${contexts})`,
      offset,
    );
  }
  return new ExpressionError(
    `unknown context \`${name}\`: ${contexts}`,
    offset,
    suggestion ? { suggestion } : {},
  );
}

// ---------------------------------------------------------------------------------------------
// Templates and conditions

// biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows the pipeline syntax
const NEVER_CLOSED = "`${{` is never closed: end the expression with `}}`";

/** Parses `${{ ... }}` parts in a string. Throws {@link ExpressionError} (offsets in `source`). */
export function parseTemplate(source: string, locate: Locate = lineOne): Template {
  const parts: TemplatePart[] = [];
  let i = 0;
  while (i < source.length) {
    const open = source.indexOf("${{", i);
    if (open === -1) {
      parts.push({ kind: "text", text: source.slice(i) });
      break;
    }
    if (open > i) parts.push({ kind: "text", text: source.slice(i, open) });
    const close = findClose(source, open + 3);
    if (close === -1) {
      throw new ExpressionError(NEVER_CLOSED, open);
    }
    const start = open + 3;
    const text = source.slice(start, close);
    parts.push({
      kind: "expr",
      expr: parseExpression(text, start),
      source: text,
      offset: start,
      pos: locate(start),
    });
    i = close + 2;
  }
  return { source, parts, pos: locate(0) };
}

/** The `}}` that ends an expression, skipping quoted strings (which may contain `}}`). */
function findClose(source: string, from: number): number {
  let quote: string | undefined;
  for (let i = from; i < source.length; i++) {
    const c = source[i];
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === "'" || c === '"') {
      quote = c;
    } else if (c === "}" && source[i + 1] === "}") {
      return i;
    }
  }
  return -1;
}

/**
 * Parses an `if:` value: `${{ expr }}`, a bare `expr`, or a YAML boolean. Text around `${{ }}` is
 * rejected: GitHub treats such a condition as a non-empty string, always true, which is never meant.
 */
export function parseCondition(source: string | boolean, locate: Locate = lineOne): Condition {
  if (typeof source === "boolean") {
    return { source: String(source), expr: { kind: "literal", value: source, offset: 0 }, pos: locate(0) };
  }
  const open = source.indexOf("${{");
  if (open === -1) {
    return { source, expr: parseExpression(source), pos: locate(0) };
  }
  const close = findClose(source, open + 3);
  if (close === -1) throw new ExpressionError(NEVER_CLOSED, open);
  if (source.slice(0, open).trim() !== "" || source.slice(close + 2).trim() !== "") {
    throw new ExpressionError(
      // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows the pipeline syntax
      "a condition is one expression: write `${{ a && b }}` or `a && b`, not text around `${{ }}`",
      open,
    );
  }
  return { source, expr: parseExpression(source.slice(open + 3, close), open + 3), pos: locate(0) };
}

// ---------------------------------------------------------------------------------------------
// Static checks

/** What an expression may read where it is written. */
export interface ExprScope {
  /** Contexts readable here, with why the others are not (shown when they are used). */
  roots: Partial<Record<ContextRoot, true | string>>;
  inputs: readonly string[];
  /** The job's matrix axes; undefined when the job has no matrix. */
  matrixAxes?: readonly string[];
  /** The job's matrix is decided at run time, its axes unknown before: any `matrix.<axis>` is taken. */
  matrixAtRunTime?: boolean;
  /** The job's direct `needs`. */
  needs: readonly string[];
  /** Every job in the pipeline. */
  jobs: readonly string[];
  /** Declared `env` names (pipeline and job). */
  env: readonly string[];
  /** The job, for messages. */
  job?: string;
  /** In a loop's jobs: the body's jobs, which `loop.previous.<job>` may name. */
  loopJobs?: readonly string[];
}

/** A problem found by {@link checkExpr}, at an offset in the parsed string. */
export interface ExprIssue {
  offset: number;
  message: string;
  suggestion?: string;
}

/**
 * Checks the references in an expression against what is declared: known inputs, matrix axes and
 * env names, `needs.<job>` only for jobs the job needs (GitHub's rule: outputs of anything else
 * may not exist yet), `outputs` only where the scope allows it (in `undo`).
 */
export function checkExpr(expr: Expr, scope: ExprScope): ExprIssue[] {
  const issues: ExprIssue[] = [];
  const report = (offset: number, message: string, suggestion?: string) =>
    issues.push(suggestion === undefined ? { offset, message } : { offset, message, suggestion });
  const visit = (node: Expr): void => {
    if (node.kind === "not") return visit(node.operand);
    if (node.kind === "call") return visit(node.arg);
    if (node.kind === "binary") {
      visit(node.left);
      visit(node.right);
      return;
    }
    if (node.kind === "ref") checkRef(node, scope, report);
  };
  visit(expr);
  return issues;
}

function checkRef(
  ref: Extract<Expr, { kind: "ref" }>,
  scope: ExprScope,
  report: (offset: number, message: string, suggestion?: string) => void,
): void {
  // `event` is readable wherever a run's values are, unless the scope says why not.
  // `loop` is readable only by a loop's jobs, which is the one thing to say about it elsewhere.
  const allowed =
    ref.root === "event"
      ? (scope.roots.event ?? true)
      : ref.root === "loop"
        ? (scope.roots.loop ?? LOOP_ONLY)
        : scope.roots[ref.root];
  if (allowed !== true) {
    report(ref.offset, allowed ?? `\`${ref.root}\` can't be read here`);
    return;
  }
  const [first, ...rest] = ref.path;
  const firstOffset = ref.pathOffsets[0] ?? ref.offset;
  const restOffset = ref.pathOffsets[1] ?? ref.offset;
  const scalar = (what: string) => {
    if (first === undefined)
      report(ref.offset, `\`${ref.root}\` is not a value: name one, e.g. \`${ref.root}.${what}\``);
    else if (rest.length > 0)
      report(restOffset, `\`${ref.root}.${first}\` is a plain value: it has no \`${rest[0]}\``);
  };
  switch (ref.root) {
    case "inputs":
      scalar("tag");
      if (first !== undefined && !scope.inputs.includes(first)) {
        const declared = scope.inputs.length
          ? `declared inputs: ${listOr(scope.inputs, "and")}`
          : "no inputs are declared";
        report(firstOffset, `unknown input \`${first}\` (${declared})`, closest(first, scope.inputs));
      }
      return;
    case "matrix": {
      if (scope.matrixAxes === undefined && scope.matrixAtRunTime) {
        scalar("value");
        return;
      }
      if (scope.matrixAxes === undefined) {
        report(ref.offset, `job \`${scope.job}\` has no \`matrix\`, so \`matrix\` can't be read`);
        return;
      }
      scalar("platform");
      if (first !== undefined && !scope.matrixAxes.includes(first)) {
        report(
          firstOffset,
          `unknown matrix axis \`${first}\` (axes: ${listOr(scope.matrixAxes, "and")})`,
          closest(first, scope.matrixAxes),
        );
      }
      return;
    }
    case "env":
      scalar("REGISTRY");
      if (first !== undefined && !scope.env.includes(first)) {
        report(
          firstOffset,
          `\`env.${first}\` is not declared in \`env\` (the pipeline's or the job's)`,
          closest(first, scope.env),
        );
      }
      return;
    case "outputs":
      scalar("digest");
      return;
    case "event":
      checkEventRef(ref, report);
      return;
    case "loop":
      checkLoopRef(ref, scope.loopJobs ?? [], report);
      return;
    case "needs": {
      if (first === undefined) {
        report(ref.offset, "`needs` is not a value: write `needs.<job>.outputs.<name>`");
        return;
      }
      if (!scope.needs.includes(first)) {
        if (scope.loopJobs && !scope.loopJobs.includes(first) && scope.jobs.includes(first)) {
          report(
            firstOffset,
            `a loop's jobs read outputs of the jobs the loop job needs: add \`${first}\` to the loop job's \`needs\``,
          );
        } else if (scope.jobs.includes(first)) {
          report(
            firstOffset,
            `job \`${scope.job}\` can only read outputs of the jobs it needs: add \`${first}\` to its \`needs\``,
          );
        } else {
          report(
            firstOffset,
            `unknown job \`${first}\``,
            closest(first, scope.needs) ?? closest(first, scope.jobs),
          );
        }
        return;
      }
      if (rest[0] !== "outputs" || rest.length !== 2) {
        const at = rest[0] === "outputs" ? (ref.pathOffsets[2] ?? restOffset) : restOffset;
        const suggestion =
          rest[0] !== undefined && rest[0] !== "outputs" ? closest(rest[0], ["outputs"]) : undefined;
        report(
          at,
          `write \`needs.${first}.outputs.<name>\`: a job's outputs are all \`needs\` exposes`,
          suggestion,
        );
      }
      return;
    }
  }
}

/** The contexts an expression reads. */
export function referencedRoots(expr: Expr, into = new Set<ContextRoot>()): Set<ContextRoot> {
  if (expr.kind === "ref") into.add(expr.root);
  else if (expr.kind === "not") referencedRoots(expr.operand, into);
  else if (expr.kind === "call") referencedRoots(expr.arg, into);
  else if (expr.kind === "binary") {
    referencedRoots(expr.left, into);
    referencedRoots(expr.right, into);
  }
  return into;
}

// ---------------------------------------------------------------------------------------------
// Evaluation
