/**
 * Defining sagas: a typed builder whose actions declare what they read and produce. The dependency
 * graph follows from the data flow; `build()` rejects any inconsistency, naming the actions involved.
 */
import { z } from "zod";
import { SagaDefinitionError } from "../errors.js";
import type { Json } from "../json.js";
import { type ChildSpec, childFields, childProblems } from "./child.js";
import { findCycle } from "./graph.js";
import {
  type ActionContext,
  type ActionDefinition,
  type GroupDefinition,
  type PollResult,
  type RetryPolicy,
  type RunResult,
  SCOPE_VALUES,
  type Shape,
  type ValuesOf,
} from "./types.js";

/** Makes a produced name that is already available a compile error (two producers). */
type Fresh<P extends Shape, V> = P & { [K in keyof P & keyof V]: never };

/** An action's one whole output value (its `output` schema), or none. */
export type Output = z.ZodType | undefined;
/** What a body returns: its named values, or with `output` the one value. */
type Returns<P extends Shape, O extends Output> = O extends z.ZodType ? z.output<O> : RunResult<P>;
/** What an undo is given as the output: the named values, or with `output` the one value. */
export type Produced<P extends Shape, O extends Output> = O extends z.ZodType ? z.output<O> : ValuesOf<P>;
/** The values an action adds to the run: its named values, or with `output` one named after it. */
type Added<N extends string, P extends Shape, O extends Output> = O extends z.ZodType
  ? { [K in N]: z.output<O> }
  : ValuesOf<P>;

export interface Produces<V, P extends Shape, O extends Output> {
  /** Named values, each with its schema: an object of them is what the body returns. */
  produces?: Fresh<P, V>;
  /**
   * Instead of `produces`: the schema of one value of any JSON shape (a list, a string...), which the
   * body returns whole; it is available to later actions under the action's own name.
   */
  output?: O;
}

export interface Ordering<Names extends string> {
  /** Run only after these actions completed, even without a data dependency. */
  after?: readonly Names[];
}

export interface TaskSpec<
  V,
  R extends keyof V,
  P extends Shape,
  Names extends string,
  O extends Output = undefined,
> extends Ordering<Names>,
    Produces<V, P, O> {
  reads?: readonly R[];
  run: (
    input: Pick<V, R>,
    ctx: ActionContext,
  ) => Promise<Returns<NoInfer<P>, NoInfer<O>>> | Returns<NoInfer<P>, NoInfer<O>>;
  /** Undoes what `run` did, when a later failure or a cancel rolls the run back; receives the action's input and output. Should be idempotent. */
  undo?: (
    input: Pick<V, R>,
    output: Produced<NoInfer<P>, NoInfer<O>>,
    ctx: ActionContext,
  ) => Promise<void> | void;
  retry?: Partial<RetryPolicy>;
  /** Per attempt. */
  timeoutMs?: number;
  undoRetry?: Partial<RetryPolicy>;
  undoTimeoutMs?: number;
  /**
   * Runs after an attempt of `run` that started but did not complete: it failed, timed out, was
   * stopped by a cancel, or its process died (then on recovery, before anything else of this action).
   * Given the action's input; one attempt, whose failure is reported and stops nothing. Should be
   * idempotent: a crash while it runs runs it again.
   */
  cleanup?: (input: Pick<V, R>, ctx: ActionContext) => Promise<void> | void;
  cleanupTimeoutMs?: number;
}

export interface SignalSpec<
  V,
  R extends keyof V,
  P extends Shape,
  Names extends string,
  O extends Output = undefined,
> extends Ordering<Names>,
    Produces<V, P, O> {
  /**
   * Signal name. Its payload becomes the action's output: an object of the `produces` values, or,
   * with `output`, the whole payload as one value named after the action.
   */
  signal: string;
  /** Values `skip` reads. */
  reads?: readonly R[];
  /** When it returns the output, the wait completes at once with it instead of waiting. */
  skip?: (input: Pick<V, R>) => Produced<NoInfer<P>, NoInfer<O>> | undefined;
  /** Maps the payload to the output, when the sender's payload is not already shaped as it. */
  fromPayload?: (payload: Json) => Produced<NoInfer<P>, NoInfer<O>>;
  timeoutMs?: number;
}

export interface SleepSpec<V, R extends keyof V, Names extends string> extends Ordering<Names> {
  reads?: readonly R[];
  /** Sleep this long from when the action starts... */
  durationMs?: number;
  /** ...or until this time. */
  until?: (input: Pick<V, R>) => Date | number;
}

export interface PollSpec<
  V,
  R extends keyof V,
  P extends Shape,
  Names extends string,
  O extends Output = undefined,
> extends Ordering<Names>,
    Produces<V, P, O> {
  reads?: readonly R[];
  /** Called every `everyMs` until it reports done; nothing is held in between. */
  check: (
    input: Pick<V, R>,
    ctx: ActionContext,
  ) => Promise<PollResult<Produced<NoInfer<P>, NoInfer<O>>>> | PollResult<Produced<NoInfer<P>, NoInfer<O>>>;
  everyMs: number;
  /** Fail when not done after this long. */
  timeoutMs?: number;
  /** For checks that throw. */
  retry?: Partial<RetryPolicy>;
}

/** What a loop's body reads besides outer values. */
export interface IterationValues {
  /** 1 for the first iteration. */
  iteration: number;
  /** The values the previous iteration's actions produced; null in the first. */
  previous: Readonly<Record<string, unknown>> | null;
}

/** What a fan-out's body reads besides outer values. */
export interface ItemValues<T> {
  item: T;
  /** 1 for the first item. */
  index: number;
}

/** The values a body's own actions produce: what its group keeps of each iteration or item. */
type BodyValues<BV, V, Scope> = Omit<BV, keyof V | keyof Scope>;

/** A body: given a builder of the outer values and the scope's, it adds the actions run each time. */
type Body<V, Scope, BV> = (steps: SagaBuilder<never, V & Scope, never>) => SagaBuilder<never, BV, string>;

export interface LoopSpec<V, BV, Names extends string> extends Ordering<Names> {
  /** The steps of one iteration. They may wait (signals, sleeps, polls) and hold nothing while they do. */
  body: Body<V, IterationValues, BV>;
  /**
   * After each iteration, given its values: true ends the loop (its value is that iteration's values);
   * false, or a string saying why not, runs another.
   */
  until: (values: BodyValues<BV, V, IterationValues>, iteration: number) => boolean | string;
  /** Iterations at most; the loop fails after the last one with "gave up after N iterations: <why not>". */
  max: number;
}

export interface ForEachSpec<V, R extends keyof V, T, BV, Names extends string> extends Ordering<Names> {
  /** Values `items` reads. */
  reads?: readonly R[];
  /** The items, computed when the fan-out starts: the body runs once per item, side by side. */
  items: (input: Pick<V, R>) => readonly T[];
  /** The steps run for each item. */
  body: Body<V, ItemValues<T>, BV>;
  /** Items at most (default 256); a fan-out with more fails, saying so. */
  max?: number;
}

/** Default limit on a fan-out's items (a static matrix's, MAX_MATRIX_LEGS). */
const DEFAULT_MAX_ITEMS = 256;

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 1,
  initialDelayMs: 200,
  backoffFactor: 2,
  maxDelayMs: 30_000,
};
const DEFAULT_UNDO_RETRY: RetryPolicy = { ...DEFAULT_RETRY, maxAttempts: 3 };

/** A built saga: immutable, validated, ready to register with an executor. */
export interface Saga<Input = Record<string, unknown>, Values = Record<string, unknown>> {
  readonly name: string;
  readonly version: number;
  readonly inputSchema: z.ZodType<Input>;
  readonly inputNames: readonly string[];
  readonly actions: ReadonlyMap<string, ActionDefinition>;
  /** Actions in a topological order (dependencies first). */
  readonly order: readonly string[];
  /** What a failure for good does: undo what completed, or hold it for `executor.retry`. */
  readonly onFailure: OnFailure;
  /** Phantom: the type of every value available in a run. */
  readonly __values?: Values;
}

/**
 * What a failure for good does. `undo` (the default): run the undo of every completed action, in
 * reverse dependency order. `hold`: keep what completed, stop as `failed`, continue later with
 * `executor.retry`.
 */
export type OnFailure = "undo" | "hold";

/** `compensate` is the name `undo` had in 0.1; it is still accepted. */
export function normalizeOnFailure(value: string): OnFailure | undefined {
  if (value === "compensate") return "undo";
  return value === "undo" || value === "hold" ? value : undefined;
}

export interface SagaOptions<I extends Shape> {
  version: number;
  input?: I;
  /** Default `undo` (`compensate`, its name in 0.1, is still accepted). */
  onFailure?: OnFailure | "compensate";
}

interface SagaSpec {
  name: string;
  version: number;
  input: Shape;
  onFailure: OnFailure;
}

/** Starts a saga definition. Chain actions, then `build()`. */
export function saga<I extends Shape = Record<never, never>>(
  name: string,
  options: SagaOptions<I>,
): SagaBuilder<ValuesOf<I>, ValuesOf<I>, never> {
  return new SagaBuilder(
    {
      name,
      version: options.version,
      input: options.input ?? {},
      onFailure: normalizeOnFailure(options.onFailure ?? "undo") ?? (options.onFailure as OnFailure),
    },
    [],
  );
}

export class SagaBuilder<Input, V, Names extends string> {
  readonly #spec: SagaSpec;
  readonly #actions: ActionDefinition[];

  constructor(spec: SagaSpec, actions: ActionDefinition[]) {
    this.#spec = spec;
    this.#actions = actions;
  }

  /** An action that runs code, with an optional undo. */
  action<
    N extends string,
    const R extends keyof V & string = never,
    P extends Shape = Record<never, never>,
    O extends Output = undefined,
  >(name: N, spec: TaskSpec<V, R, P, Names, O>): SagaBuilder<Input, V & Added<N, P, O>, Names | N> {
    return this.#add({
      ...base(this.#spec.name, name, "task", spec),
      retry: policy(spec.retry, DEFAULT_RETRY),
      timeoutMs: spec.timeoutMs ?? null,
      run: spec.run as ActionDefinition["run"],
      undo: spec.undo as ActionDefinition["undo"],
      undoRetry: policy(spec.undoRetry, DEFAULT_UNDO_RETRY),
      undoTimeoutMs: spec.undoTimeoutMs ?? null,
      ...(spec.cleanup && {
        cleanup: spec.cleanup as ActionDefinition["cleanup"],
        cleanupTimeoutMs: spec.cleanupTimeoutMs ?? null,
      }),
    });
  }

  /** A durable wait for a named signal. */
  waitForSignal<
    N extends string,
    const R extends keyof V & string = never,
    P extends Shape = Record<never, never>,
    O extends Output = undefined,
  >(name: N, spec: SignalSpec<V, R, P, Names, O>): SagaBuilder<Input, V & Added<N, P, O>, Names | N> {
    return this.#add({
      ...base(this.#spec.name, name, "signal", spec),
      ...(spec.skip && { skip: spec.skip as ActionDefinition["skip"] }),
      timeoutMs: spec.timeoutMs ?? null,
      signalName: spec.signal,
      ...(spec.fromPayload && { fromPayload: spec.fromPayload }),
    });
  }

  /** A durable sleep: for a duration, or until a time computed from the inputs. */
  sleep<N extends string, const R extends keyof V & string = never>(
    name: N,
    spec: SleepSpec<V, R, Names>,
  ): SagaBuilder<Input, V, Names | N> {
    const definition: ActionDefinition = { ...base(this.#spec.name, name, "sleep", spec) };
    if (spec.durationMs !== undefined) definition.sleepMs = spec.durationMs;
    if (spec.until) definition.sleepUntil = spec.until as ActionDefinition["sleepUntil"];
    return this.#add(definition);
  }

  /** A durable poll of an external system. */
  poll<
    N extends string,
    const R extends keyof V & string = never,
    P extends Shape = Record<never, never>,
    O extends Output = undefined,
  >(name: N, spec: PollSpec<V, R, P, Names, O>): SagaBuilder<Input, V & Added<N, P, O>, Names | N> {
    return this.#add({
      ...base(this.#spec.name, name, "poll", spec),
      retry: policy(spec.retry, DEFAULT_RETRY),
      timeoutMs: spec.timeoutMs ?? null,
      everyMs: spec.everyMs,
      check: spec.check as ActionDefinition["check"],
    });
  }

  /**
   * A group of actions that runs again and again, until `until` holds or `max` iterations ran. Each
   * iteration's actions are steps of their own (`name#2.fix`); an iteration reads the previous one's
   * values as `previous`. The loop's value, under its name, is the last iteration's values.
   */
  loop<N extends string, BV>(
    name: N,
    spec: LoopSpec<V, BV, Names>,
  ): SagaBuilder<Input, V & { [K in N]: BodyValues<BV, V, IterationValues> }, Names | N> {
    const definition = this.#group(name, "loop", spec.body as Body<V, object, unknown>, [], spec);
    definition.group = {
      ...definition.group!,
      max: spec.max,
      until: spec.until as GroupDefinition["until"],
    };
    return this.#add(definition);
  }

  /**
   * A group of actions run once per item of a list computed when it starts (from earlier values), side
   * by side; each item's actions are steps of their own (`name#2.build`). Its value, under its name,
   * is the list of each item's values.
   */
  forEach<N extends string, const R extends keyof V & string, T, BV>(
    name: N,
    spec: ForEachSpec<V, R, T, BV, Names>,
  ): SagaBuilder<Input, V & { [K in N]: BodyValues<BV, V, ItemValues<T>>[] }, Names | N> {
    const definition = this.#group(
      name,
      "each",
      spec.body as Body<V, object, unknown>,
      spec.reads ?? [],
      spec,
    );
    definition.group = {
      ...definition.group!,
      max: spec.max ?? DEFAULT_MAX_ITEMS,
      items: spec.items as GroupDefinition["items"],
    };
    return this.#add(definition);
  }

  /** A group's definition: its body built against the values available here and the scope's. */
  #group(
    name: string,
    kind: "loop" | "each",
    body: Body<V, object, unknown>,
    reads: readonly string[],
    spec: Ordering<Names>,
  ): ActionDefinition {
    const outer = new Set([...Object.keys(this.#spec.input), ...this.#actions.flatMap((a) => a.produces)]);
    const scope = Object.fromEntries([...outer, ...SCOPE_VALUES].map((value) => [value, z.unknown()]));
    const definition: ActionDefinition = {
      ...base(this.#spec.name, name, kind, { after: spec.after ?? [] }),
    };
    definition.produces = [name];
    let built: Saga | undefined;
    try {
      const steps = new SagaBuilder<never, V, never>(
        { ...this.#spec, name: `${this.#spec.name}.${name}`, input: scope },
        [],
      );
      built = (body(steps as never) as unknown as SagaBuilder<never, unknown, string>).build() as Saga;
    } catch (error) {
      if (!(error instanceof SagaDefinitionError)) throw error;
      groupProblems.set(
        definition,
        error.problems.map((p) => `${kind === "loop" ? "loop" : "forEach"} "${name}": ${p}`),
      );
    }
    const actions = built?.actions ?? new Map<string, ActionDefinition>();
    const produces = new Set([...actions.values()].flatMap((a) => a.produces));
    // The group reads what its body reads of outer values (so it runs after their producers).
    const outerReads = new Set(reads);
    for (const action of actions.values())
      for (const value of action.reads)
        if (!produces.has(value) && !(SCOPE_VALUES as readonly string[]).includes(value))
          outerReads.add(value);
    definition.reads = [...outerReads];
    definition.group = { actions, order: built?.order ?? [], produces, max: 0 };
    return definition;
  }

  /**
   * Starts another saga as a child run and waits durably for it: its produced values become this
   * step's output; its failure (or cancel) is this step's failure; undoing this step undoes the child.
   */
  child<
    N extends string,
    CI,
    CV,
    const R extends keyof V & string = never,
    P extends Shape = Record<never, never>,
    O extends Output = undefined,
  >(name: N, spec: ChildSpec<V, R, P, Names, O, CI, CV>): SagaBuilder<Input, V & Added<N, P, O>, Names | N> {
    return this.#add({ ...base(this.#spec.name, name, "child", spec), ...childFields(spec) });
  }

  /** Validates the whole definition and freezes it. Throws SagaDefinitionError listing every problem. */
  build(): Saga<Input, V> {
    const problems: string[] = [];
    if (!/^[A-Za-z0-9_.:-]+$/.test(this.#spec.name))
      problems.push(`saga name "${this.#spec.name}" must match [A-Za-z0-9_.:-]+`);
    if (!Number.isInteger(this.#spec.version) || this.#spec.version < 1)
      problems.push("version must be a positive integer");
    if (this.#spec.onFailure !== "undo" && this.#spec.onFailure !== "hold")
      problems.push(`onFailure must be "undo" or "hold", got ${String(this.#spec.onFailure)}`);

    const actions = new Map<string, ActionDefinition>();
    for (const action of this.#actions) {
      if (actions.has(action.name)) problems.push(`two actions are named "${action.name}"`);
      actions.set(action.name, action);
      problems.push(...checkOptions(action), ...(groupProblems.get(action) ?? []));
    }

    // Which action (or the saga input) produces each value.
    const producer = new Map<string, string>();
    for (const name of Object.keys(this.#spec.input)) producer.set(name, "(input)");
    for (const action of this.#actions) {
      for (const value of action.produces) {
        const other = producer.get(value);
        if (other === undefined) producer.set(value, action.name);
        else
          problems.push(
            `value "${value}" has two producers: ${other === "(input)" ? "the saga input" : `action "${other}"`} and action "${action.name}"`,
          );
      }
    }
    for (const action of this.#actions) {
      const dependsOn = new Set<string>();
      for (const value of action.reads) {
        const from = producer.get(value);
        if (from === undefined)
          problems.push(`action "${action.name}" reads "${value}", which nothing produces`);
        else if (from !== "(input)") dependsOn.add(from);
      }
      for (const name of action.after) {
        if (!actions.has(name))
          problems.push(`action "${action.name}" runs after "${name}", which is not an action`);
        else dependsOn.add(name);
      }
      action.dependsOn = [...dependsOn];
    }
    const cycle = findCycle(
      this.#actions.map((a) => a.name),
      (name) => actions.get(name)?.dependsOn ?? [],
    );
    if (cycle) problems.push(`actions form a cycle: ${cycle.join(" -> ")}`);
    if (problems.length > 0) throw new SagaDefinitionError(this.#spec.name, problems);

    return Object.freeze({
      name: this.#spec.name,
      version: this.#spec.version,
      inputSchema: z.object(this.#spec.input) as unknown as z.ZodType<Input>,
      inputNames: Object.keys(this.#spec.input),
      actions,
      order: topologicalOrder(this.#actions),
      onFailure: this.#spec.onFailure,
    });
  }

  #add<N2 extends string, V2>(action: ActionDefinition): SagaBuilder<Input, V2, N2> {
    return new SagaBuilder(this.#spec, [...this.#actions, action]);
  }
}

/** Problems found building a group's body, reported by the saga's `build()` with every other. */
const groupProblems = new WeakMap<ActionDefinition, string[]>();

/** The named values a body's result (or a signal's payload) stands for: itself, or, for an action with `output`, itself under the action's name. */
export function outputValues(action: ActionDefinition, raw: unknown): unknown {
  return action.outputName === undefined ? (raw ?? {}) : { [action.outputName]: raw };
}

/** What an undo is given as the output of the action it undoes: the values, or the one `output` value. */
export function undoOutput(action: ActionDefinition, values: Record<string, unknown>): unknown {
  return action.outputName === undefined ? values : values[action.outputName];
}

function base(
  saga: string,
  name: string,
  kind: ActionDefinition["kind"],
  spec: { reads?: readonly string[]; produces?: Shape; output?: z.ZodType; after?: readonly string[] },
): ActionDefinition {
  if (spec.output && spec.produces)
    throw new SagaDefinitionError(saga, [
      `action "${name}": give \`produces\` (named values) or \`output\` (one value), not both`,
    ]);
  const shape: Shape = spec.output ? { [name]: spec.output } : (spec.produces ?? {});
  return {
    name,
    kind,
    reads: [...(spec.reads ?? [])],
    produces: Object.keys(shape),
    after: [...(spec.after ?? [])],
    dependsOn: [],
    outputSchema: Object.keys(shape).length > 0 ? z.object(shape) : null,
    ...(spec.output && { outputName: name }),
    retry: DEFAULT_RETRY,
    timeoutMs: null,
    undoRetry: DEFAULT_UNDO_RETRY,
    undoTimeoutMs: null,
  };
}

function policy(given: Partial<RetryPolicy> | undefined, defaults: RetryPolicy): RetryPolicy {
  return { ...defaults, ...given };
}

function checkOptions(action: ActionDefinition): string[] {
  const problems: string[] = [];
  const where = `action "${action.name}"`;
  if (!/^[A-Za-z0-9_.-]+$/.test(action.name)) problems.push(`${where}: name must match [A-Za-z0-9_.-]+`);
  const positive = (value: number | null | undefined, what: string) => {
    if (value !== null && value !== undefined && !(Number.isFinite(value) && value > 0))
      problems.push(`${where}: ${what} must be a positive number of milliseconds, got ${value}`);
  };
  positive(action.timeoutMs, "timeoutMs");
  positive(action.undoTimeoutMs, "undoTimeoutMs");
  positive(action.cleanupTimeoutMs, "cleanupTimeoutMs");
  for (const [label, retry] of [
    ["retry", action.retry],
    ["undoRetry", action.undoRetry],
  ] as const) {
    if (!Number.isInteger(retry.maxAttempts) || retry.maxAttempts < 1)
      problems.push(`${where}: ${label}.maxAttempts must be an integer >= 1`);
    if (!(retry.initialDelayMs >= 0) || !(retry.maxDelayMs >= 0) || !(retry.backoffFactor >= 1))
      problems.push(`${where}: ${label} delays must be >= 0 and backoffFactor >= 1`);
  }
  if (action.kind === "task" && typeof action.run !== "function")
    problems.push(`${where}: run must be a function`);
  if (action.kind === "signal" && !action.signalName) problems.push(`${where}: signal name is required`);
  problems.push(...childProblems(action, where));
  if (action.kind === "sleep" && (action.sleepMs === undefined) === (action.sleepUntil === undefined))
    problems.push(`${where}: give exactly one of durationMs or until`);
  if (action.kind === "sleep") positive(action.sleepMs, "durationMs");
  if (action.group) {
    const { group } = action;
    if (!Number.isInteger(group.max) || group.max < 1)
      problems.push(`${where}: max must be an integer >= 1, got ${group.max}`);
    if (group.order.length === 0 && !groupProblems.has(action))
      problems.push(`${where}: its body has no actions`);
    for (const inner of group.actions.values())
      if (inner.group) problems.push(`${where}: a group inside a group ("${inner.name}") is not supported`);
    if (action.kind === "loop" && typeof group.until !== "function")
      problems.push(`${where}: until must be a function`);
    if (action.kind === "each" && typeof group.items !== "function")
      problems.push(`${where}: items must be a function`);
  }
  if (action.kind === "poll") {
    positive(action.everyMs, "everyMs");
    if (typeof action.check !== "function") problems.push(`${where}: check must be a function`);
  }
  return problems;
}

function topologicalOrder(actions: readonly ActionDefinition[]): string[] {
  const done = new Set<string>();
  const order: string[] = [];
  const byName = new Map(actions.map((a) => [a.name, a]));
  const visit = (name: string) => {
    if (done.has(name)) return;
    done.add(name);
    for (const dep of byName.get(name)?.dependsOn ?? []) visit(dep);
    order.push(name);
  };
  for (const action of actions) visit(action.name);
  return order;
}
