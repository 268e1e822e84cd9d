/** Child steps of a saga (`.child`): their spec, what they add to an action's definition, and their checks. */
import type { Ordering, Output, Produced, Produces, Saga } from "./saga.js";
import type { ActionDefinition, Shape } from "./types.js";

export interface ChildSpec<
  V,
  R extends keyof V,
  P extends Shape,
  Names extends string,
  O extends Output,
  CI,
  CV,
> extends Ordering<Names>,
    Produces<V, P, O> {
  /** The saga started as a child run (registered with the parent's executor along with the parent). */
  saga: Saga<CI, CV>;
  /** Values `input` reads. */
  reads?: readonly R[];
  /** The child run's input, from the values read (default: none). */
  input?: (values: Pick<V, R>) => CI;
  /**
   * Maps the values the child run's actions produced to this step's output, when they are not
   * already shaped as it (default: they are its output, checked against `produces` or `output`).
   */
  fromResult?: (values: Partial<CV>) => Produced<NoInfer<P>, NoInfer<O>>;
  /** Fail (and cancel the child run) when it has not ended this long after the step began. */
  timeoutMs?: number;
}

/** What a child step's definition has beyond the common fields. */
export function childFields(spec: {
  saga: unknown;
  input?: unknown;
  fromResult?: unknown;
  timeoutMs?: number;
  /** Not in {@link ChildSpec}: for hosts that build the child's saga per input (pipelines, compile.ts). */
  sagaOf?: unknown;
  skip?: unknown;
}): Partial<ActionDefinition> {
  return {
    timeoutMs: spec.timeoutMs ?? null,
    // Undoing a child step undoes the child run: the engine does it (see engine/child-steps.ts).
    undo: undoneByEngine,
    ...(spec.saga !== undefined && { childSaga: spec.saga as ActionDefinition["childSaga"] }),
    ...(spec.sagaOf !== undefined && { childSagaOf: spec.sagaOf as ActionDefinition["childSagaOf"] }),
    ...(spec.skip !== undefined && { skip: spec.skip as ActionDefinition["skip"] }),
    ...(spec.input !== undefined && { childInput: spec.input as ActionDefinition["childInput"] }),
    ...(spec.fromResult !== undefined && { fromResult: spec.fromResult as ActionDefinition["fromResult"] }),
  };
}

/** What is wrong with a child step (and signal names reserved for the ends of child runs). */
export function childProblems(action: ActionDefinition, where: string): string[] {
  const problems: string[] = [];
  if (action.kind === "signal" && action.signalName?.startsWith("child:"))
    problems.push(`${where}: signal names starting with "child:" are reserved for the ends of child runs`);
  if (action.kind !== "child") return problems;
  const child = action.childSaga as Partial<Saga> | undefined;
  if (typeof action.childSagaOf === "function") return problems;
  if (!child || typeof child.name !== "string" || !(child.actions instanceof Map))
    problems.push(`${where}: saga must be a built saga (call .build() on it)`);
  if (action.childInput !== undefined && typeof action.childInput !== "function")
    problems.push(`${where}: input must be a function of the values read`);
  return problems;
}

function undoneByEngine(): never {
  throw new Error("a child step is undone by the engine, which undoes its child run");
}
