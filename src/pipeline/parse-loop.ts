/**
 * Parsing a loop job: `loop:` (`max`, `until`, `reason`) and its `jobs:`, the body run again each
 * iteration. The body's jobs are parsed as any job, with what they may read widened by the loop
 * (`loop.iteration`, `loop.previous...`, what the loop job needs) and narrowed by this version's limits.
 */
import { isMap, isScalar } from "yaml";
import { NAME, NAME_RULE } from "../names.js";
import type { Entry, KeyHints } from "../yaml-reader.js";
import type { ExprScope } from "./expressions.js";
import { MAX_LOOP_ITERATIONS, overLimit } from "./limits.js";
import type { BodyJob, Condition, LoopJob, LoopSettings } from "./model.js";
import { type JobContext, type ParsedJob, parseJob, parseNeeds, reportCycles } from "./parse-jobs.js";
import { condition, template } from "./parse-values.js";

/** The keys of a loop job, and of its `loop:`; exported (through parse.ts) for the JSON Schema test. */
export const LOOP_JOB_KEYS = ["needs", "tier", "loop", "jobs"] as const;
export const LOOP_KEYS = ["max", "until", "reason"] as const;

const BODY_KEY = { message: "a loop job runs its `jobs`: put it on one of them", suggestion: "jobs" };
const LOOP_JOB_HINTS: KeyHints = {
  ...Object.fromEntries(
    [
      "run",
      "wait",
      "poll",
      "undo",
      "cleanup",
      "ready",
      "retries",
      "timeout",
      "resources",
      "working_directory",
    ].map((key) => [key, BODY_KEY]),
  ),
  env: { message: "set `env` on the loop's jobs (or the pipeline's)" },
  if: { message: "a loop job has no `if` in this version: put it on the loop's jobs" },
  matrix: { message: "a loop job has no `matrix` in this version" },
  steps: { message: "a loop's body is its `jobs:`", suggestion: "jobs" },
  max: { message: "`max` belongs in `loop:`, e.g. `loop: { max: 10, until: ... }`", suggestion: "loop" },
  until: { message: "`until` belongs in `loop:`", suggestion: "loop" },
};
const LOOP_HINTS: KeyHints = {
  while: { message: "write the condition that ends the loop as `until`", suggestion: "until" },
  max_iterations: { message: "write `max`", suggestion: "max" },
  message: { message: "why another iteration is needed is `reason`", suggestion: "reason" },
};

/** A job is a loop job when it says `loop:` or `jobs:`; it is then parsed by {@link parseLoopJob}. */
export function isLoopEntry(entry: Entry): boolean {
  return (
    isMap(entry.value) &&
    entry.value.items.some(
      (pair) => isScalar(pair.key) && (pair.key.value === "loop" || pair.key.value === "jobs"),
    )
  );
}

/** Parses one loop job; problems go to the reader. Undefined when its shape is unusable. */
export function parseLoopJob(ctx: JobContext, entry: Entry): ParsedJob | undefined {
  const r = ctx.reader;
  const name = entry.name;
  if (!NAME.test(name))
    r.report(
      entry.key,
      `job name \`${name}\` is not valid: use ${NAME_RULE} (\`.\` is kept for matrix legs)`,
    );
  const fields = new Map(
    r.map(entry.value, `loop job \`${name}\``, LOOP_JOB_KEYS, LOOP_JOB_HINTS).map((e) => [e.name, e]),
  );
  const needNodes = parseNeeds(ctx, name, fields.get("needs")?.value);
  const needs = [...needNodes.keys()];
  for (const key of ["loop", "jobs"] as const) {
    if (!fields.has(key)) {
      const example =
        key === "loop"
          ? // biome-ignore lint/suspicious/noTemplateCurlyInString: the message shows the pipeline syntax
            "`loop: { max: 10, until: ${{ needs.<job>.outputs.<name> == 'passed' }} }`"
          : "`jobs: { fix: { run: ... } }`";
      r.report(entry.key, `loop job \`${name}\` needs \`${key}\`, e.g. ${example}`);
    }
  }
  const jobs = fields.get("jobs");
  const body = jobs ? parseBody(ctx, name, needs, jobs) : [];
  const loop = parseSettings(ctx, name, fields.get("loop"), body);
  const tier = fields.get("tier");
  const tierName = tier && r.name(tier.value, `\`tier\` of job \`${name}\``, NAME, NAME_RULE);
  if (!loop) return undefined;
  const job: LoopJob = { kind: "loop", name, pos: r.at(entry.key), needs, env: {}, loop, jobs: body };
  if (tierName !== undefined) job.tier = tierName;
  return { job, needNodes };
}

/** The body: jobs parsed as any job, reading what the loop gives them; what this version can't loop is refused. */
function parseBody(ctx: JobContext, loop: string, needs: readonly string[], entry: Entry): BodyJob[] {
  const r = ctx.reader;
  const empty = r.isEmpty(entry.value) || (isMap(entry.value) && entry.value.items.length === 0);
  if (empty) {
    r.report(entry.key, `\`jobs\` of loop job \`${loop}\` is empty: a loop needs at least one job`);
    return [];
  }
  const entries = r.map(entry.value, `\`jobs\` of loop job \`${loop}\``);
  const names = entries.map((e) => e.name);
  const body: ParsedJob[] = [];
  const context: JobContext = {
    ...ctx,
    jobs: names,
    loop: { needs, outer: ctx.jobs.filter((job) => !names.includes(job)) },
  };
  for (const inner of entries) {
    // One name for one thing: `needs.<job>` never has to ask which of two jobs is meant.
    if (ctx.jobs.includes(inner.name)) {
      r.report(
        inner.key,
        `job \`${inner.name}\` of loop \`${loop}\` has the name of a job of the pipeline: give it another`,
      );
      continue;
    }
    if (isLoopEntry(inner)) {
      r.report(
        inner.key,
        `job \`${inner.name}\` is a loop inside loop \`${loop}\`: loops don't nest in this version`,
      );
      continue;
    }
    const parsed = parseJob(context, inner);
    if (!parsed || parsed.job.kind === "loop") continue;
    refuse(ctx, inner, loop, "matrix", "a loop's jobs have no `matrix` in this version");
    refuse(ctx, inner, loop, "tier", "set `tier` on the loop job");
    refuse(ctx, inner, loop, "uses", "a loop's jobs don't start child pipelines in this version");
    if (parsed.job.kind === "uses") continue;
    refuse(
      ctx,
      inner,
      loop,
      "ready",
      "a loop's jobs have no `ready` in this version: poll for it in a job of its own",
    );
    body.push(parsed);
  }
  reportCycles(r, body);
  return body.map((p) => p.job as BodyJob);
}

/** Reports `key` of a body job, which this version does not support there. */
function refuse(ctx: JobContext, entry: Entry, loop: string, key: string, why: string): void {
  if (!isMap(entry.value)) return;
  for (const pair of entry.value.items) {
    if (isScalar(pair.key) && pair.key.value === key)
      ctx.reader.report(pair.key, `\`${key}\` of job \`${entry.name}\` in loop \`${loop}\`: ${why}`);
  }
}

/** `loop: { max, until, reason }`. `until` and `reason` read the iteration's jobs and `loop.iteration`. */
function parseSettings(
  ctx: JobContext,
  loop: string,
  entry: Entry | undefined,
  body: readonly BodyJob[],
): LoopSettings | undefined {
  if (!entry) return undefined;
  const r = ctx.reader;
  const label = (key: string) => `\`loop.${key}\` of job \`${loop}\``;
  const fields = new Map(
    r.map(entry.value, `\`loop\` of job \`${loop}\``, LOOP_KEYS, LOOP_HINTS).map((e) => [e.name, e]),
  );
  if (!isMap(entry.value)) return undefined;
  const names = body.map((job) => job.name);
  const only =
    "`until` and `reason` read this iteration's jobs (`needs.<job>.outputs.<name>`) and `loop.iteration`";
  const scope: ExprScope = {
    roots: { needs: true, loop: true, inputs: only, matrix: only, env: only, outputs: only, event: only },
    inputs: ctx.inputs,
    needs: names,
    jobs: [...names, ...ctx.jobs],
    env: [],
    job: loop,
    loopJobs: names,
  };
  const maxEntry = fields.get("max");
  let max: number | undefined;
  if (!maxEntry)
    r.report(entry.key, `${label("max")} is missing: how many iterations at most, e.g. \`max: 10\``);
  else {
    max = r.integer(maxEntry.value, label("max"), 1);
    if (max !== undefined && max > MAX_LOOP_ITERATIONS.max) {
      r.report(maxEntry.value, `${label("max")} is ${max}, ${overLimit(MAX_LOOP_ITERATIONS)}`);
      max = undefined;
    }
  }
  const untilEntry = fields.get("until");
  let until: Condition | undefined;
  if (!untilEntry)
    r.report(
      entry.key,
      `${label("until")} is missing: when the loop is done, e.g. \`until: \${{ needs.<job>.outputs.<name> == 'passed' }}\``,
    );
  else {
    until = condition(r, untilEntry.value, label("until"), scope);
    for (const ref of previousRefs(until))
      r.report(
        untilEntry.value,
        `${label("until")} reads this iteration's jobs: write \`needs.${ref}...\`, not \`loop.previous.${ref}...\``,
      );
  }
  const reasonEntry = fields.get("reason");
  const reason = reasonEntry && template(r, reasonEntry.value, label("reason"), scope);
  if (max === undefined || until === undefined) return undefined;
  const settings: LoopSettings = { max, until, pos: r.at(entry.key) };
  if (reason) settings.reason = reason;
  return settings;
}

/** Jobs `until` names as `loop.previous.<job>`: the previous iteration is not what it should judge. */
function previousRefs(until: Condition | undefined): string[] {
  const out: string[] = [];
  const visit = (expr: Condition["expr"]): void => {
    if (expr.kind === "ref" && expr.root === "loop" && expr.path[0] === "previous" && expr.path[1])
      out.push(expr.path[1]);
    else if (expr.kind === "not") visit(expr.operand);
    else if (expr.kind === "binary") {
      visit(expr.left);
      visit(expr.right);
    }
  };
  if (until) visit(until.expr);
  return out;
}
