/** The normalized pipeline model: what a parsed, valid pipeline file means, with source positions. */
import type { OnFailure } from "../definition/saga.js";
import type { Position } from "../yaml-reader.js";

/** A value an expression can produce. */
export type Value = string | number | boolean | null;

/**
 * The contexts an expression can read. `secrets` is deliberately not one (see {@link Pipeline.secrets}).
 * `event` is what started the run (a push, a pull request, a comment, a schedule; `manual` by hand).
 * `loop` is the iteration a loop's jobs run in (`loop.iteration`, `loop.previous.<job>.outputs.<name>`).
 */
export type ContextRoot = "inputs" | "matrix" | "needs" | "outputs" | "env" | "event" | "loop";

/**
 * A parsed expression. `offset` is where the node starts in the string it was written in (the
 * `source` of its {@link Template} or {@link Condition}), so an error can point into the file.
 */
export type Expr =
  | { kind: "literal"; value: Value; offset: number }
  /** `needs.build.outputs.digest`: root `needs`, path `["build", "outputs", "digest"]`. */
  | { kind: "ref"; root: ContextRoot; path: string[]; offset: number; pathOffsets: number[] }
  | { kind: "not"; operand: Expr; offset: number }
  | { kind: "binary"; op: "==" | "!=" | "&&" | "||"; left: Expr; right: Expr; offset: number }
  /** `fromJSON(needs.plan.outputs.packages)`: the one function, reading a string as JSON. */
  | { kind: "call"; fn: "fromJSON"; arg: Expr; offset: number };

export type TemplatePart =
  | { kind: "text"; text: string }
  /** `source` is the text between `${{` and `}}`, starting at `offset` in the template and `pos` in the file. */
  | { kind: "expr"; expr: Expr; source: string; offset: number; pos: Position };

/** A string that may hold `${{ ... }}` expressions, kept parsed; render it with `renderTemplate`. */
export interface Template {
  /** The string as written (after YAML unquoting and block folding). */
  source: string;
  parts: TemplatePart[];
  /** Where the string starts in the file. */
  pos: Position;
}

/** An `if:` condition: `${{ expr }}`, a bare `expr`, or a YAML boolean. */
export interface Condition {
  /** The condition as written (a YAML boolean as `true`/`false`). */
  source: string;
  expr: Expr;
  /** Where `source` starts in the file. */
  pos: Position;
}

export type InputType = "string" | "boolean" | "number" | "choice";

export interface Input {
  name: string;
  /**
   * `string` unless given; a boolean or number `default` without `type` makes a `boolean` or
   * `number` input.
   */
  type: InputType;
  /** Absent: the input is required. */
  default?: string | number | boolean;
  /** True when there is no default: a run must give a value. */
  required: boolean;
  description?: string;
  /** The allowed values of a `choice` input. */
  options?: string[];
  pos: Position;
}

/**
 * Where a secret's value comes from when a run starts. Each secret is put in every step's
 * environment under its name; expressions can't read secrets, so they never land in a command
 * line (visible in process lists and logs).
 */
export type SecretSource =
  | { kind: "env"; name: string }
  /** `path` as written: relative paths are relative to the pipeline file's directory. */
  | { kind: "file"; path: string };

export interface Secret {
  name: string;
  source: SecretSource;
  pos: Position;
}

export type MatrixValue = string | number | boolean;

/** A matrix leg added by `include`, which may run only when `if` (reading inputs only) holds. */
export interface MatrixInclude {
  values: Record<string, MatrixValue>;
  if?: Condition;
  pos: Position;
}

/**
 * A job's matrix: the cartesian product of `axes` (in file order), minus every leg matching an
 * `exclude` entry (which may name some of the axes), plus `include` legs (which name every axis).
 */
export interface Matrix {
  axes: Record<string, MatrixValue[]>;
  exclude: Array<Record<string, MatrixValue>>;
  include: MatrixInclude[];
}

/** An expression whose value is known only at run time: `fromJSON(needs.plan.outputs.packages)`. */
export interface MatrixExpr {
  expr: Expr;
  /** As written between `${{` and `}}`, for messages. */
  source: string;
  pos: Position;
}

/**
 * A matrix decided at run time, when the job's needs are done: the whole of it from one expression
 * (`from`: a JSON list of legs or an object of axes), or axes of which some come from an expression.
 * Its legs run as steps of their own (`build#1.build`); see runtime-matrix.ts.
 */
export interface RunTimeMatrix {
  from?: MatrixExpr;
  axes: Record<string, MatrixValue[] | MatrixExpr>;
  exclude: Array<Record<string, MatrixValue>>;
  include: Array<Record<string, MatrixValue>>;
}

/** Requirements a job declares for admission (a later issue): sizes in bytes. */
export interface Resources {
  /** `auto`: admission estimates it (e.g. from the job's peak in earlier runs). */
  memoryBytes?: number | "auto";
  cpu?: number;
  diskBytes?: number;
  /** Names of exclusive locks the job holds while it runs. */
  locks: string[];
}

/** How a deployed job proves it is up before it counts as done. */
export interface ReadyCheck {
  /** Exit 0: ready; exit 75: not ready yet; anything else: a failure seen. */
  run: Template;
  /** `every`; 2 s when not given. */
  everyMs: number;
  /** `timeout`; 5 min when not given. */
  timeoutMs: number;
  /**
   * Fail at once when this many failures are seen within `withinMs`. Absent: the first failure
   * seen fails the job (waiting out the timeout on a crash loop is what this check is for).
   */
  crashLoop?: { failures: number; withinMs: number };
}

export type JobKind = "run" | "wait" | "poll" | "loop" | "uses";

interface JobBase {
  name: string;
  /** Where the job's name is in the file. */
  pos: Position;
  /** Direct dependencies, by job name, in file order. */
  needs: string[];
  if?: Condition;
  env: Record<string, Template>;
  /** Relative to the pipeline file's directory. */
  workingDirectory?: Template;
  /** Runs only when the run asks for this tier (`--tier NAME`). */
  tier?: string;
  matrix?: Matrix;
  /** Instead of `matrix`, when `matrix:` reads `${{ fromJSON(...) }}`. */
  runTimeMatrix?: RunTimeMatrix;
  resources?: Resources;
}

/** Runs a shell command; `retries` more attempts after a failure, each limited by `timeoutMs`. */
export interface RunJob extends JobBase {
  kind: "run";
  run: Template;
  /** Undoes the job when a later failure or a cancel rolls the pipeline back. Can read `outputs`. */
  undo?: Template;
  /**
   * Run after an attempt of `run` that started but did not complete (failed, timed out, cancelled,
   * interrupted by a crash), before any undo. Cannot read `outputs`.
   */
  cleanup?: Template;
  ready?: ReadyCheck;
  retries: number;
  timeoutMs?: number;
}

/** Waits for a named signal; nothing is held while it waits. */
export interface WaitJob extends JobBase {
  kind: "wait";
  signal: string;
  timeoutMs?: number;
}

/** Runs a check every `everyMs` until it exits 0 (exit 75: not yet; anything else: a failure). */
export interface PollJob extends JobBase {
  kind: "poll";
  run: Template;
  /** `every`; 30 s when not given. */
  everyMs: number;
  /** For the whole poll, from when it began. */
  timeoutMs?: number;
  /** How many failed checks (over the whole poll) are tolerated. */
  retries: number;
}

/**
 * Runs its `jobs` (the body) again and again, each iteration's jobs as steps of their own
 * (`attempts#2.fix`), until `until` holds after an iteration or `max` iterations ran. Its outputs are
 * the last iteration's jobs' outputs, merged in file order (a later job's win), like a matrix job's legs.
 */
export interface LoopJob extends JobBase {
  kind: "loop";
  loop: LoopSettings;
  /** The body: plain `run`, `wait` and `poll` jobs (no loop, matrix, tier or `ready` inside), in file order. */
  jobs: BodyJob[];
}

/** A job of a loop's body. */
export type BodyJob = RunJob | WaitJob | PollJob;

export interface LoopSettings {
  /** Iterations at most; after the last, the loop fails: "gave up after N iterations: <reason>". */
  max: number;
  /** Read after each iteration, over that iteration's jobs (`needs.<job>...`) and `loop.iteration`. */
  until: Condition;
  /** Why another iteration is needed, rendered like `until` (unset values read as empty). */
  reason?: Template;
  /** Where `loop:` is in the file. */
  pos: Position;
}

/** A value given to a child pipeline's input in `with:`: a string (which may hold expressions), a number or a boolean. */
export interface WithValue {
  value: Template | number | boolean;
  /** Where the value is in the file, and where its name is. */
  pos: Position;
  keyPos: Position;
}

/**
 * Runs another pipeline file as a child run of its own (`uses: ./other.yml`, relative to this file)
 * with `with:` as its inputs, and waits durably for its end. Its outputs are the child pipeline's
 * top-level `outputs:`; its failure is this job's failure; undoing this job undoes the child run.
 */
export interface UsesJob extends JobBase {
  kind: "uses";
  /** As written. */
  uses: string;
  /** Where the path is in the file. */
  usesPos: Position;
  with: Record<string, WithValue>;
  /** Fail (and cancel the child run) when it has not ended this long after the job began. */
  timeoutMs?: number;
}

export type Job = RunJob | WaitJob | PollJob | LoopJob | UsesJob;

/**
 * What happens when a job fails for good. `undo` (the default, whether or not any job has an
 * `undo`): run the `undo` of every completed job, in reverse dependency order. `hold`: stop and
 * leave everything as it is, for someone to inspect and then resume or cancel.
 */
export type { OnFailure };

/**
 * At most `limit` runs of one concurrency key at once (the key defaults to the pipeline's name; an
 * expression over `inputs` makes it e.g. the recipe). A newer run queues, FIFO, or with
 * `cancelInProgress` cancels the older ones (they run their undos) and starts once they have ended.
 */
export interface Concurrency {
  /** Rendered with the run's inputs; absent: the pipeline's name. */
  key?: Template;
  limit: number;
  cancelInProgress: boolean;
  pos: Position;
}

/** `push:`: runs for new commits on matching branches or tags. */
export interface PushTrigger {
  /** Branch globs (`main`, `release/**`); absent: every branch unless `tags` alone is given. */
  branches?: string[];
  branchesIgnore?: string[];
  /** Tag globs; absent: no tags unless `branches` is absent too. */
  tags?: string[];
  /** Several commits pushed between two looks: run the newest only (`latest`, default) or `each`. */
  commits: "latest" | "each";
  pos: Position;
}

export type PullRequestAction = "opened" | "synchronize" | "reopened";

/** `pull_request:`: runs for pull requests into matching branches. */
export interface PullRequestTrigger {
  /** Default: opened, synchronize, reopened. */
  types: PullRequestAction[];
  /** Globs of the target (base) branch; absent: any. */
  branches?: string[];
  pos: Position;
}

/** What a comment command's flag asks for: tiers to include and inputs to set. */
export interface CommandFlag {
  tiers: string[];
  inputs: Record<string, string | number | boolean>;
}

/** `comment:`: a pull request comment starting with `command` (`!testme --extra --input k=v`). */
export interface CommentTrigger {
  command: string;
  /** By flag as written (`--extra`). `--input k=v` is always understood. */
  flags: Record<string, CommandFlag>;
  pos: Position;
}

/** `schedule:`: one entry per cron line, in its time zone. */
export interface ScheduleTrigger {
  cron: string;
  /** IANA name; default UTC. */
  timeZone: string;
  pos: Position;
}

/** `on:`: what starts runs of the pipeline besides (or instead of) a person. */
export interface Triggers {
  push?: PushTrigger;
  pullRequest?: PullRequestTrigger;
  comment?: CommentTrigger;
  schedule: ScheduleTrigger[];
  /** Runs may be started by hand (`slipway run`/`submit`, `POST /runs`). */
  manual: boolean;
  pos: Position;
}

export interface Pipeline {
  /** The file name problems and positions refer to. */
  file: string;
  /** `name:`, or the file's base name without `.yml`/`.yaml`. */
  name: string;
  /** `run-name:`: the run name, rendered from `inputs` and `event` when the run starts. */
  runName?: Template;
  /** `on:`; absent: runs start by hand only. */
  on?: Triggers;
  inputs: Record<string, Input>;
  env: Record<string, Template>;
  secrets: Record<string, Secret>;
  onFailure: OnFailure;
  concurrency?: Concurrency;
  /** Of every job of its runs when they wait for capacity: higher goes first. Default 0. */
  priority?: number;
  /** In file order; names are unique. */
  jobs: Job[];
  /**
   * `outputs:`: what a run of this pipeline gives the job that `uses:` it, each rendered from its
   * jobs' outputs (`needs.<job>.outputs.<name>`) when the run has completed. Absent: none.
   */
  outputs?: Record<string, Template>;
}
