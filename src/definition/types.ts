/** Public types of a saga definition: actions, their context, retry policy. */

import type { Logger } from "pino";
import type { z } from "zod";
import type { Json, JsonObject } from "../json.js";
import type { StagedRef } from "../staging/staging.js";

/** Named values an action produces, each with its schema. */
export type Shape = { [name: string]: z.ZodType };
/** The TypeScript type of the values of a shape. */
export type ValuesOf<S extends Shape> = { [K in keyof S]: z.output<S[K]> };
/** What `run` must return: nothing when it produces nothing. */
export type RunResult<P extends Shape> = keyof P extends never
  ? // biome-ignore lint/suspicious/noConfusingVoidType: lets `run: () => {}` type-check for actions that produce nothing
    undefined | void | Record<string, never>
  : ValuesOf<P>;

export interface RetryPolicy {
  /** Attempts in all, the first included. Default 1 (no retry). */
  maxAttempts: number;
  /** Delay before the second attempt. Default 200 ms. */
  initialDelayMs: number;
  /** Each later delay is the previous one times this. Default 2. */
  backoffFactor: number;
  /** Upper bound of a delay. Default 30 s. */
  maxDelayMs: number;
}

/** What an action body receives besides its inputs. */
export interface ActionContext {
  readonly runId: string;
  /** @deprecated The same as `runId` (its name in 0.1). */
  readonly executionId: string;
  /** Human-readable run name given at start, if any. */
  readonly runName: string | null;
  readonly saga: string;
  readonly action: string;
  /** 1 for the first attempt; keeps counting across recoveries. */
  readonly attempt: number;
  /** Same for every attempt of this action in this run, across crashes: hand it to external systems. */
  readonly idempotencyKey: string;
  /** Aborted on cancel, on timeout, and when the executor stops. */
  readonly signal: AbortSignal;
  /** Logger whose lines carry the run, run name, saga, action and attempt. */
  readonly log: Logger;
  /** Tell whoever is listening how far along this action is; nobody listening costs nothing. */
  progress(message: string, data?: JsonObject): void;
  /**
   * Facts about this attempt's timing (what it waited for before it could start, and when it was
   * admitted), kept with the event that ends the attempt as `data.timing`: where `slipway show`'s
   * phases come from. Later calls merge into earlier ones. Absent from contexts that don't record them.
   */
  timing?(facts: JsonObject): void;
  /** Absolute path of a staged stream, valid after recovery too. */
  stagedPath(ref: StagedRef): string;
}

export type PollResult<O> = { done: true; output: O } | { done: false; message?: string };

/** `loop` and `each` are groups: steps run once per iteration (one after the other) or per item (side by side). */
export type ActionKind = "task" | "signal" | "sleep" | "poll" | "loop" | "each" | "child";

/** The engine's view of one action, after the saga is built. */
export interface ActionDefinition {
  name: string;
  kind: ActionKind;
  /** Values read, in declaration order. */
  reads: string[];
  /** Values produced. */
  produces: string[];
  /** Explicit ordering, on top of the data flow. */
  after: string[];
  /** Actions this one depends on (producers of its reads, plus `after`), computed at build. */
  dependsOn: string[];
  outputSchema: z.ZodType | null;
  /** Set when the action declares `output`: its body returns (its signal carries) one value, stored under this name, the action's. */
  outputName?: string;
  retry: RetryPolicy;
  timeoutMs: number | null;
  run?: (input: Record<string, unknown>, ctx: ActionContext) => unknown;
  undo?: (input: Record<string, unknown>, output: unknown, ctx: ActionContext) => unknown;
  undoRetry: RetryPolicy;
  undoTimeoutMs: number | null;
  /** Tasks: runs after an attempt of `run` that started but did not complete (failed, timed out, stopped, interrupted by a crash). */
  cleanup?: (input: Record<string, unknown>, ctx: ActionContext) => unknown;
  cleanupTimeoutMs?: number | null;
  /** Signal waits. */
  signalName?: string;
  /** Turns a signal's payload into the action's output values (default: the payload is them). */
  fromPayload?: (payload: Json) => unknown;
  /** Signal waits and child steps: output values to complete with at once instead of waiting, or undefined to wait. */
  skip?: (input: Record<string, unknown>) => unknown;
  /** Sleeps: a fixed delay, or a time computed from the reads. */
  sleepMs?: number;
  sleepUntil?: (input: Record<string, unknown>) => Date | number;
  /** Polls. */
  everyMs?: number;
  check?: (input: Record<string, unknown>, ctx: ActionContext) => unknown;
  /** Groups (`loop`, `each`): the steps run per iteration or item, and the group's limit on their count. */
  group?: GroupDefinition;
  /** Child runs: the saga started as a child run (a built `Saga`), its input, and how its values map to the output. */
  childSaga?: { readonly name: string; readonly version: number };
  /**
   * Instead of `childSaga`, for a host that builds a saga per child input (a pipeline's `uses:` job):
   * the saga to start for this input. The executor's `hostChild` must make it available.
   */
  childSagaOf?: (input: Record<string, unknown>) => { readonly name: string; readonly version: number };
  childInput?: (input: Record<string, unknown>) => unknown;
  fromResult?: (values: Record<string, unknown>) => unknown;
}

/** What a group runs: its body's actions, once per iteration or item, each time as steps of their own. */
export interface GroupDefinition {
  /** The body's actions, dependencies first; their reads name outer values, body values and the scope's. */
  actions: ReadonlyMap<string, ActionDefinition>;
  order: readonly string[];
  /** Values the body's actions produce (what an iteration's or item's values are made of). */
  produces: ReadonlySet<string>;
  /** Iterations or items at most: a loop reaching it gives up; a fan-out with more items is refused. */
  max: number;
  /** Loops: whether an iteration's values end the loop (true), or why not (false, or a reason). */
  until?: (values: Record<string, unknown>, iteration: number) => unknown;
  /** Fan-outs: the items, from the group's reads; one instance of the body runs per item. */
  items?: (input: Record<string, unknown>) => unknown;
}

/** Names a group's body reads besides outer values: its iteration (from 1) and the previous one's values, or its item and index (from 1). */
export const SCOPE_VALUES = ["iteration", "previous", "item", "index"] as const;
