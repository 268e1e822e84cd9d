/**
 * Slipway: durable sagas for build and deploy pipelines.
 * @module
 */

export { z } from "zod";
export { type Clock, type ClockTimer, systemClock } from "./clock.js";
export { type Saga, SagaBuilder, type SagaOptions, saga } from "./definition/saga.js";
export type {
  ActionContext,
  ActionDefinition,
  PollResult,
  RetryPolicy,
  Shape,
  ValuesOf,
} from "./definition/types.js";
export type { EventListener, ExecutionEvent, ExecutionEventType } from "./engine/events.js";
export {
  type ExecutionHandle,
  type ExecutionInfo,
  type ExecutionResult,
  Executor,
  type ExecutorOptions,
  type StartOptions,
} from "./engine/executor.js";
export * from "./errors.js";
export type { Json, JsonObject } from "./json.js";
export { createLogger, type LogContext, log, withLogContext } from "./logging.js";
export { type ByteSource, type StagedRef, stagedRefSchema } from "./staging/staging.js";
export { MemoryStorage } from "./storage/memory.js";
export { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
export * from "./storage/types.js";
