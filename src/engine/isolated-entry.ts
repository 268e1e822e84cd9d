/**
 * The inside of an isolated action (see isolated.ts): in a worker thread or a child process, it
 * imports the body by module and export, runs it with the input and a context, and sends back the
 * result, the log lines and the progress. Whatever the body does to this thread or process (an
 * exhausted heap, `process.exit`, a throw from a timer) ends it, and the parent fails the action.
 */
import { parentPort, workerData } from "node:worker_threads";
import type { IsolatedContext, IsolatedStart, ToParent } from "./isolated.js";

const send: (message: ToParent) => void = parentPort
  ? (message) => parentPort!.postMessage(message)
  : (message) => process.send!(message);

function failed(error: unknown): ToParent {
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    type: "failed",
    error: { name: e.name, message: e.message, ...(e.stack !== undefined && { stack: e.stack }) },
  };
}

function run(start: IsolatedStart): void {
  const log = (level: "debug" | "info" | "warn" | "error") => (first: unknown, message?: string) =>
    typeof first === "string"
      ? send({ type: "log", level, message: first })
      : send({ type: "log", level, message: message ?? "", fields: first as Record<string, unknown> });
  const ctx: IsolatedContext = {
    ...start.context,
    log: { debug: log("debug"), info: log("info"), warn: log("warn"), error: log("error") },
    progress: (message, data) => send({ type: "progress", message, ...(data !== undefined && { data }) }),
  };
  import(start.module)
    .then((module: Record<string, unknown>) => {
      const body = module[start.export];
      if (typeof body !== "function")
        throw new TypeError(`${start.module} has no function export \`${start.export}\``);
      return body(start.input, ctx);
    })
    .then(
      (value: unknown) => send({ type: "done", value }),
      (error: unknown) => send(failed(error)),
    );
}

if (parentPort) run(workerData as IsolatedStart);
else {
  // A throw from the body's timer or callback: told as its failure, then this process ends (in a
  // thread, the worker's own 'error' event tells the parent).
  process.once("uncaughtException", (error) => {
    process.send!(failed(error), () => process.exit(1));
  });
  process.once("message", (start: IsolatedStart) => run(start));
}
