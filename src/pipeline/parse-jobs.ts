/** Parsing one job of a pipeline file (its kind, needs, matrix, resources, readiness check), with its expressions checked. */
import { isMap, isScalar, type Node } from "yaml";
import { NAME, NAME_RULE } from "../names.js";
import { closest } from "../problems.js";
import { describe, type Entry, type KeyHints, type Reader } from "../yaml-reader.js";
import type { ExprScope } from "./expressions.js";
import type { ContextRoot, Job, JobKind, ReadyCheck, Resources } from "./model.js";
import { parseMatrix } from "./parse-matrix.js";
import { parseUsesJob, reportWithoutUses } from "./parse-uses.js";
import { condition, parseEnv, placeholder, template } from "./parse-values.js";
import {
  isRunTimeMatrix,
  knownAxes,
  matrixContext,
  parseRunTimeMatrix,
  refuseWithRunTimeMatrix,
} from "./runtime-matrix.js";

const SIGNAL_NAME = /^[A-Za-z0-9_.:-]+$/;

/** The keys each part of a job accepts; exported (through parse.ts) so the JSON Schema is tested against them. */
export const JOB_KEYS = [
  "needs",
  "if",
  "env",
  "working_directory",
  "tier",
  "matrix",
  "resources",
  "run",
  "undo",
  "cleanup",
  "ready",
  "retries",
  "timeout",
  "wait",
  "poll",
  "uses",
  "with",
] as const;
export const WAIT_KEYS = ["signal", "timeout"] as const;
export const POLL_KEYS = ["run", "every", "timeout", "retries"] as const;
export const READY_KEYS = ["run", "every", "timeout", "crash_loop"] as const;
export const CRASH_LOOP_KEYS = ["failures", "within"] as const;
export const RESOURCES_KEYS = ["memory", "cpu", "disk", "locks"] as const;

/** Defaults, documented in the JSON Schema too. */
export const DEFAULTS = {
  /** A probe every 2 s notices a service coming up (or crash-looping) quickly and costs little. */
  readyEveryMs: 2_000,
  readyTimeoutMs: 5 * 60_000,
  /** Polls usually watch something slow (an external build): every 30 s is plenty. */
  pollEveryMs: 30_000,
} as const;

const KINDS: readonly JobKind[] = ["run", "wait", "poll", "uses"];

const needsHint = { message: "dependencies are listed in `needs`", suggestion: "needs" };
const undoHint = { message: "the command that undoes a job is `undo`", suggestion: "undo" };
const resourceHint = (key: string) => ({
  message: `\`${key}\` belongs in \`resources:\`, e.g. \`resources: { ${key}: ... }\``,
  suggestion: "resources",
});
const JOB_HINTS: KeyHints = {
  "timeout-minutes": { message: "write the limit as a duration, e.g. `timeout: 15m`", suggestion: "timeout" },
  timeout_minutes: { message: "write the limit as a duration, e.g. `timeout: 15m`", suggestion: "timeout" },
  steps: { message: "a job runs one command: write several lines with `run: |`", suggestion: "run" },
  "runs-on": { message: "jobs run where Slipway runs; declare what they need in `resources`" },
  strategy: {
    message: "write `matrix:` directly under the job (there is no `strategy:`)",
    suggestion: "matrix",
  },
  name: { message: "a job is named by its key; there is no display `name`" },
  depends_on: needsHint,
  "depends-on": needsHint,
  dependencies: needsHint,
  after: needsHint,
  requires: needsHint,
  rollback: undoHint,
  compensate: undoHint,
  teardown: {
    message: "a teardown after a `run` cut short is `cleanup`; after a completed one, `undo`",
    suggestion: "cleanup",
  },
  every: { message: "`every` belongs in `ready:` or `poll:`" },
  crash_loop: { message: "`crash_loop` belongs in `ready:`", suggestion: "ready" },
  signal: { message: "`signal` belongs in `wait:`, e.g. `wait: { signal: approved }`", suggestion: "wait" },
  memory: resourceHint("memory"),
  cpu: resourceHint("cpu"),
  disk: resourceHint("disk"),
  locks: resourceHint("locks"),
};

/** What every job sees of the rest of the pipeline. */
export interface JobContext {
  reader: Reader;
  inputs: readonly string[];
  /** Names in the pipeline's `env`. */
  env: readonly string[];
  /** Every job name in the file, valid or not, so `needs` can tell a typo from a missing job. */
  jobs: readonly string[];
  /** Secret names: every step gets them as variables, so `env` may not reuse them. */
  secrets: readonly string[];
  /**
   * For a job of a loop's body (`jobs` above are then the body's): the jobs the loop job needs,
   * which its jobs read without listing them, and every job of the file, for messages.
   */
  loop?: { needs: readonly string[]; outer: readonly string[] };
}

/** A parsed job and, for the dependency-graph checks, the node of each valid `needs` entry. */
export interface ParsedJob {
  job: Job;
  needNodes: Map<string, Node>;
}

/** Parses one `jobs:` entry; problems go to the reader. Undefined when the job's shape is unusable. */
export function parseJob(ctx: JobContext, entry: Entry): ParsedJob | undefined {
  const r = ctx.reader;
  const name = entry.name;
  const label = (key: string) => `\`${key}\` of job \`${name}\``;
  const pos = r.at(entry.key);
  if (!NAME.test(name)) {
    r.report(
      entry.key,
      `job name \`${name}\` is not valid: use ${NAME_RULE} (\`.\` is kept for matrix legs)`,
    );
  }
  if (!isMap(entry.value)) {
    r.report(entry.value, `job \`${name}\` must be a map of its settings, got ${describe(entry.value)}`);
    return undefined;
  }
  const fields = new Map(r.map(entry.value, `job \`${name}\``, JOB_KEYS, JOB_HINTS).map((e) => [e.name, e]));
  const get = (key: (typeof JOB_KEYS)[number]) => fields.get(key)?.value;

  const kinds = KINDS.filter((kind) => fields.has(kind));
  const kind = kinds[0];
  if (kind === undefined) {
    r.report(entry.key, `job \`${name}\` needs one of \`run\`, \`wait\`, \`poll\` or \`uses\`: what it does`);
  } else if (kinds.length > 1) {
    r.report(
      fields.get(kinds[1]!)!.key,
      `job \`${name}\` has both \`${kinds[0]}\` and \`${kinds[1]}\`: a job does one thing (split it in two, the second needing the first)`,
    );
  }

  const needNodes = parseNeeds(ctx, name, get("needs"));
  const needs = [...needNodes.keys()];
  const matrixNode = get("matrix");
  const runTime = matrixNode !== undefined && isRunTimeMatrix(matrixNode);
  const matrix = matrixNode && !runTime ? parseMatrix(ctx, name, matrixNode) : undefined;
  // A loop's jobs have no matrix (parse-loop.ts says so): no other problem of one is reported there.
  const runTimeMatrix =
    runTime && !ctx.loop ? parseRunTimeMatrix(matrixContext(ctx, name, needs), name, matrixNode) : undefined;
  const jobEnvNames: string[] = [];
  const scopeFor = (roots: Partial<Record<ContextRoot, true | string>>): ExprScope => {
    const scope: ExprScope = {
      roots: ctx.loop ? { ...roots, loop: true } : roots,
      inputs: ctx.inputs,
      needs: [...needs, ...(ctx.loop?.needs ?? [])],
      jobs: [...ctx.jobs, ...(ctx.loop?.outer ?? [])],
      env: [...ctx.env, ...jobEnvNames],
      job: name,
    };
    if (matrix) scope.matrixAxes = Object.keys(matrix.axes);
    if (runTime) {
      // A whole matrix from JSON has its axes known only when it runs: any `matrix.<axis>` is taken.
      const axes = runTimeMatrix && knownAxes(runTimeMatrix);
      if (axes) scope.matrixAxes = axes;
      else scope.matrixAtRunTime = true;
    }
    if (ctx.loop) scope.loopJobs = ctx.jobs;
    return scope;
  };
  const stepRoots = {
    inputs: true,
    matrix: true,
    needs: true,
    env: true,
    outputs: OUTPUTS_ONLY_IN_UNDO,
  } as const;
  // Job env values read the pipeline's env only: the job's own names are still being defined.
  const env = fields.has("env")
    ? parseEnv(r, get("env")!, `job \`${name}\``, scopeFor(stepRoots), ctx.secrets)
    : {};
  jobEnvNames.push(...Object.keys(env));
  const steps = scopeFor(stepRoots);

  const base = {
    name,
    pos,
    needs,
    env,
    ...(fields.has("if") && {
      if: condition(
        r,
        get("if")!,
        label("if"),
        scopeFor({
          inputs: true,
          matrix: true,
          needs: true,
          env: ENV_NOT_IN_IF,
          outputs: OUTPUTS_ONLY_IN_UNDO,
        }),
      ),
    }),
    ...(fields.has("working_directory") && {
      workingDirectory: template(r, get("working_directory")!, label("working_directory"), steps),
    }),
    ...(fields.has("tier") && { tier: r.name(get("tier"), label("tier"), NAME, NAME_RULE) }),
    ...(matrix && { matrix }),
    ...(runTimeMatrix && { runTimeMatrix }),
    ...(fields.has("resources") && { resources: parseResources(r, get("resources")!, name) }),
  };

  if (kind === "wait" || kind === "poll") {
    const what = kind === "wait" ? "waits for a signal" : "polls";
    for (const key of ["undo", "cleanup", "ready", "retries", "timeout", "resources"] as const) {
      const field = fields.get(key);
      if (field === undefined) continue;
      const fix =
        key === "timeout" || (key === "retries" && kind === "poll")
          ? `: put it in \`${kind}:\``
          : key === "retries"
            ? ": a wait has nothing to retry"
            : key === "resources"
              ? ": it holds nothing while it waits, and is admitted for nothing"
              : "";
      r.report(field.key, `\`${key}\` applies to \`run\` jobs only (job \`${name}\` ${what})${fix}`);
    }
  }

  if (runTimeMatrix && kind !== "uses")
    refuseWithRunTimeMatrix(r, name, kind && fields.get(kind), fields.get("ready"));
  reportWithoutUses(r, fields, name);

  let job: Job;
  if (kind === "uses") {
    // What a `uses` job can't have is reported (parse-uses.ts), and left out of it.
    const { env: _env, workingDirectory: _dir, resources: _r, ...rest } = base;
    job = parseUsesJob(r, fields, { ...rest, env: {} }, scopeFor(USES_ROOTS));
  } else if (kind === "wait") {
    const wait = r.map(get("wait"), label("wait"), WAIT_KEYS);
    const signal = wait.find((e) => e.name === "signal");
    const timeout = wait.find((e) => e.name === "timeout");
    if (signal === undefined && isMap(get("wait"))) {
      r.report(
        fields.get("wait")!.key,
        `${label("wait")} needs a \`signal\` to wait for, e.g. \`signal: approved\``,
      );
    }
    job = {
      ...base,
      kind: "wait",
      signal:
        (signal &&
          r.name(
            signal.value,
            label("wait.signal"),
            SIGNAL_NAME,
            "letters, digits, `_`, `.`, `:` and `-`",
          )) ??
        "",
    };
    const timeoutMs = timeout && r.duration(timeout.value, label("wait.timeout"));
    if (timeoutMs !== undefined) job.timeoutMs = timeoutMs;
  } else if (kind === "poll") {
    const poll = r.map(get("poll"), label("poll"), POLL_KEYS);
    const at = (key: string) => poll.find((e) => e.name === key);
    const run = at("run");
    if (run === undefined && isMap(get("poll"))) {
      r.report(
        fields.get("poll")!.key,
        `${label("poll")} needs a \`run\`: the check (exit 0 done, 75 not yet)`,
      );
    }
    job = {
      ...base,
      kind: "poll",
      run: (run && template(r, run.value, label("poll.run"), steps)) ?? placeholder(pos),
      everyMs: ifGiven(at("every"), (n) => r.duration(n, label("poll.every"))) ?? DEFAULTS.pollEveryMs,
      retries: ifGiven(at("retries"), (n) => r.integer(n, label("poll.retries"), 0)) ?? 0,
    };
    const timeoutMs = ifGiven(at("timeout"), (n) => r.duration(n, label("poll.timeout")));
    if (timeoutMs !== undefined) job.timeoutMs = timeoutMs;
  } else {
    job = {
      ...base,
      kind: "run",
      run: ifGiven(fields.get("run"), (n) => template(r, n, label("run"), steps)) ?? placeholder(pos),
      retries: ifGiven(fields.get("retries"), (n) => r.integer(n, label("retries"), 0)) ?? 0,
    };
    if (kind === "run") {
      const undo = ifGiven(fields.get("undo"), (n) =>
        template(r, n, label("undo"), scopeFor({ ...stepRoots, outputs: true })),
      );
      if (undo) job.undo = undo;
      // After a `run` cut short: it has no outputs to read.
      const cleanup = ifGiven(fields.get("cleanup"), (n) => template(r, n, label("cleanup"), steps));
      if (cleanup) job.cleanup = cleanup;
      const timeoutMs = ifGiven(fields.get("timeout"), (n) => r.duration(n, label("timeout")));
      if (timeoutMs !== undefined) job.timeoutMs = timeoutMs;
      // The probe runs after `run` succeeded, so it may read what `run` output (a URL, a service name).
      const probeScope = scopeFor({ ...stepRoots, outputs: true });
      const ready = fields.has("ready") ? parseReady(r, fields.get("ready")!, name, probeScope) : undefined;
      if (ready) job.ready = ready;
    }
  }
  return { job, needNodes };
}

const USES_ROOTS = {
  inputs: true,
  needs: true,
  matrix: true,
  env: "`env` is set for commands: give the child pipeline what it needs in `with:`",
  outputs:
    "`outputs` are the child pipeline's: jobs after this one read them as `needs.<job>.outputs.<name>`",
} as const;

const OUTPUTS_ONLY_IN_UNDO =
  "`outputs` (the job's own outputs) can be read only in `undo` and `ready.run`; other jobs read them as `needs.<job>.outputs.<name>`";
const ENV_NOT_IN_IF =
  "`env` can't be read in a job's `if:` (it is set for the command, after `if:` is decided)";

function ifGiven<T>(entry: Entry | undefined, read: (node: Node) => T | undefined): T | undefined {
  return entry === undefined ? undefined : read(entry.value);
}

export function parseNeeds(ctx: JobContext, job: string, node: Node | undefined): Map<string, Node> {
  const r = ctx.reader;
  const needs = new Map<string, Node>();
  if (node === undefined) return needs;
  for (const item of r.list(node, `\`needs\` of job \`${job}\``, true) ?? []) {
    const name = r.string(item, `an entry of \`needs\` of job \`${job}\``);
    if (name === undefined) continue;
    if (name === job) r.report(item, `job \`${job}\` needs itself`);
    else if (needs.has(name)) r.report(item, `job \`${job}\` lists \`${name}\` twice in \`needs\``);
    else if (ctx.loop?.outer.includes(name)) {
      r.report(
        item,
        `job \`${job}\` is in a loop, whose jobs need each other only: add \`${name}\` to the loop job's \`needs\`, and its jobs read it without listing it`,
      );
    } else if (!ctx.jobs.includes(name)) {
      r.report(
        item,
        `job \`${job}\` needs \`${name}\`, which is not a job`,
        closest(
          name,
          ctx.jobs.filter((j) => j !== job),
        ),
      );
    } else needs.set(name, item);
  }
  return needs;
}

function parseResources(r: Reader, node: Node, job: string): Resources | undefined {
  const label = (key: string) => `\`resources.${key}\` of job \`${job}\``;
  const resources: Resources = { locks: [] };
  for (const entry of r.map(node, `\`resources\` of job \`${job}\``, RESOURCES_KEYS)) {
    const value = entry.value;
    if (entry.name === "memory") {
      const memory =
        isScalar(value) && value.value === "auto" ? ("auto" as const) : r.size(value, label("memory"));
      if (memory !== undefined) resources.memoryBytes = memory;
    } else if (entry.name === "disk") {
      const disk = r.size(value, label("disk"));
      if (disk !== undefined) resources.diskBytes = disk;
    } else if (entry.name === "cpu") {
      const cpu = r.positiveNumber(value, label("cpu"));
      if (cpu !== undefined) resources.cpu = cpu;
    } else {
      for (const item of r.list(value, label("locks"), true) ?? []) {
        const lock = r.name(item, `a lock of job \`${job}\``, NAME, NAME_RULE);
        if (lock === undefined) continue;
        if (resources.locks.includes(lock)) r.report(item, `lock \`${lock}\` is listed twice`);
        else resources.locks.push(lock);
      }
    }
  }
  return resources;
}

function parseReady(r: Reader, entry: Entry, job: string, scope: ExprScope): ReadyCheck | undefined {
  const label = (key: string) => `\`ready.${key}\` of job \`${job}\``;
  const fields = new Map(
    r.map(entry.value, `\`ready\` of job \`${job}\``, READY_KEYS).map((e) => [e.name, e]),
  );
  if (!isMap(entry.value)) return undefined;
  const run = fields.get("run");
  if (run === undefined) {
    r.report(entry.key, `\`ready\` of job \`${job}\` needs a \`run\`: the probe (exit 0 ready, 75 not yet)`);
  }
  const ready: ReadyCheck = {
    run: ifGiven(run, (n) => template(r, n, label("run"), scope)) ?? placeholder(r.at(entry.key)),
    everyMs: ifGiven(fields.get("every"), (n) => r.duration(n, label("every"))) ?? DEFAULTS.readyEveryMs,
    timeoutMs:
      ifGiven(fields.get("timeout"), (n) => r.duration(n, label("timeout"))) ?? DEFAULTS.readyTimeoutMs,
  };
  const crash = fields.get("crash_loop");
  if (crash) {
    const parts = new Map(r.map(crash.value, label("crash_loop"), CRASH_LOOP_KEYS).map((e) => [e.name, e]));
    const failures = ifGiven(parts.get("failures"), (n) => r.integer(n, label("crash_loop.failures"), 1));
    const withinMs = ifGiven(parts.get("within"), (n) => r.duration(n, label("crash_loop.within")));
    for (const key of CRASH_LOOP_KEYS) {
      if (isMap(crash.value) && !parts.has(key)) {
        r.report(
          crash.key,
          `${label("crash_loop")} needs \`${key}\`, e.g. \`crash_loop: { failures: 3, within: 60s }\``,
        );
      }
    }
    if (failures !== undefined && withinMs !== undefined) ready.crashLoop = { failures, withinMs };
  }
  return ready;
}

/**
 * Reports each dependency cycle once, at the `needs` entry that closes it, with its path
 * (`a -> b -> a`: `a` needs `b`, which needs `a`).
 */
export function reportCycles(r: Reader, parsed: ParsedJob[]): void {
  const byName = new Map(parsed.map((p) => [p.job.name, p]));
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (name: string): void => {
    state.set(name, "active");
    stack.push(name);
    const job = byName.get(name);
    for (const [need, node] of job?.needNodes ?? []) {
      const seen = state.get(need);
      if (seen === "active") {
        const path = [...stack.slice(stack.indexOf(need)), need];
        r.report(node, `dependency cycle: ${path.join(" -> ")}`);
      } else if (seen === undefined && byName.has(need)) {
        visit(need);
      }
    }
    stack.pop();
    state.set(name, "done");
  };
  for (const name of byName.keys()) if (!state.has(name)) visit(name);
}
