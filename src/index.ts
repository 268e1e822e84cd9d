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
export type { EventListener, RunEvent, RunEventType } from "./engine/events.js";
export {
  Executor,
  type ExecutorOptions,
  type RunHandle,
  type RunInfo,
  type RunOutcome,
  type StartOptions,
} from "./engine/executor.js";
export { type IsolatedBody, type IsolatedContext, type IsolatedSpec, isolated } from "./engine/isolated.js";
export { RunReader, type RunReaderOptions } from "./engine/reader.js";
export * from "./errors.js";
export type { Json, JsonObject } from "./json.js";
export { createLogger, type LogContext, log, withLogContext } from "./logging.js";
export { type ByteSource, type StagedRef, stagedRefSchema } from "./staging/staging.js";
export { MemoryStorage } from "./storage/memory.js";
export { PostgresStorage, type PostgresStorageOptions } from "./storage/postgres/postgres-storage.js";
export { SqliteStorage } from "./storage/sqlite/sqlite-storage.js";
export * from "./storage/types.js";

// The names these types had in 0.1, when the engine called a run an execution.
import type { RunEvent, RunEventType } from "./engine/events.js";
import type { RunHandle, RunInfo, RunOutcome } from "./engine/executor.js";
import type { RunQuery, RunRecord, RunSnapshot, RunStatus, UndoCause } from "./storage/types.js";
/** @deprecated Use `RunEvent`. */
export type ExecutionEvent = RunEvent;
/** @deprecated Use `RunEventType`. */
export type ExecutionEventType = RunEventType;
/** @deprecated Use `RunHandle`. */
export type ExecutionHandle<V = Record<string, unknown>> = RunHandle<V>;
/** @deprecated Use `RunInfo`. */
export type ExecutionInfo = RunInfo;
/** @deprecated Use `RunOutcome`. */
export type ExecutionResult<V = Record<string, unknown>> = RunOutcome<V>;
/** @deprecated Use `RunQuery`. */
export type ExecutionQuery = RunQuery;
/** @deprecated Use `RunRecord`. */
export type ExecutionRecord = RunRecord;
/** @deprecated Use `RunSnapshot`. */
export type ExecutionSnapshot = RunSnapshot;
/** @deprecated Use `RunStatus`. */
export type ExecutionStatus = RunStatus;
/** @deprecated Use `UndoCause`. */
export type CompensationCause = UndoCause;
