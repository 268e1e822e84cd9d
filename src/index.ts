/**
 * Slipway: durable sagas for build and deploy pipelines.
 * @module
 */
export { saga, SagaBuilder, type Saga, type SagaOptions } from "./definition/saga.js";
export type {
  ActionContext,
  ActionDefinition,
  PollResult,
  RetryPolicy,
  Shape,
  ValuesOf,
} from "./definition/types.js";
export {
  Executor,
  type ExecutionHandle,
  type ExecutionInfo,
  type ExecutionResult,
  type ExecutorOptions,
  type StartOptions,
} from "./engine/executor.js";
export type { ExecutionEvent, ExecutionEventType, EventListener } from "./engine/events.js";
export * from "./errors.js";
export type { Json, JsonObject } from "./json.js";
export { createLogger, log, withLogContext, type LogContext } from "./logging.js";
export { stagedRefSchema, type StagedRef, type ByteSource } from "./staging/staging.js";
export * from "./storage/types.js";
export { MemoryStorage } from "./storage/memory.js";
export { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
export { z } from "zod";
