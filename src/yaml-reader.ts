/**
 * Reading a YAML document without trusting it: typed getters that report a {@link Problem} at the
 * offending node (and return undefined) instead of casting, so one pass finds every problem.
 * Pipeline files and the scheduler config are both read with it.
 */
import {
  Composer,
  type Document,
  isAlias,
  isMap,
  isScalar,
  isSeq,
  Lexer,
  type LineCounter,
  type Node,
  Parser,
  Scalar,
  YAMLParseError,
} from "yaml";
import { closest, listOr, type Problem } from "./problems.js";
import { durationProblem, parseDuration, parseSize, sizeProblem, UnitError } from "./units.js";

/** A place in a file: 1-based line and column, 0-based character offset. */
export interface Position {
  line: number;
  col: number;
  offset: number;
}

/** Maps an offset in a string read from the file (a scalar's value) to its position in the file. */
export type Locate = (offset: number) => Position;

/** One `key: value` of a map; nothing after the colon is a null scalar, so problems point there. */
export interface Entry {
  name: string;
  key: Scalar;
  value: Node;
}

/** Where an unknown key probably belongs, or what to write instead: shown after the message. */
export type KeyHints = Readonly<Record<string, { message: string; suggestion?: string }>>;

export class Reader {
  readonly problems: Problem[] = [];

  constructor(
    readonly file: string,
    readonly source: string,
    private readonly lines: LineCounter,
    private readonly doc: Document,
    /** The longest duration accepted, and what to say past it (`over the limit of ...`). */
    private readonly maxDuration?: { ms: number; message: string },
  ) {}

  position(offset: number): Position {
    const { line, col } = this.lines.linePos(offset);
    return { line, col, offset };
  }

  /** Where a node starts; the start of the file when unknown. */
  at(node: Node | undefined): Position {
    return this.position(node?.range?.[0] ?? 0);
  }

  report(where: Node | Position | undefined, message: string, suggestion?: string): void {
    const pos = where !== undefined && "line" in where ? where : this.at(where);
    const problem: Problem = { file: this.file, line: pos.line, col: pos.col, message };
    if (suggestion !== undefined) problem.suggestion = suggestion;
    this.problems.push(problem);
  }

  /** Follows an alias (`*anchor`) to the node it names; reports one that names nothing. */
  resolve(node: unknown): Node | undefined {
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (target === undefined) this.report(node, `unknown alias \`*${node.source}\``);
      return target;
    }
    return isScalar(node) || isMap(node) || isSeq(node) ? node : undefined;
  }

  /** True when the value is absent or an empty scalar (`key:` or `key: null`). */
  isEmpty(node: Node | undefined): boolean {
    return node === undefined || (isScalar(node) && node.value === null);
  }

  /**
   * The entries of a map, in file order. With `allowed`, every other key is reported (with the
   * closest allowed key, or a hint); such entries are left out. Duplicates are left to YAML.
   */
  map(node: Node | undefined, label: string, allowed?: readonly string[], hints?: KeyHints): Entry[] {
    if (!isMap(node)) {
      this.report(node, `${label} must be a map (\`key: value\` lines), got ${describe(node)}`);
      return [];
    }
    const entries: Entry[] = [];
    const seen = new Set<string>();
    for (const pair of node.items) {
      const key = this.resolve(pair.key);
      const name = isScalar(key) ? scalarText(key, this.source) : undefined;
      if (!isScalar(key) || name === undefined || name === "") {
        this.report(key ?? node, `a key in ${label} must be a plain name, got ${describe(key)}`);
        continue;
      }
      if (seen.has(name)) continue;
      seen.add(name);
      if (allowed !== undefined && !allowed.includes(name)) {
        const hint = hints?.[name];
        const suggestion = hint ? hint.suggestion : closest(name, allowed);
        const tail = hint
          ? `: ${hint.message}`
          : suggestion === undefined
            ? ` (allowed: ${listOr(allowed)})`
            : "";
        this.report(key, `unknown key \`${name}\` in ${label}${tail}`, suggestion);
        continue;
      }
      entries.push({ name, key, value: this.resolve(pair.value) ?? nothingAfter(key) });
    }
    return entries;
  }

  /** The items of a list; a single scalar counts as a list of one when `single` is set. */
  list(node: Node | undefined, label: string, single = false): Node[] | undefined {
    if (isSeq(node)) return node.items.map((item) => this.resolve(item) ?? node);
    if (single && isScalar(node) && node.value !== null) return [node];
    this.report(node, `${label} must be a list${single ? " or a single value" : ""}, got ${describe(node)}`);
    return undefined;
  }

  string(node: Node | undefined, label: string, options: { empty?: boolean } = {}): string | undefined {
    if (!isScalar(node) || typeof node.value !== "string") {
      this.report(node, `${label} must be a string, got ${describe(node)}`);
      return undefined;
    }
    if (!options.empty && node.value.trim() === "") {
      this.report(node, `${label} must not be empty`);
      return undefined;
    }
    return node.value;
  }

  /** A string matching `pattern`, which `rule` describes (e.g. "letters, digits, `-` and `_`"). */
  name(node: Node | undefined, label: string, pattern: RegExp, rule: string): string | undefined {
    const value = this.string(node, label);
    if (value === undefined) return undefined;
    if (!pattern.test(value)) {
      this.report(node, `${label} must be a name made of ${rule}, got \`${value}\``);
      return undefined;
    }
    return value;
  }

  boolean(node: Node | undefined, label: string): boolean | undefined {
    if (isScalar(node) && typeof node.value === "boolean") return node.value;
    this.report(node, `${label} must be \`true\` or \`false\`, got ${describe(node)}`);
    return undefined;
  }

  /** A whole number at least `min`. */
  integer(node: Node | undefined, label: string, min: number): number | undefined {
    if (isScalar(node) && typeof node.value === "number" && Number.isSafeInteger(node.value)) {
      if (node.value >= min) return node.value;
    }
    this.report(node, `${label} must be a whole number ${min} or more, got ${describe(node)}`);
    return undefined;
  }

  positiveNumber(node: Node | undefined, label: string): number | undefined {
    if (isScalar(node) && typeof node.value === "number" && Number.isFinite(node.value) && node.value > 0) {
      return node.value;
    }
    this.report(node, `${label} must be a number greater than 0, got ${describe(node)}`);
    return undefined;
  }

  /**
   * A duration in milliseconds, greater than 0. A plain YAML number is refused: `30` could mean
   * seconds or minutes, and guessing wrong stalls a pipeline for 60 times too long.
   */
  duration(node: Node | undefined, label: string): number | undefined {
    const value = isScalar(node) ? node.value : undefined;
    try {
      if (typeof value !== "string") throw new UnitError(durationProblem(value ?? collection(node)));
      const ms = parseDuration(value);
      if (this.maxDuration && ms > this.maxDuration.ms) {
        this.report(node, `${label} is \`${value}\`, ${this.maxDuration.message}`);
        return undefined;
      }
      if (ms > 0) return ms;
      this.report(node, `${label} must be longer than 0, e.g. \`30s\``);
    } catch (error) {
      if (!(error instanceof UnitError)) throw error;
      this.report(node, `${label}: ${error.message}`);
    }
    return undefined;
  }

  /** A size in bytes: a string with a unit (`4GiB`) or a plain whole number of bytes. */
  size(node: Node | undefined, label: string): number | undefined {
    const value = isScalar(node) ? node.value : undefined;
    try {
      if (typeof value !== "string" && typeof value !== "number") {
        throw new UnitError(sizeProblem(value ?? collection(node)));
      }
      return parseSize(value);
    } catch (error) {
      if (!(error instanceof UnitError)) throw error;
      this.report(node, `${label}: ${error.message}`);
    }
    return undefined;
  }

  /**
   * Maps an offset in a scalar's value to its place in the file. Quoting, escapes, indentation and
   * folding make the value differ from the source, so the value is aligned with the source greedily:
   * whitespace in the source may be skipped freely, other characters (an escape such as
   * `\u00e9`) only a few at a time.
   */
  locate(node: Scalar): Locate {
    const value = typeof node.value === "string" ? node.value : String(node.value);
    const [start = 0, end = start] = node.range ?? [];
    let from = start;
    if (node.type === "BLOCK_LITERAL" || node.type === "BLOCK_FOLDED") {
      const newline = this.source.indexOf("\n", start);
      from = newline === -1 || newline >= end ? start : newline + 1;
    } else if (node.type === "QUOTE_DOUBLE" || node.type === "QUOTE_SINGLE") {
      from = start + 1;
    }
    const offsets: number[] = [];
    let j = from;
    for (const char of value) {
      let k = j;
      let skipped = 0;
      while (k < end && this.source[k] !== char) {
        if (!/\s/.test(this.source[k]!) && ++skipped > 10) break;
        k++;
      }
      if (k < end && this.source[k] === char) {
        j = k;
        // `char` may be two UTF-16 units (an emoji); each maps to the same place.
        for (let u = 0; u < char.length; u++) offsets.push(j + u);
        j += char.length;
      } else {
        for (let u = 0; u < char.length; u++) offsets.push(j);
      }
    }
    return (offset) => this.position(offsets[offset] ?? (offsets.length > 0 ? j : from));
  }
}

/** Where a file's shape first goes past a limit: nesting depth, or entries in one map or list. */
export interface ShapeProblem {
  kind: "depth" | "items";
  offset: number;
}

/**
 * Parses one YAML document as `parseDocument` does (`uniqueKeys`, with `lines` filled), unless maps
 * and lists nest deeper than `max.depth` levels or one holds more than `max.items` entries: then
 * where that happens, and no document. The tokenizer keeps open collections on an explicit stack and
 * is watched as it goes; building the document recurses once per level (a file nested thousands
 * deep gives "Maximum call stack size exceeded") and checks each key of a map against every other
 * (a map of 40,000 keys takes 15 s), so such a file must be stopped before it is built.
 */
export function parseWithin(
  source: string,
  lines: LineCounter,
  max: { depth: number; items: number },
): { doc: Document } | { tooBig: ShapeProblem } {
  const parser = new Parser(lines.addNewLine);
  // The stack holds the document and the value being read besides the collections.
  const limit = max.depth + 2;
  let tooBig: ShapeProblem | undefined;
  function* tokens() {
    lines.addNewLine(0);
    for (const lexeme of new Lexer().lex(source, false)) {
      yield* parser.next(lexeme);
      if (parser.stack.length > limit) tooBig = { kind: "depth", offset: parser.offset };
      // Entries are added to the collection being read, which is on top.
      const top = parser.stack.at(-1);
      if (top && "items" in top && top.items.length > max.items)
        tooBig = { kind: "items", offset: parser.offset };
      if (tooBig) return;
    }
    yield* parser.end();
  }
  let doc: Document | undefined;
  // The library's errors are reported by position and message only: a broken file can have thousands,
  // and capturing a stack trace for each was most of the time spent reading it.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (const next of new Composer({ uniqueKeys: true }).compose(tokens(), true, source.length)) {
      if (doc === undefined) doc = next;
      else {
        doc.errors.push(
          new YAMLParseError(
            [next.range[0], next.range[1]],
            "MULTIPLE_DOCS",
            "Source contains multiple documents; please use YAML.parseAllDocuments()",
          ),
        );
        break;
      }
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  return tooBig ? { tooBig } : { doc: doc! };
}

/** The 1-based line and column of an offset, without a LineCounter (for problems found before parsing). */
export function positionIn(source: string, offset: number): Position {
  let line = 1;
  let start = 0;
  for (let i = source.indexOf("\n"); i !== -1 && i < offset; i = source.indexOf("\n", i + 1)) {
    line++;
    start = i + 1;
  }
  return { line, col: offset - start + 1, offset };
}

function nothingAfter(key: Scalar): Scalar {
  const empty = new Scalar(null);
  const end = key.range?.[1] ?? 0;
  empty.range = [end, end, end];
  return empty;
}

/** A scalar key as written: strings as they are, `123:` or `true:` as their source text. */
function scalarText(node: Scalar, source: string): string | undefined {
  if (typeof node.value === "string") return node.value;
  if (typeof node.value === "number" || typeof node.value === "boolean") {
    const [start, end] = node.range ?? [];
    return start === undefined ? String(node.value) : source.slice(start, end);
  }
  return undefined;
}

/** `[]` or `{}` for units.ts messages, which describe lists and maps by what they get. */
function collection(node: Node | undefined): unknown {
  return isSeq(node) ? [] : isMap(node) ? {} : null;
}

/** What a node holds, for "got ..." in messages. */
export function describe(node: unknown): string {
  if (node === undefined || (isScalar(node) && node.value === null)) return "nothing";
  if (isSeq(node)) return "a list";
  if (isMap(node)) return "a map";
  if (isScalar(node)) {
    if (typeof node.value === "string") return `the string \`${node.value}\``;
    if (typeof node.value === "number" || typeof node.value === "boolean") return `\`${node.value}\``;
  }
  return "something else";
}
