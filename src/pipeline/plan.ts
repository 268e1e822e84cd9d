/**
 * Planning a run: the values of its inputs, the tiers it asked for, and the steps that follow from
 * them (one per job, one per matrix leg), before anything runs.
 */

import { closest, listOr } from "../problems.js";
import { evaluateCondition, renderTemplate } from "./expression-eval.js";
import { MAX_INPUT_BYTES, overLimit } from "./limits.js";
import type { Expr, Input, Job, MatrixValue, Pipeline, Template, Value } from "./model.js";
import { PipelineInputError } from "./problems.js";

/** What a run was asked for on the command line or over the API: raw strings, as typed. */
export interface RunRequest {
  inputs: Record<string, string | number | boolean>;
  tiers: readonly string[];
  /** What started the run, as expressions read it (`event.sha`...); absent: started by hand. */
  event?: Record<string, unknown> | undefined;
}

/** The `event` of a run started by hand. */
export const MANUAL_EVENT: Readonly<Record<string, unknown>> = { kind: "manual" };

/**
 * One unit of work: a job, or one leg of a job's matrix, and for a job with `ready`, its readiness
 * probe as a step of its own after it. Becomes one saga action.
 */
export interface Step {
  /** The saga action's name: the job's name, with the leg's values after a dot for a matrix leg, and `.ready` for a probe. */
  action: string;
  /** `run`, `wait` or `poll` as the job says; `ready` for the probe of a job's `ready`. */
  kind: "job" | "ready";
  job: Job;
  /** The leg's values, for a matrix leg. */
  matrix?: Record<string, MatrixValue>;
  /** Action names of the steps of every job this one needs (all legs of a matrix job). */
  needs: string[];
  /** For a `ready` step: the action whose `run` it probes (it runs after it, and passes its outputs on). */
  probes?: string;
  /** `build-app (linux/amd64)`: how people read it. */
  label: string;
  /**
   * A loop job's body: its jobs' steps, run again each iteration as steps of their own
   * (`attempts#2.fix`). Their `needs` are their own (by job name) then the loop's.
   */
  body?: Step[];
}

export interface Plan {
  pipeline: Pipeline;
  inputs: Record<string, Value>;
  tiers: string[];
  /** What started the run, as expressions read it. */
  event: Record<string, unknown>;
  /** In file order. */
  steps: Step[];
  /** Jobs left out of this run, and why. */
  excluded: { job: string; reason: string }[];
  /** Runs are counted (`concurrency`) and capacity is shared fairly by this key: the pipeline's name unless `concurrency.key` says. */
  key: string;
  /** Of this run's jobs when they wait for capacity. */
  priority: number;
}

/** How people read a step's action name (`build (linux/amd64)`), from a plan or its outline. */
export function stepLabel(
  plan: { steps: readonly { action: string; label: string }[] },
  action: string,
): string {
  return plan.steps.find((s) => s.action === action)?.label ?? action;
}

/** Plans a run; throws PipelineInputError listing every problem with the request. */
export function planRun(pipeline: Pipeline, request: RunRequest): Plan {
  const problems: string[] = [];
  const inputs = resolveInputs(pipeline.inputs, request.inputs, problems);

  const tiers = [...new Set(request.tiers)];
  const known = new Set(pipeline.jobs.flatMap((job) => (job.tier === undefined ? [] : [job.tier])));
  for (const tier of tiers) {
    if (!known.has(tier)) {
      const hint = closest(tier, known);
      problems.push(
        `no job is in tier "${tier}"${known.size ? ` (tiers: ${listOr([...known].sort(), "and")})` : ""}${hint ? `; did you mean "${hint}"?` : ""}`,
      );
    }
  }
  if (problems.length > 0) throw new PipelineInputError(problems);

  // A job of a tier nobody asked for is left out. A job that needs it runs without it (a teardown
  // after optional heavy tests still runs after the light ones), unless it reads its outputs.
  const excluded = new Map<string, string>();
  for (const job of pipeline.jobs) {
    if (job.tier !== undefined && !tiers.includes(job.tier))
      excluded.set(job.name, `tier "${job.tier}" not requested`);
  }
  let changed = true;
  while (changed) {
    changed = false;
    for (const job of pipeline.jobs) {
      if (excluded.has(job.name)) continue;
      const read = neededOutputs(job);
      const missing = job.needs.find((name) => excluded.has(name) && read.has(name));
      if (missing !== undefined) {
        excluded.set(job.name, `reads outputs of "${missing}", which is left out`);
        changed = true;
      }
    }
  }

  const actionsOf = new Map<string, string[]>();
  const steps: Step[] = [];
  const taken = new Set<string>();
  for (const job of pipeline.jobs) {
    if (excluded.has(job.name)) continue;
    const needs = job.needs.flatMap((name) => (excluded.has(name) ? [] : (actionsOf.get(name) ?? [])));
    const legs: (Record<string, MatrixValue> | undefined)[] = job.matrix
      ? expandMatrix(job, inputs)
      : [undefined];
    if (legs.length === 0) {
      problems.push(`job "${job.name}": its matrix has no legs for these inputs`);
      continue;
    }
    // What jobs that need this one wait for: each leg's last step (its probe, when it has one).
    const ends: string[] = [];
    for (const leg of legs) {
      const action = uniqueName(leg ? `${job.name}.${legName(leg)}` : job.name, taken);
      const label = leg ? `${job.name} (${Object.values(leg).map(String).join(", ")})` : job.name;
      const step: Step = { action, kind: "job", job, needs, label };
      if (leg) step.matrix = leg;
      if (job.kind === "loop")
        step.body = job.jobs.map((inner) => ({
          action: inner.name,
          kind: "job",
          job: inner,
          needs: [...inner.needs, ...needs],
          label: inner.name,
        }));
      steps.push(step);
      if (job.kind === "run" && job.ready) {
        const probe = uniqueName(`${action}.ready`, taken);
        steps.push({ ...step, action: probe, kind: "ready", probes: action, label: `${label} ready` });
        ends.push(probe);
      } else ends.push(action);
    }
    actionsOf.set(job.name, ends);
  }
  const event = request.event ?? { ...MANUAL_EVENT };
  const key = pipeline.concurrency?.key
    ? renderTemplate(pipeline.concurrency.key, { inputs, event }).trim()
    : pipeline.name;
  if (key === "") problems.push("`concurrency.key` is empty for these inputs");
  if (problems.length > 0) throw new PipelineInputError(problems);
  return {
    key,
    priority: pipeline.priority ?? 0,
    pipeline,
    inputs,
    tiers,
    event,
    steps,
    excluded: [...excluded].map(([job, reason]) => ({ job, reason })),
  };
}

/** Jobs whose outputs a job's expressions read (`needs.<job>.outputs...`), anywhere in it (a loop: in its jobs). */
function neededOutputs(job: Job): Set<string> {
  if (job.kind === "loop") return new Set(job.jobs.flatMap((inner) => [...neededOutputs(inner)]));
  const roots: Expr[] = [];
  const templates: (Template | undefined)[] = [job.workingDirectory, ...Object.values(job.env)];
  if (job.kind === "run" || job.kind === "poll") templates.push(job.run);
  if (job.kind === "run") templates.push(job.undo, job.ready?.run);
  if (job.kind === "uses")
    for (const given of Object.values(job.with))
      if (typeof given.value === "object") templates.push(given.value);
  for (const template of templates)
    for (const part of template?.parts ?? []) if (part.kind === "expr") roots.push(part.expr);
  if (job.if) roots.push(job.if.expr);
  const names = new Set<string>();
  const visit = (expr: Expr): void => {
    if (expr.kind === "ref" && expr.root === "needs" && expr.path[0] !== undefined) names.add(expr.path[0]);
    else if (expr.kind === "not") visit(expr.operand);
    else if (expr.kind === "call") visit(expr.arg);
    else if (expr.kind === "binary") {
      visit(expr.left);
      visit(expr.right);
    }
  };
  for (const expr of roots) visit(expr);
  return names;
}

function resolveInputs(
  declared: Record<string, Input>,
  given: RunRequest["inputs"],
  problems: string[],
): Record<string, Value> {
  const values: Record<string, Value> = {};
  for (const name of Object.keys(given)) {
    if (!Object.hasOwn(declared, name)) {
      const hint = closest(name, Object.keys(declared));
      problems.push(`unknown input "${name}"${hint ? `; did you mean "${hint}"?` : ""}`);
    }
  }
  for (const input of Object.values(declared)) {
    const raw = Object.hasOwn(given, input.name) ? given[input.name] : input.default;
    if (raw === undefined) {
      problems.push(`input "${input.name}" is required: give it with --input ${input.name}=VALUE`);
      continue;
    }
    const bytes = typeof raw === "string" ? Buffer.byteLength(raw, "utf8") : 0;
    if (bytes > MAX_INPUT_BYTES.max) {
      problems.push(
        `input "${input.name}" is ${bytes.toLocaleString("en-US")} bytes, ${overLimit(MAX_INPUT_BYTES)}`,
      );
      continue;
    }
    const typed = coerce(input, raw);
    if ("problem" in typed) problems.push(typed.problem);
    else values[input.name] = typed.value;
  }
  return values;
}

/** The value of an input as its declared type, or what is wrong with it. */
export function coerce(input: Input, raw: string | number | boolean): { value: Value } | { problem: string } {
  const text = String(raw);
  const wrong = (what: string) => ({ problem: `input "${input.name}" must be ${what}, got "${text}"` });
  switch (input.type) {
    case "boolean":
      if (raw === true || text === "true") return { value: true };
      if (raw === false || text === "false") return { value: false };
      return wrong("true or false");
    case "number": {
      const n = typeof raw === "number" ? raw : Number(text);
      return text.trim() !== "" && Number.isFinite(n) ? { value: n } : wrong("a number");
    }
    case "choice":
      return input.options?.includes(text) ? { value: text } : wrong(`one of ${listOr(input.options ?? [])}`);
    default:
      return { value: text };
  }
}

/** The legs of a job's matrix: the product of its axes, minus excluded ones, plus included ones that apply. */
export function expandMatrix(job: Job, inputs: Record<string, Value>): Record<string, MatrixValue>[] {
  const matrix = job.matrix;
  if (!matrix) return [];
  let legs: Record<string, MatrixValue>[] = [{}];
  const axes = Object.entries(matrix.axes);
  for (const [axis, values] of axes) {
    legs = legs.flatMap((leg) => values.map((value) => ({ ...leg, [axis]: value })));
  }
  if (axes.length === 0) legs = [];
  const matches = (leg: Record<string, MatrixValue>, pattern: Record<string, MatrixValue>) =>
    Object.entries(pattern).every(([axis, value]) => leg[axis] === value);
  legs = legs.filter((leg) => !matrix.exclude.some((pattern) => matches(leg, pattern)));
  for (const include of matrix.include) {
    if (include.if && !evaluateCondition(include.if, { inputs })) continue;
    if (!legs.some((leg) => matches(leg, include.values) && matches(include.values, leg)))
      legs.push({ ...include.values });
  }
  return legs;
}

/** `linux/amd64` → `linux-amd64`: action names allow letters, digits, `_`, `-` and `.`. */
function legName(leg: Record<string, MatrixValue>): string {
  const text = Object.values(leg)
    .map((value) => String(value).replace(/[^A-Za-z0-9_-]+/g, "-"))
    .join(".");
  return text.replace(/^-+|-+$/g, "") || "leg";
}

function uniqueName(wanted: string, taken: Set<string>): string {
  let name = wanted;
  for (let n = 2; taken.has(name); n++) name = `${wanted}-${n}`;
  taken.add(name);
  return name;
}
