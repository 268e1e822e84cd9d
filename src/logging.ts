/**
 * Structured logs. Each line written while an action runs carries its run id, run name, saga,
 * action and attempt, taken from AsyncLocalStorage so action code passes nothing around. A log that
 * cannot be written (a full disk) never ends the process: see `guardDestination`.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { type DestinationStream, type Logger, type LoggerOptions, pino } from "pino";
import { isDiskFull } from "./errors.js";

export interface LogContext {
  runId: string;
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

/**
 * A pino logger that adds the current action's context to every line. Without a destination it
 * writes to stdout; either way the destination is guarded (`guardDestination`).
 */
export function createLogger(options: LoggerOptions = {}, destination?: DestinationStream): Logger {
  const withContext: LoggerOptions = {
    level: process.env.SLIPWAY_LOG_LEVEL ?? "info",
    ...options,
    mixin: (base, level, logger) => {
      const context = contextStore.getStore();
      // `executionId` is the name `runId` had in 0.1, kept for log queries written against it.
      return {
        ...options.mixin?.(base, level, logger),
        ...context,
        ...(context && { executionId: context.runId }),
      };
    },
  };
  const stream = destination ?? pino.destination({ fd: 1, sync: true, maxLength: MAX_BUFFERED_LOG });
  guardDestination(stream, destination ? "the log" : "stdout");
  return pino(withContext, stream);
}

/** Lines held in memory while a log cannot be written (beyond this they are dropped). */
export const MAX_BUFFERED_LOG = 8 * 1024 * 1024;

/**
 * Keeps a log destination from ending the process. An unhandled 'error' on a pino destination (ENOSPC
 * on a full disk) is an uncaught exception, and pino's exit handler then flushes synchronously in a
 * loop that never ends while the disk stays full. So: every error is handled (told once on stderr
 * per spell of failures), lines are kept (up to the destination's `maxLength`) and written once a
 * write succeeds again, and `flushSync` is skipped while writes fail. Returns the destination.
 */
export function guardDestination<T extends DestinationStream>(
  destination: T,
  what: string,
  report: (message: string) => void = toStderr,
): T {
  const stream = destination as T & {
    on?: (event: string, listener: (...args: never[]) => void) => unknown;
    flushSync?: () => void;
    file?: string;
  };
  if (typeof stream.on !== "function" || guarded.has(stream)) return destination;
  guarded.add(stream);
  let failing = false;
  let retry: NodeJS.Timeout | undefined;
  stream.on("error", (error: NodeJS.ErrnoException) => {
    // A reader that went away (`| head`): pino stops writing to it, nothing to say.
    if (failing || error.code === "EPIPE") return;
    failing = true;
    const where = stream.file ? `${what} ${stream.file}` : what;
    const why = isDiskFull(error) ? "the disk is full" : error.message;
    report(`slipway: cannot write ${where}: ${why}; log lines are kept in memory until it can be written\n`);
    // Kept lines are written with the next line; a quiet process tries now and then by itself.
    retry = setInterval(() => {
      try {
        stream.write("");
      } catch {
        clearInterval(retry); // closed
      }
    }, LOG_RETRY_MS);
    retry.unref();
  });
  stream.on("write", () => {
    if (!failing) return;
    failing = false;
    clearInterval(retry);
    report(`slipway: ${what}${stream.file ? ` ${stream.file}` : ""} is written again\n`);
  });
  stream.on("close", () => clearInterval(retry));
  const flushSync = stream.flushSync;
  if (typeof flushSync === "function") {
    stream.flushSync = () => {
      if (failing) return;
      try {
        flushSync.call(stream);
      } catch {
        // Not open yet, or closed: nothing to flush.
      }
    };
  }
  return destination;
}

const guarded = new WeakSet<object>();
/** How often a destination that failed is tried again when nothing new is logged. */
const LOG_RETRY_MS = 1_000;

function toStderr(message: string): void {
  try {
    process.stderr.write(message);
  } catch {
    // stderr gone too: nowhere left to say it.
  }
}

/** The default logger; action code may import and use it anywhere. */
export const log: Logger = createLogger();
