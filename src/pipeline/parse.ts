/**
 * Pipeline files: YAML in GitHub Actions' style, parsed to the {@link Pipeline} model. Every
 * problem is collected (with its line and column) and thrown at once as a {@link PipelineError}.
 *
 * Choices where GitHub is silent or lax, each made so a slip is reported rather than guessed at:
 * a plain number is refused as a duration (seconds or minutes?) but is bytes as a size; `KEY:`
 * with no value is refused in `env`; a matrix needs at least one axis and `include` legs name every
 * axis; `timeout`/`retries` of waits and polls go inside `wait:`/`poll:`; a `required: false`
 * input needs a `default`; keys GitHub users reach for (`steps`, `timeout-minutes`,
 * `depends_on`...) are answered with what to write instead.
 */
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { isMap, isScalar, isSeq, LineCounter, type Node } from "yaml";
import { normalizeOnFailure } from "../definition/saga.js";
import { NotFoundError } from "../errors.js";
import { closest, listOr, type Problem } from "../problems.js";
import {
  describe,
  type Entry,
  type KeyHints,
  parseWithin,
  positionIn,
  Reader,
  type ShapeProblem,
} from "../yaml-reader.js";
import type { ExprScope } from "./expressions.js";
import {
  MAX_DURATION,
  MAX_FILE_BYTES,
  MAX_ITEMS,
  MAX_JOBS,
  MAX_STEPS,
  MAX_YAML_DEPTH,
  overLimit,
} from "./limits.js";
import type {
  Concurrency,
  Input,
  InputType,
  Job,
  OnFailure,
  Pipeline,
  Secret,
  SecretSource,
} from "./model.js";
import {
  CRASH_LOOP_KEYS,
  JOB_KEYS,
  type ParsedJob,
  POLL_KEYS,
  parseJob,
  READY_KEYS,
  RESOURCES_KEYS,
  reportCycles,
  WAIT_KEYS,
} from "./parse-jobs.js";
import { isLoopEntry, LOOP_JOB_KEYS, LOOP_KEYS, parseLoopJob } from "./parse-loop.js";
import { countLegs, INCLUDE_KEYS, MATRIX_KEYS } from "./parse-matrix.js";
import {
  COMMENT_KEYS,
  FLAG_KEYS,
  PULL_REQUEST_KEYS,
  PUSH_KEYS,
  parseTriggers,
  SCHEDULE_KEYS,
  TRIGGER_KEYS,
} from "./parse-triggers.js";
import { parsePipelineOutputs } from "./parse-uses.js";
import { ENV_NAME, parseEnv, template } from "./parse-values.js";
import { PipelineError } from "./problems.js";

export { DEFAULTS } from "./parse-jobs.js";

export const PIPELINE_KEYS = [
  "name",
  "run-name",
  "on",
  "inputs",
  "env",
  "secrets",
  "on_failure",
  "concurrency",
  "priority",
  "jobs",
  "outputs",
] as const;
export const CONCURRENCY_KEYS = ["key", "limit", "cancel_in_progress"] as const;
export const INPUT_KEYS = ["type", "default", "description", "required", "options"] as const;
export const SECRET_KEYS = ["env", "file"] as const;

/**
 * Every key the parser accepts, by where it is written; the JSON Schema is tested against these so
 * the two can't drift. `matrix` and `include` also take axis names, which are the user's.
 */
export const ACCEPTED_KEYS = {
  pipeline: PIPELINE_KEYS,
  input: INPUT_KEYS,
  secret: SECRET_KEYS,
  concurrency: CONCURRENCY_KEYS,
  job: JOB_KEYS,
  loopJob: LOOP_JOB_KEYS,
  loop: LOOP_KEYS,
  wait: WAIT_KEYS,
  poll: POLL_KEYS,
  ready: READY_KEYS,
  crashLoop: CRASH_LOOP_KEYS,
  resources: RESOURCES_KEYS,
  matrix: MATRIX_KEYS,
  include: INCLUDE_KEYS,
  on: TRIGGER_KEYS,
  push: PUSH_KEYS,
  pullRequest: PULL_REQUEST_KEYS,
  comment: COMMENT_KEYS,
  flag: FLAG_KEYS,
  schedule: SCHEDULE_KEYS,
} as const;

const INPUT_TYPES: readonly InputType[] = ["string", "boolean", "number", "choice"];
const ON_FAILURE: readonly OnFailure[] = ["undo", "hold"];
/** Pipeline names become saga names, which allow these characters. */
const PIPELINE_NAME = /^[A-Za-z0-9_.:-]+$/;
/** Inputs are read as `inputs.<name>`, so they follow the expression language's names. */
const INPUT_NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

const PIPELINE_HINTS: KeyHints = {
  run_name: { message: "write `run-name`, as in GitHub", suggestion: "run-name" },
  "on-failure": { message: "write `on_failure`", suggestion: "on_failure" },
  steps: { message: "a pipeline is made of `jobs`", suggestion: "jobs" },
};

/**
 * Parses a pipeline file. `file` is only used in problems and as the default name. Throws a
 * {@link PipelineError} listing every problem in file order. After a YAML syntax error only the
 * YAML errors are reported, since the structure read past it is a guess; duplicate keys are an
 * exception (the rest of the file is still checked, with the first of the duplicates).
 */
export function parsePipeline(source: string, file: string): Pipeline {
  const tooBig = sizeProblem(source, file);
  if (tooBig) throw new PipelineError([tooBig]);
  const lines = new LineCounter();
  const parsed = parseWithin(source, lines, { depth: MAX_YAML_DEPTH.max, items: MAX_ITEMS.max });
  if ("tooBig" in parsed) throw new PipelineError([shapeProblem(parsed.tooBig, source, file)]);
  const doc = parsed.doc;
  const r = new Reader(file, source, lines, doc, {
    ms: MAX_DURATION.max,
    message: overLimit(MAX_DURATION),
  });
  for (const error of [...doc.errors, ...doc.warnings]) {
    r.report(r.position(error.pos[0]), `YAML: ${error.message.split("\n")[0]}`);
  }
  let pipeline: Pipeline | undefined;
  if (doc.errors.every((error) => error.code === "DUPLICATE_KEY")) {
    pipeline = readPipeline(r, doc.contents ?? undefined, file);
  }
  if (pipeline === undefined || r.problems.length > 0) throw new PipelineError(sortProblems(r.problems));
  return pipeline;
}

/**
 * Reads and parses a pipeline file; problems name the file as `path` is written. A missing file
 * is a {@link NotFoundError}.
 */
export function loadPipeline(path: string): Pipeline {
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new NotFoundError(`pipeline file ${path} does not exist`);
    if (code === "EISDIR") throw new NotFoundError(`${path} is a directory, not a pipeline file`);
    throw error;
  }
  return parsePipeline(source, path);
}

/** The file's size, checked before anything reads it. */
function sizeProblem(source: string, file: string): Problem | undefined {
  const bytes = Buffer.byteLength(source, "utf8");
  if (bytes <= MAX_FILE_BYTES.max) return undefined;
  const message = `the file is ${bytes.toLocaleString("en-US")} bytes, ${overLimit(MAX_FILE_BYTES)}`;
  return { file, line: 1, col: 1, message };
}

/** Maps and lists that nest too deep or hold too many entries: found while the YAML is read, before it is built. */
function shapeProblem(shape: ShapeProblem, source: string, file: string): Problem {
  const { line, col } = positionIn(source, shape.offset);
  const message =
    shape.kind === "depth"
      ? `maps and lists nest too deep here: ${overLimit(MAX_YAML_DEPTH)}`
      : `a map or list reaches too many entries here: ${overLimit(MAX_ITEMS)}`;
  return { file, line, col, message };
}

function sortProblems(problems: readonly Problem[]): Problem[] {
  return [...problems].sort((a, b) => a.line - b.line || a.col - b.col);
}

/** The name a file without `name:` gets: its base name, with what a saga name can't hold made `-`. */
function defaultName(file: string): string {
  const base = basename(file).replace(/\.ya?ml$/i, "");
  return base.replace(/[^A-Za-z0-9_.:-]+/g, "-") || "pipeline";
}

function readPipeline(r: Reader, contents: Node | undefined, file: string): Pipeline | undefined {
  if (contents === undefined || (isScalar(contents) && contents.value === null)) {
    r.report(undefined, "the file is empty: a pipeline needs at least `jobs`");
    return undefined;
  }
  if (!isMap(contents)) {
    r.report(contents, `a pipeline file must be a map (\`name:\`, \`jobs:\`...), got ${describe(contents)}`);
    return undefined;
  }
  const top = new Map(r.map(contents, "the pipeline", PIPELINE_KEYS, PIPELINE_HINTS).map((e) => [e.name, e]));
  const get = (key: (typeof PIPELINE_KEYS)[number]) => top.get(key)?.value;

  const nameNode = get("name");
  const name =
    nameNode === undefined
      ? defaultName(file)
      : (r.name(nameNode, "`name`", PIPELINE_NAME, "letters, digits, `_`, `.`, `:` and `-`") ?? "");
  const inputs = top.has("inputs") ? parseInputs(r, get("inputs")!) : {};
  const secrets = top.has("secrets") ? parseSecrets(r, get("secrets")!) : {};
  const pipelineOnly = "the pipeline's `env` can read only `inputs`";
  const envScope: ExprScope = {
    roots: {
      inputs: true,
      matrix: pipelineOnly,
      needs: pipelineOnly,
      env: pipelineOnly,
      outputs: pipelineOnly,
    },
    inputs: Object.keys(inputs),
    needs: [],
    jobs: [],
    env: [],
  };
  const env = top.has("env") ? parseEnv(r, get("env")!, "the pipeline", envScope, Object.keys(secrets)) : {};

  let onFailure: OnFailure = "undo";
  const onFailureNode = get("on_failure");
  if (onFailureNode !== undefined) {
    const value = r.string(onFailureNode, "`on_failure`");
    const known = value === undefined ? undefined : normalizeOnFailure(value);
    if (value !== undefined && known === undefined) {
      r.report(
        onFailureNode,
        `\`on_failure\` must be ${listOr(ON_FAILURE)}, got \`${value}\``,
        closest(value, ON_FAILURE),
      );
    } else if (known !== undefined) {
      onFailure = known;
    }
  }

  const concurrencyNode = get("concurrency");
  const keyOnly = "`concurrency.key` can read only `inputs`: runs are counted before any job runs";
  const keyScope: ExprScope = {
    ...envScope,
    roots: { inputs: true, matrix: keyOnly, needs: keyOnly, env: keyOnly, outputs: keyOnly },
  };
  const concurrency = concurrencyNode && parseConcurrency(r, concurrencyNode, keyScope);
  const priority = ifGivenInteger(r, get("priority"));

  const jobs = parseJobs(r, top.get("jobs"), {
    inputs: Object.keys(inputs),
    env: Object.keys(env),
    secrets: Object.keys(secrets),
  });
  const tiers = [...new Set(jobs.flatMap((job) => (job.tier === undefined ? [] : [job.tier])))];
  const on = top.has("on") ? parseTriggers(r, get("on")!, tiers) : undefined;
  const runNameOnly = "`run-name` can read only `inputs` and `event`: it is set when the run starts";
  const runNameNode = get("run-name");
  const runName =
    runNameNode === undefined
      ? undefined
      : template(r, runNameNode, "`run-name`", {
          ...envScope,
          roots: {
            inputs: true,
            event: true,
            matrix: runNameOnly,
            needs: runNameOnly,
            env: runNameOnly,
            outputs: runNameOnly,
          },
        });
  const outputsNode = get("outputs");
  const outputs = outputsNode && parsePipelineOutputs(r, outputsNode, jobs, Object.keys(inputs));
  return {
    file,
    name,
    ...(outputs && { outputs }),
    ...(runName && { runName }),
    ...(on && { on }),
    inputs,
    env,
    secrets,
    onFailure,
    ...(concurrency && { concurrency }),
    ...(priority !== undefined && { priority }),
    jobs,
  };
}

/** `priority: 10`: higher goes first when jobs wait for the same capacity (aging lifts the rest). */
function ifGivenInteger(r: Reader, node: Node | undefined): number | undefined {
  if (node === undefined) return undefined;
  if (!isScalar(node) || typeof node.value !== "number" || !Number.isSafeInteger(node.value)) {
    r.report(node, `\`priority\` must be a whole number (higher goes first), got ${describe(node)}`);
    return undefined;
  }
  return node.value;
}

/** `concurrency: { key, limit, cancel_in_progress }`: how many runs of one key run at once. */
function parseConcurrency(r: Reader, node: Node, scope: ExprScope): Concurrency | undefined {
  const fields = new Map(r.map(node, "`concurrency`", CONCURRENCY_KEYS).map((e) => [e.name, e.value]));
  if (!isMap(node)) return undefined;
  const keyNode = fields.get("key");
  const key = keyNode === undefined ? undefined : template(r, keyNode, "`concurrency.key`", scope);
  const limitNode = fields.get("limit");
  const limit = limitNode === undefined ? 1 : (r.integer(limitNode, "`concurrency.limit`", 1) ?? 1);
  const cancelNode = fields.get("cancel_in_progress");
  const cancelInProgress =
    cancelNode === undefined ? false : (r.boolean(cancelNode, "`concurrency.cancel_in_progress`") ?? false);
  return { ...(key && { key }), limit, cancelInProgress, pos: r.at(node) };
}

function parseJobs(
  r: Reader,
  entry: Entry | undefined,
  names: { inputs: string[]; env: string[]; secrets: string[] },
): Job[] {
  if (entry === undefined) {
    r.report(
      undefined,
      "the pipeline has no `jobs`: add at least one, e.g. `jobs: { build: { run: make } }`",
    );
    return [];
  }
  const empty =
    (isScalar(entry.value) && entry.value.value === null) ||
    (isMap(entry.value) && entry.value.items.length === 0);
  if (empty) {
    r.report(entry.key, "`jobs` is empty: a pipeline needs at least one job");
    return [];
  }
  const entries = r.map(entry.value, "`jobs`");
  if (entries.length > MAX_JOBS.max) {
    r.report(
      entry.key,
      `the pipeline has ${entries.length.toLocaleString("en-US")} jobs, ${overLimit(MAX_JOBS)}`,
    );
    return [];
  }
  const context = { reader: r, ...names, jobs: entries.map((e) => e.name) };
  const parsed = entries
    .map((e) => (isLoopEntry(e) ? parseLoopJob(context, e) : parseJob(context, e)))
    .filter((p): p is ParsedJob => p !== undefined);
  const steps = parsed.reduce((sum, { job }) => {
    if (job.kind === "loop") return sum + 1 + job.loop.max * job.jobs.length;
    return sum + (job.matrix ? countLegs(job.matrix).count : 1);
  }, 0);
  if (steps > MAX_STEPS.max) {
    r.report(
      entry.key,
      `the pipeline's jobs make ${steps.toLocaleString("en-US")} steps, ${overLimit(MAX_STEPS)}`,
    );
  }
  reportCycles(r, parsed);
  return parsed.map((p) => p.job);
}

function parseInputs(r: Reader, node: Node): Record<string, Input> {
  const inputs: Record<string, Input> = {};
  for (const entry of r.map(node, "`inputs`")) {
    if (!INPUT_NAME.test(entry.name)) {
      r.report(
        entry.key,
        `input name \`${entry.name}\` is not valid: use letters, digits, \`-\` and \`_\`, starting with a letter or \`_\``,
      );
      continue;
    }
    const input = parseInput(r, entry);
    if (input) inputs[entry.name] = input;
  }
  return inputs;
}

/**
 * One input. `required: true` next to a `default` is accepted (GitHub allows it) and the default
 * is used when no value is given; `required: false` without a default is refused, since there
 * would be no value to read.
 */
function parseInput(r: Reader, entry: Entry): Input | undefined {
  const name = entry.name;
  const label = (key: string) => `\`${key}\` of input \`${name}\``;
  // `tag:` alone declares a required string input.
  const fields =
    isScalar(entry.value) && entry.value.value === null
      ? new Map<string, Entry>()
      : new Map(r.map(entry.value, `input \`${name}\``, INPUT_KEYS).map((e) => [e.name, e]));
  if (!isMap(entry.value) && !(isScalar(entry.value) && entry.value.value === null)) return undefined;

  const typeNode = fields.get("type")?.value;
  const defaultNode = fields.get("default")?.value;
  let type: InputType | undefined;
  if (typeNode !== undefined) {
    const text = r.string(typeNode, label("type"));
    if (text !== undefined && (INPUT_TYPES as readonly string[]).includes(text)) type = text as InputType;
    else if (text !== undefined) {
      const aliases: Record<string, InputType> = {
        bool: "boolean",
        str: "string",
        int: "number",
        enum: "choice",
      };
      r.report(
        typeNode,
        `${label("type")} must be ${listOr(INPUT_TYPES)}, got \`${text}\``,
        aliases[text] ?? closest(text, INPUT_TYPES),
      );
      return undefined;
    }
  }
  const rawDefault = isScalar(defaultNode) ? defaultNode.value : undefined;
  type ??= typeof rawDefault === "boolean" ? "boolean" : typeof rawDefault === "number" ? "number" : "string";
  const input: Input = { name, type, required: true, pos: r.at(entry.key) };

  const description = fields.get("description");
  if (description) {
    const text = r.string(description.value, label("description"), { empty: true });
    if (text !== undefined) input.description = text;
  }

  const optionsEntry = fields.get("options");
  if (optionsEntry && type !== "choice") {
    r.report(
      optionsEntry.key,
      `\`options\` applies to \`choice\` inputs: add \`type: choice\` to input \`${name}\``,
    );
  } else if (type === "choice") {
    if (!optionsEntry) {
      r.report(entry.key, `choice input \`${name}\` needs \`options\`: the values it allows`);
    } else {
      const options: string[] = [];
      for (const item of r.list(optionsEntry.value, label("options")) ?? []) {
        const option = r.string(item, `an option of input \`${name}\``);
        if (option === undefined) continue;
        if (options.includes(option)) r.report(item, `input \`${name}\` lists option \`${option}\` twice`);
        else options.push(option);
      }
      if (options.length === 0 && isSeq(optionsEntry.value)) {
        r.report(optionsEntry.key, `choice input \`${name}\` needs at least one option`);
      }
      input.options = options;
    }
  }

  if (defaultNode !== undefined) {
    const value = inputDefault(r, defaultNode, type, input.options, label("default"));
    if (value !== undefined) {
      input.default = value;
      input.required = false;
    }
  }

  const requiredEntry = fields.get("required");
  if (requiredEntry) {
    const required = r.boolean(requiredEntry.value, label("required"));
    if (required === false && defaultNode === undefined) {
      r.report(
        requiredEntry.value,
        `input \`${name}\` is optional but has no \`default\`: give it one (e.g. \`default: ''\`) so there is a value to read`,
      );
    }
  }
  return input;
}

function inputDefault(
  r: Reader,
  node: Node,
  type: InputType,
  options: string[] | undefined,
  label: string,
): string | number | boolean | undefined {
  const value = isScalar(node) ? node.value : undefined;
  if (type === "boolean" && typeof value === "boolean") return value;
  if (type === "number" && typeof value === "number") return value;
  if ((type === "string" || type === "choice") && typeof value === "string") {
    if (type === "choice" && options !== undefined && !options.includes(value)) {
      r.report(
        node,
        `${label} is \`${value}\`, which is not one of the options (${listOr(options)})`,
        closest(value, options),
      );
      return undefined;
    }
    return value;
  }
  const quote =
    (type === "string" || type === "choice") && (typeof value === "number" || typeof value === "boolean")
      ? `: quote it (\`'${String(value)}'\`) to make it a string`
      : "";
  r.report(node, `${label} must be a ${type === "choice" ? "string" : type}, got ${describe(node)}${quote}`);
  return undefined;
}

function parseSecrets(r: Reader, node: Node): Record<string, Secret> {
  const secrets: Record<string, Secret> = {};
  for (const entry of r.map(node, "`secrets`")) {
    const name = entry.name;
    if (!ENV_NAME.test(name)) {
      r.report(
        entry.key,
        `secret name \`${name}\` is not valid: it becomes an environment variable, so use letters, digits and \`_\`, not starting with a digit`,
      );
      continue;
    }
    const fields = r.map(entry.value, `secret \`${name}\``, SECRET_KEYS);
    if (!isMap(entry.value)) continue;
    if (fields.length !== 1) {
      const where = fields[1]?.key ?? entry.key;
      r.report(where, `secret \`${name}\` needs exactly one source: \`env: VARIABLE\` or \`file: ./path\``);
      continue;
    }
    const field = fields[0]!;
    let source: SecretSource | undefined;
    if (field.name === "env") {
      const variable = r.name(
        field.value,
        `\`env\` of secret \`${name}\``,
        ENV_NAME,
        "letters, digits and `_`, not starting with a digit",
      );
      if (variable !== undefined) source = { kind: "env", name: variable };
    } else {
      const path = r.string(field.value, `\`file\` of secret \`${name}\``);
      if (path !== undefined) source = { kind: "file", path };
    }
    if (source) secrets[name] = { name, source, pos: r.at(entry.key) };
  }
  return secrets;
}
