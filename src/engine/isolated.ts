/**
 * Isolated actions: a body that runs in a worker thread or a child process of its own, with a heap
 * limit, so that exhausting memory, `process.exit`, a runaway loop or a throw from a timer fails that
 * action alone (retried or undone as usual) while every other run of the executor goes on. A closure
 * cannot cross into another thread or process, so the body is named by module and export.
 *
 * ```ts
 * import type { build } from "./build.js";
 * .action("build", {
 *   reads: ["pkg"],
 *   produces: { image: z.string() },
 *   timeoutMs: 600_000, // a runaway loop ends here: its thread is stopped
 *   run: isolated<typeof build>({ module: new URL("./build.js", import.meta.url), export: "build", memoryMb: 256 }),
 * })
 * ```
 */
import { type ChildProcess, fork } from "node:child_process";
import { isAbsolute } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Worker } from "node:worker_threads";
import type { ActionContext } from "../definition/types.js";
import { SlipwayError } from "../errors.js";
import type { JsonObject } from "../json.js";

/** What an isolated body is given besides its input: the action's identity, a log, progress. */
export interface IsolatedContext {
  readonly runId: string;
  readonly runName: string | null;
  readonly saga: string;
  readonly action: string;
  readonly attempt: number;
  readonly idempotencyKey: string;
  /** Lines go to the executor's log, with the run and the action, as `ctx.log`'s do. */
  readonly log: Record<
    "debug" | "info" | "warn" | "error",
    (fieldsOrMessage: unknown, message?: string) => void
  >;
  progress(message: string, data?: JsonObject): void;
}

/** An isolated body: a named export of its module. */
export type IsolatedBody = (input: never, ctx: IsolatedContext) => unknown;

export interface IsolatedSpec {
  /** The module exporting the body: a file URL (`new URL("./build.js", import.meta.url)`) or an absolute path. Node must be able to import it as it is (JavaScript, not TypeScript). */
  module: string | URL;
  /** The export that is the body; default `default`. */
  export?: string;
  /** Heap limit of the body's thread or process, in MiB; default 512. Past it the action fails. */
  memoryMb?: number;
  /** `thread` (default): a worker thread, quick to start. `process`: a child process, which also contains native crashes. */
  in?: "thread" | "process";
}

/** Sent to start the body (as the worker's data, or the child's first message). */
export interface IsolatedStart {
  module: string;
  export: string;
  input: unknown;
  context: Pick<IsolatedContext, "runId" | "runName" | "saga" | "action" | "attempt" | "idempotencyKey">;
}

/** What the body's side sends back. */
export type ToParent =
  | {
      type: "log";
      level: "debug" | "info" | "warn" | "error";
      message: string;
      fields?: Record<string, unknown>;
    }
  | { type: "progress"; message: string; data?: JsonObject }
  | { type: "done"; value: unknown }
  | { type: "failed"; error: { name: string; message: string; stack?: string } };

const DEFAULT_MEMORY_MB = 512;
const SOURCE = import.meta.url.endsWith(".ts");
const ENTRY = new URL(`./isolated-entry.${SOURCE ? "ts" : "js"}`, import.meta.url);

/**
 * An action body that runs `spec`'s export isolated. Type it with the body's own type,
 * `isolated<typeof build>(...)`, to check the input and output against the action's.
 */
// biome-ignore lint/suspicious/noExplicitAny: untyped use (no type argument) fits any action, as a plain `run` would
type UntypedBody = (input: any, ctx: IsolatedContext) => any;

export function isolated<F extends IsolatedBody = UntypedBody>(
  spec: IsolatedSpec,
): (input: Parameters<F>[0], ctx: ActionContext) => Promise<Awaited<ReturnType<F>>> {
  const module = moduleUrl(spec.module);
  const name = spec.export ?? "default";
  const memoryMb = spec.memoryMb ?? DEFAULT_MEMORY_MB;
  if (!Number.isInteger(memoryMb) || memoryMb < 16)
    throw new SlipwayError(
      "definition",
      `isolated: memoryMb must be a whole number of MiB, at least 16 (got ${memoryMb})`,
    );
  const where = spec.in ?? "thread";
  return (input, ctx) => {
    const start: IsolatedStart = {
      module,
      export: name,
      input,
      context: {
        runId: ctx.runId,
        runName: ctx.runName,
        saga: ctx.saga,
        action: ctx.action,
        attempt: ctx.attempt,
        idempotencyKey: ctx.idempotencyKey,
      },
    };
    const body = where === "thread" ? inThread(start, memoryMb) : inProcess(start, memoryMb);
    return new Promise((resolve, reject) => {
      let settled = false;
      const settle = (finish: () => void) => {
        if (settled) return;
        settled = true;
        ctx.signal.removeEventListener("abort", onAbort);
        body.stop();
        finish();
      };
      // Stopped at once on cancel or timeout: `cleanup` is where to put what must happen then.
      const onAbort = () => settle(() => reject(ctx.signal.reason));
      if (ctx.signal.aborted) return onAbort();
      ctx.signal.addEventListener("abort", onAbort);
      body.listen((message) => {
        if (message.type === "log") {
          const line = { isolated: where, ...message.fields };
          ctx.log[message.level](line, message.message);
        } else if (message.type === "progress") ctx.progress(message.message, message.data);
        else if (message.type === "done") settle(() => resolve(message.value as Awaited<ReturnType<F>>));
        else settle(() => reject(Object.assign(new Error(message.error.message), message.error)));
      });
      body.ended.then((reason) =>
        settle(() => reject(new SlipwayError("isolated_failed", describe(reason, memoryMb, name)))),
      );
    });
  };
}

/** How an isolated body's thread or process ended before it answered. */
type Ended =
  | { kind: "out_of_memory" }
  | { kind: "error"; error: Error }
  | { kind: "exit"; code: number | null; signal: NodeJS.Signals | null; stderr: string };

interface Body {
  listen(on: (message: ToParent) => void): void;
  /** Resolves when the thread or process ends (after an answer, the caller has settled and ignores it). */
  ended: Promise<Ended>;
  stop(): void;
}

function describe(reason: Ended, memoryMb: number, name: string): string {
  const what = `isolated body \`${name}\``;
  if (reason.kind === "out_of_memory") return `${what} ran out of memory (limit ${memoryMb} MiB)`;
  if (reason.kind === "error") return `${what} crashed: ${reason.error.message}`;
  if (/heap out of memory|Reached heap limit/.test(reason.stderr))
    return `${what} ran out of memory (limit ${memoryMb} MiB)`;
  const tail = reason.stderr.trim().split("\n").slice(-3).join(" | ");
  const how = reason.signal ? `was killed by ${reason.signal}` : `exited with code ${reason.code}`;
  return `${what} ${how} before it answered${tail ? `: ${tail}` : ""}`;
}

function inThread(start: IsolatedStart, memoryMb: number): Body {
  const options = { workerData: start, resourceLimits: { maxOldGenerationSizeMb: memoryMb } };
  // From TypeScript sources (this repository's tests) the entry is loaded through tsx.
  const worker = SOURCE
    ? new Worker(
        `import("tsx/esm/api").then((tsx) => tsx.tsImport(${JSON.stringify(ENTRY.href)}, ${JSON.stringify(import.meta.url)}))`,
        { ...options, eval: true },
      )
    : new Worker(ENTRY, options);
  return {
    listen: (on) => void worker.on("message", on),
    ended: new Promise((resolve) => {
      let error: (Error & { code?: string }) | undefined;
      worker.once("error", (e) => {
        error = e;
      });
      worker.once("exit", (code) => {
        if (error?.code === "ERR_WORKER_OUT_OF_MEMORY") resolve({ kind: "out_of_memory" });
        else if (error) resolve({ kind: "error", error });
        else resolve({ kind: "exit", code, signal: null, stderr: "" });
      });
    }),
    stop: () => void worker.terminate(),
  };
}

function inProcess(start: IsolatedStart, memoryMb: number): Body {
  const child: ChildProcess = fork(fileURLToPath(ENTRY), [], {
    execArgv: [...(SOURCE ? ["--import", "tsx"] : []), `--max-old-space-size=${memoryMb}`],
    stdio: ["ignore", "inherit", "pipe", "ipc"],
    serialization: "advanced",
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4096);
  });
  child.send(start);
  return {
    listen: (on) => void child.on("message", on),
    ended: new Promise((resolve) => {
      child.once("error", (error) => resolve({ kind: "error", error }));
      child.once("close", (code, signal) => resolve({ kind: "exit", code, signal, stderr }));
    }),
    stop: () => void child.kill("SIGKILL"),
  };
}

function moduleUrl(module: string | URL): string {
  if (module instanceof URL) return module.href;
  if (module.startsWith("file:")) return module;
  if (isAbsolute(module)) return pathToFileURL(module).href;
  throw new SlipwayError(
    "definition",
    `isolated: module must be a file URL or an absolute path (got ${module}); try new URL("${module}", import.meta.url)`,
  );
}
