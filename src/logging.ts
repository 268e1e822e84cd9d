/**
 * Structured logs. Each line written while an action runs carries its execution id, run name, saga,
 * action and attempt, taken from AsyncLocalStorage so action code passes nothing around.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";

export interface LogContext {
  executionId: string;
  runName?: string;
  saga: string;
  action?: string;
  attempt?: number;
  /** What runs: the action itself, its undo, its cleanup, or a poll check. */
  phase?: "run" | "undo" | "check" | "cleanup";
}

const contextStore = new AsyncLocalStorage<LogContext>();

/** Runs `fn` with `context` attached to every log line written inside it, however deep. */
export function withLogContext<T>(context: LogContext, fn: () => T): T {
  return contextStore.run(context, fn);
}

export function currentLogContext(): LogContext | undefined {
  return contextStore.getStore();
}

/** A pino logger that adds the current action's context to every line. */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const withContext: LoggerOptions = {
    level: process.env.SLIPWAY_LOG_LEVEL ?? "info",
    ...options,
    mixin: (base, level, logger) => ({ ...options.mixin?.(base, level, logger), ...contextStore.getStore() }),
  };
  return destination ? pino(withContext, destination) : pino(withContext);
}

/** The default logger; action code may import and use it anywhere. */
export const log: Logger = createLogger();
