/**
 * What a pipeline step does when the engine runs it: decide whether it is skipped, render its
 * command, run it as a child process (logged, masked, killable), probe readiness, return its outputs.
 */
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { ActionContext, PollResult } from "../definition/types.js";
import { SlipwayError } from "../errors.js";
import type { Grant } from "../scheduler/admission.js";
import { masker, removeFile, runShell, type ShellResult } from "../shell/process.js";
import { attemptFiles, type LogPhase } from "../shell/run-directory.js";
import { type ExpressionContext, evaluateCondition, renderTemplate } from "./expression-eval.js";
import { inheritAllButCredentials, inheritOnly, SERVER_JOB_ENV } from "./job-env.js";
import { loopContext, loopOutputs, loopSkipped } from "./loops.js";

const UNTRUSTED_INHERIT = inheritOnly(SERVER_JOB_ENV);

import type { Pipeline, ReadyCheck, RunJob, Template, Value } from "./model.js";
import { type Step, stepLabel } from "./plan.js";
import type { StepResult } from "./run-spec.js";
import type { StepContext } from "./step-context.js";

/** A job ended badly: a non-zero exit, a timeout, a crash loop. The message is what an operator reads first. */
export class JobError extends SlipwayError {
  constructor(message: string) {
    super("job_failed", message);
    this.name = "JobError";
  }
}

/** Default time limit of a `run`, as in GitHub Actions: six hours. */
const DEFAULT_TIMEOUT_MS = 6 * 3_600_000;
/** Exit code of a check that says "not yet" (EX_TEMPFAIL). */
export const NOT_YET = 75;

type Values = Record<string, unknown>;

export async function runJob(
  context: StepContext,
  step: Step,
  input: Values,
  ctx: ActionContext,
): Promise<Record<string, StepResult>> {
  const job = step.job as RunJob;
  const skip = skipReason(context, step, input);
  if (skip !== undefined) {
    ctx.progress(`skipped: ${skip}`, { skipped: true });
    return { [step.action]: skipped(skip) };
  }
  const scope = expressionContext(context, step, input);
  const env = environment(context, step, scope, ctx);
  const grant = await admit(context, step, ctx);
  let keep = false;
  // The cleanup that follows a failed command needs what the command was admitted with (the swarm a
  // half-made deploy is on): it is kept for it, so no other job takes it in between.
  const keepForCleanup = (error: unknown) => {
    if (grant && job.cleanup) {
      context.runtime.resources!.hold(ctx.runId, ctx.action, grant);
      keep = true;
    }
    return error;
  };
  try {
    const result = await shell(
      context,
      step,
      ctx,
      "run",
      job.run,
      scope,
      env,
      job.timeoutMs ?? DEFAULT_TIMEOUT_MS,
    ).catch((error: unknown) => {
      throw keepForCleanup(error);
    });
    context.runtime.resources?.recordPeak(context.plan.pipeline.name, job.name, result.peakRssBytes);
    if (result.outcome !== "exited" || result.exitCode !== 0)
      throw keepForCleanup(new JobError(failure("run", result)));
    // A deploy keeps what it was admitted with (its lock, say) until its probe says it is up.
    if (grant && job.ready) {
      context.runtime.resources!.hold(ctx.runId, ctx.action, grant);
      keep = true;
    }
    const admitted = grant?.need.memoryBytes;
    return {
      [step.action]: {
        status: "success",
        outputs: result.outputs,
        peakRssBytes: result.peakRssBytes,
        ...(result.spawnedAt !== undefined && { launchedAt: result.spawnedAt }),
        ...(admitted !== undefined && admitted > 0 && { admittedMemoryBytes: admitted }),
        ...(grant && grant.waitedMs > 0 && { queuedMs: grant.waitedMs }),
      },
    };
  } finally {
    if (!keep) grant?.release();
  }
}

/**
 * The readiness probe of a job, as a step after it: the job's `run` has completed (and is undone by
 * the rollback like any completed job, also when the probe fails or the run is cancelled while it
 * probes), and a crash while probing repeats only the probe. Passes the job's outputs on.
 */
export async function readyJob(
  context: StepContext,
  step: Step,
  input: Values,
  ctx: ActionContext,
): Promise<Record<string, StepResult>> {
  const job = step.job as RunJob;
  const ran = input[step.probes!] as StepResult;
  if (ran.status === "skipped") return { [step.action]: ran };
  const scope: ExpressionContext = { ...expressionContext(context, step, input), outputs: ran.outputs };
  const env = environment(context, step, scope, ctx);
  // The grant its job was admitted with; after a restart the job ran elsewhere: admit the probe anew.
  const grant = await heldOrAdmit(context, step, ctx, step.probes!);
  try {
    await probe(context, step, job.ready!, scope, env, ctx);
  } catch (error) {
    // The rollback that follows undoes the job: its teardown keeps the lock (the swarm) it deployed
    // with, so the next deploy can't start on a half-removed stack.
    if (grant && job.undo) context.runtime.resources!.hold(ctx.runId, step.probes!, grant);
    else grant?.release();
    throw error;
  }
  grant?.release();
  return { [step.action]: { status: "success", outputs: ran.outputs } };
}

export async function undoJob(
  context: StepContext,
  step: Step,
  input: Values,
  output: Values,
  ctx: ActionContext,
): Promise<void> {
  const job = step.job as RunJob;
  const done = output[step.action] as StepResult | undefined;
  if (!job.undo || !done || done.status === "skipped") return;
  const scope: ExpressionContext = { ...expressionContext(context, step, input), outputs: done.outputs };
  const env = environment(context, step, scope, ctx, "undo");
  // An undo needs what its job needed (tearing a stack down takes the swarm lock too): the grant kept
  // from a failed probe, or a new one.
  const grant = await heldOrAdmit(context, step, ctx, ctx.action);
  try {
    const result = await shell(context, step, ctx, "undo", job.undo, scope, env, DEFAULT_TIMEOUT_MS);
    if (result.outcome !== "exited" || result.exitCode !== 0) throw new JobError(failure("undo", result));
  } finally {
    grant?.release();
  }
}

/**
 * The cleanup after an attempt of the job's `run` that started but did not complete (the engine
 * calls it with that attempt's number). Nothing to do when its command never started (the job was
 * cancelled while it waited for admission, say): an attempt's log and pid files exist from its spawn.
 */
export async function cleanupJob(
  context: StepContext,
  step: Step,
  input: Values,
  ctx: ActionContext,
): Promise<void> {
  const job = step.job as RunJob;
  if (!job.cleanup) return;
  const ran = attemptFiles(context.runtime.dataDir, ctx.runId, ctx.action, "run", ctx.attempt);
  if (!existsSync(ran.log) && !existsSync(ran.pid)) {
    ctx.progress("nothing to clean up: the command had not started", { phase: "cleanup" });
    return;
  }
  const scope = expressionContext(context, step, input);
  const env = environment(context, step, scope, ctx, "cleanup");
  const grant = await heldOrAdmit(context, step, ctx, ctx.action);
  try {
    const result = await shell(context, step, ctx, "cleanup", job.cleanup, scope, env, DEFAULT_TIMEOUT_MS);
    if (result.outcome !== "exited" || result.exitCode !== 0) throw new JobError(failure("cleanup", result));
  } finally {
    grant?.release();
  }
}

/** One check of a `poll` job: exit 0 done (its outputs are the job's), 75 not yet, anything else a failure. */
export async function pollCheck(
  context: StepContext,
  step: Step,
  input: Values,
  ctx: ActionContext,
): Promise<PollResult<Record<string, StepResult>>> {
  const job = step.job;
  if (job.kind !== "poll") throw new Error(`job ${job.name} is not a poll`);
  const skip = skipReason(context, step, input);
  if (skip !== undefined) return { done: true, output: { [step.action]: skipped(skip) } };
  const scope = expressionContext(context, step, input);
  const env = environment(context, step, scope, ctx, "poll");
  const result = await shell(context, step, ctx, "poll", job.run, scope, env, job.everyMs * 10);
  if (result.outcome === "exited" && result.exitCode === 0)
    return { done: true, output: { [step.action]: { status: "success", outputs: result.outputs } } };
  if (result.outcome === "exited" && result.exitCode === NOT_YET) {
    const message = result.tail.at(-1);
    return message === undefined ? { done: false } : { done: false, message };
  }
  throw new JobError(failure("check", result));
}

/** Waits for admission when the runtime has it and the job declares resources. */
async function admit(context: StepContext, step: Step, ctx: ActionContext): Promise<Grant | undefined> {
  const resources = context.runtime.resources;
  if (!resources || !step.job.resources) return undefined;
  const pipeline = context.plan.pipeline.name;
  // A loop's job is admitted (and explained in the queue) as the step of its iteration, `attempts#2.build`.
  const own = ctx.action === step.action ? step : { ...step, action: ctx.action, label: ctx.action };
  return resources.admit(ctx, pipeline, own, context.plan.key, context.plan.priority);
}

/** The grant kept for `action` by an earlier step in this process, or (after a restart) a new one. */
async function heldOrAdmit(
  context: StepContext,
  step: Step,
  ctx: ActionContext,
  action: string,
): Promise<Grant | undefined> {
  return context.runtime.resources?.take(ctx.runId, action) ?? (await admit(context, step, ctx));
}

/** A `wait` job's output when it is skipped instead of waiting, else undefined. */
export function waitSkip(
  context: StepContext,
  step: Step,
  input: Values,
): Record<string, StepResult> | undefined {
  const skip = skipReason(context, step, input);
  return skip === undefined ? undefined : { [step.action]: skipped(skip) };
}

function skipped(reason: string): StepResult {
  return { status: "skipped", outputs: {}, reason };
}

/** Why the step does not run: a job it needs was skipped, or its `if` is false. */
function skipReason(context: StepContext, step: Step, input: Values): string | undefined {
  const skip = skippedNeed(context, step, input);
  if (skip !== undefined) return skip;
  const condition = step.job.if;
  if (condition && !evaluateCondition(condition, expressionContext(context, step, input)))
    return `if: ${condition.source} is false`;
  return undefined;
}

/** Why the step does not run because of a job it needs: that job was skipped, or had no legs. */
export function skippedNeed(context: StepContext, step: Step, input: Values): string | undefined {
  for (const action of step.needs) {
    const need = input[action];
    const label = stepLabel(context.plan, action);
    if (Array.isArray(need) && need.length === 0) return `needs ${label}, whose matrix has no legs`;
    const needed = context.plan.steps.find((s) => s.action === action);
    // A loop whose jobs were all skipped counts as skipped.
    const skipped = needed?.body
      ? loopSkipped(needed, need as Values | undefined)
      : resultsOf(need, needed?.job.name ?? action).some((r) => r.status === "skipped");
    if (skipped) return `needs ${label}, which was skipped`;
  }
  return undefined;
}

/** What expressions in this step read: inputs, its matrix leg, the outputs of the jobs it needs, env. */
function expressionContext(context: StepContext, step: Step, input: Values): ExpressionContext {
  const scope = needsContext(context, step, input);
  if (step.matrix) scope.matrix = step.matrix;
  const loop = loopContext(input);
  if (loop) scope.loop = loop;
  scope.env = renderEnv(context.plan.pipeline, step, scope);
  return scope;
}

/**
 * What a step reads besides its leg, loop and env (all a matrix decided at run time reads): inputs,
 * the event, the outputs of the jobs it needs.
 */
export function needsContext(context: StepContext, step: Step, input: Values): ExpressionContext {
  const needs: Record<string, { outputs: Record<string, string> }> = {};
  for (const action of step.needs) {
    // A job of a loop's body needs others of its iteration, which are not among the plan's steps.
    const needed = context.plan.steps.find((s) => s.action === action);
    const job = needed?.job.name ?? action;
    const results = needed?.body
      ? [{ outputs: loopOutputs(needed, input[action] as Values | undefined) }]
      : resultsOf(input[action], job);
    // Legs of one matrix job share its name: their outputs merge, later legs winning (as in GitHub).
    for (const result of results) needs[job] = { outputs: { ...needs[job]?.outputs, ...result.outputs } };
    needs[job] ??= { outputs: {} };
  }
  return { inputs: context.plan.inputs, needs, env: {}, event: context.plan.event };
}

/**
 * The results a needed step left: one, or for a matrix decided at run time (its value is the list
 * of its legs' values, each leg's result under the job's name), one per leg, in leg order.
 */
export function resultsOf(value: unknown, job: string): StepResult[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) return [value as StepResult];
  return value.flatMap((leg) => {
    const result = (leg as Values | null)?.[job] as StepResult | undefined;
    return result ? [result] : [];
  });
}

/** The pipeline's `env`, then the job's, rendered in order (a later one may read an earlier one). */
function renderEnv(pipeline: Pipeline, step: Step, scope: ExpressionContext): Record<string, string> {
  const env: Record<string, string> = {};
  for (const templates of [pipeline.env, step.job.env]) {
    for (const [name, template] of Object.entries(templates))
      env[name] = renderTemplate(template, { ...scope, env });
  }
  return env;
}

/**
 * The child's environment: what it inherits of this process's (job-env.ts: never Slipway's
 * credentials), then the pipeline's and job's env, inputs, secrets, and the run's identity.
 */
function environment(
  context: StepContext,
  step: Step,
  scope: ExpressionContext,
  ctx: ActionContext,
  phase: LogPhase = "run",
): { vars: Record<string, string>; mask: string[] } {
  const vars: Record<string, string> = {};
  // Untrusted code (a fork's pull request) gets the basics only, whatever `job_env:` adds: no
  // variable that might hold a source's credentials.
  const inherit = context.untrusted
    ? UNTRUSTED_INHERIT
    : (context.runtime.inherit ?? inheritAllButCredentials);
  for (const [name, value] of Object.entries(context.runtime.env ?? process.env))
    if (value !== undefined && inherit(name)) vars[name] = value;
  Object.assign(vars, scope.env);
  for (const [name, value] of Object.entries(context.plan.inputs))
    vars[`INPUT_${name.toUpperCase().replaceAll("-", "_")}`] = formatInput(value);
  for (const [axis, value] of Object.entries(step.matrix ?? {}))
    vars[`MATRIX_${axis.toUpperCase().replaceAll("-", "_")}`] = String(value);
  const mask: string[] = [];
  for (const [name, value] of Object.entries(readSecrets(context))) {
    vars[name] = value;
    mask.push(value);
  }
  Object.assign(vars, {
    SLIPWAY: "1",
    SLIPWAY_RUN_ID: ctx.runId,
    SLIPWAY_RUN_NAME: ctx.runName ?? "",
    SLIPWAY_PIPELINE: context.plan.pipeline.name,
    SLIPWAY_JOB: step.job.name,
    SLIPWAY_STEP: ctx.action,
    SLIPWAY_ATTEMPT: String(ctx.attempt),
    SLIPWAY_IDEMPOTENCY_KEY: ctx.idempotencyKey,
    SLIPWAY_WORKSPACE: context.workspace ?? "",
    SLIPWAY_EVENT: String(context.plan.event.kind ?? "manual"),
    ...(typeof context.plan.event.sha === "string" && { SLIPWAY_SHA: context.plan.event.sha }),
  });
  // With tracing on: the span of this attempt (W3C Trace Context), so the tools a job runs join the run's trace.
  const traceparent = context.runtime.traceparent?.(ctx, phase);
  if (traceparent !== undefined) vars.TRACEPARENT = traceparent;
  return { vars, mask };
}

function formatInput(value: Value): string {
  return value === null ? "" : String(value);
}

/**
 * Secrets are read when a job starts, in the process that runs it, and never stored: a run resumed
 * elsewhere reads them from its own environment.
 */
function readSecrets(context: StepContext): Record<string, string> {
  const values: Record<string, string> = {};
  if (context.untrusted) return values;
  const env = context.runtime.env ?? process.env;
  for (const secret of Object.values(context.plan.pipeline.secrets)) {
    if (secret.source.kind === "env") {
      const value = env[secret.source.name];
      if (value === undefined)
        throw new JobError(`secret ${secret.name}: environment variable ${secret.source.name} is not set`);
      values[secret.name] = value;
    } else {
      const path = resolve(context.dir, secret.source.path);
      try {
        values[secret.name] = readFileSync(path, "utf8").replace(/\r?\n$/, "");
      } catch (error) {
        throw new JobError(`secret ${secret.name}: cannot read ${path}: ${(error as Error).message}`);
      }
    }
  }
  return values;
}

async function shell(
  context: StepContext,
  step: Step,
  ctx: ActionContext,
  phase: LogPhase,
  template: Template,
  scope: ExpressionContext,
  env: { vars: Record<string, string>; mask: string[] },
  timeoutMs: number,
): Promise<ShellResult> {
  // By the step's own name: a loop's job runs once per iteration (`attempts#2.fix`).
  const files = attemptFiles(context.runtime.dataDir, ctx.runId, ctx.action, phase, ctx.attempt);
  const base = context.workspace ?? context.dir;
  const cwd = step.job.workingDirectory
    ? resolve(base, renderTemplate(step.job.workingDirectory, scope))
    : base;
  try {
    const result = await runShell({
      script: renderTemplate(template, scope),
      cwd,
      env: env.vars,
      logFile: files.log,
      outputFile: files.outputs,
      mask: env.mask,
      pidFile: files.pid,
      signal: ctx.signal,
      timeoutMs,
      graceMs: context.runtime.killGraceMs ?? 5_000,
      launcher: context.runtime.launcher,
      onLine: (stream, line) => ctx.progress(line, { stream, phase }),
    });
    // Outputs are stored, shown and rendered into later commands: a secret in one is masked like in the log.
    const mask = masker(env.mask);
    for (const [key, value] of Object.entries(result.outputs)) result.outputs[key] = mask(value);
    return result;
  } finally {
    // Parsed into the result: the raw file would keep unmasked values on disk for good.
    await removeFile(files.outputs);
  }
}

/**
 * After `run` succeeded, probe until ready. Failures seen are counted in a sliding window: as soon as
 * `crash_loop.failures` fall within `crash_loop.within`, the job fails with the probe's last output,
 * instead of waiting out the timeout (a service restarting every six seconds will never be ready).
 */
async function probe(
  context: StepContext,
  step: Step,
  ready: ReadyCheck,
  scope: ExpressionContext,
  env: { vars: Record<string, string>; mask: string[] },
  ctx: ActionContext,
): Promise<void> {
  const started = Date.now();
  const deadline = started + ready.timeoutMs;
  const failures: number[] = [];
  const threshold = ready.crashLoop?.failures ?? 1;
  const window = ready.crashLoop?.withinMs ?? Number.POSITIVE_INFINITY;
  let checks = 0;
  for (;;) {
    checks++;
    const remaining = deadline - Date.now();
    // Every check appends to the probe step's attempt log.
    const result = await shell(context, step, ctx, "run", ready.run, scope, env, Math.max(remaining, 1));
    if (ctx.signal.aborted) throw ctx.signal.reason;
    if (result.outcome === "exited" && result.exitCode === 0) {
      ctx.progress(`up after ${checks} checks`, { ready: true, ms: Date.now() - started });
      return;
    }
    const now = Date.now();
    if (!(result.outcome === "exited" && result.exitCode === NOT_YET)) {
      failures.push(now);
      while (failures.length > 0 && now - failures[0]! > window) failures.shift();
      if (failures.length >= threshold) {
        const what =
          threshold === 1
            ? "the readiness probe failed"
            : `crash loop: ${failures.length} probe failures within ${Math.round(window / 1000)}s`;
        throw new JobError(`${what} (${describeExit(result)}): ${lastOutput(result)}`);
      }
    }
    if (now + ready.everyMs > deadline)
      throw new JobError(
        `not ready after ${Math.round(ready.timeoutMs / 1000)}s (${checks} checks): ${lastOutput(result)}`,
      );
    await sleep(ready.everyMs, undefined, { signal: ctx.signal }).catch(() => {
      throw ctx.signal.reason;
    });
  }
}

function describeExit(result: ShellResult): string {
  if (result.outcome === "timeout") return "timed out";
  if (result.outcome === "aborted") return "stopped";
  return result.exitCode === null ? `killed by ${result.signal}` : `exit ${result.exitCode}`;
}

function lastOutput(result: ShellResult): string {
  const lines = result.tail.slice(-5);
  return lines.length === 0 ? "(no output)" : lines.join(" | ");
}

function failure(what: "run" | "undo" | "cleanup" | "check", result: ShellResult): string {
  const label = what === "run" ? "" : `${what} `;
  if (result.outcome === "timeout") return `${label}timed out: ${lastOutput(result)}`;
  if (result.outcome === "aborted") return `${label}stopped`;
  return `${label}failed (${describeExit(result)}): ${lastOutput(result)}`;
}
