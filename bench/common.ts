/** Shared bench helpers: sagas, temp dirs, percentiles, storage timing, and the parent/child protocol. */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { Agent, request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { pino } from "pino";
import { type ActionContext, createLogger, type Saga, type Storage, saga, z } from "slipway";

/** Figures a phase reports: flat keys with dots, numbers only. */
export type Figures = Record<string, number>;

/** What a child sends its parent over IPC. */
export type ChildMessage =
  | { type: "result"; figures: Figures; notes?: string[] }
  | { type: "done"; at: number; figures: Figures }
  | { type: "error"; message: string };

/** A body of a chain action: gets the run index (carried along the chain) and the action index. */
export type ChainBody = (idx: number, action: number, ctx: ActionContext) => unknown;

interface LooseBuilder {
  action(
    name: string,
    spec: {
      reads: string[];
      produces: Record<string, z.ZodType>;
      run: (input: Record<string, unknown>, ctx: ActionContext) => unknown;
    },
  ): LooseBuilder;
  build(): Saga;
}

/**
 * A saga of `length` sequential actions a0..a{n-1}: a0 reads the input `idx`, each later action reads
 * the previous one's output, and each produces one value (the same idx), so the graph is a chain.
 */
export function chainSaga(name: string, length: number, body: ChainBody): Saga {
  let builder = saga(name, { version: 1, input: { idx: z.number() } }) as unknown as LooseBuilder;
  let previous = "idx";
  for (let i = 0; i < length; i++) {
    const read = previous;
    const produced = `v${i}`;
    builder = builder.action(`a${i}`, {
      reads: [read],
      produces: { [produced]: z.number() },
      run: (input, ctx) => {
        const idx = input[read] as number;
        const out = body(idx, i, ctx);
        return out instanceof Promise ? out.then(() => ({ [produced]: idx })) : { [produced]: idx };
      },
    });
    previous = produced;
  }
  return builder.build();
}

/** A saga that waits for signal "go" (payload { ok }), then runs one no-op action. */
export function approvalSaga(): Saga {
  return saga("approval", { version: 1 })
    .waitForSignal("approve", { signal: "go", produces: { ok: z.boolean() } })
    .action("finish", { reads: ["ok"], produces: { done: z.boolean() }, run: ({ ok }) => ({ done: ok }) })
    .build() as unknown as Saga;
}

let logger: ReturnType<typeof createLogger> | undefined;

/** Warnings and errors only, to stderr, so a child's stdout stays quiet. One per process (each holds a stream). */
export function quietLogger() {
  logger ??= createLogger({ level: "warn" }, pino.destination(2));
  return logger;
}

export function tempDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `slipway-bench-${label}-`));
}

export function removeDir(dir: string): void {
  if (!process.env.BENCH_KEEP) rmSync(dir, { recursive: true, force: true });
}

/** `name start|end <epoch s>` lines → name → { start, end } in epoch ms. */
export function readTrace(file: string): Map<string, { start: number; end: number }> {
  const spans = new Map<string, { start: number; end: number }>();
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const [name, what, at] = line.split(" ");
    if (!name || !at) continue;
    const span = spans.get(name) ?? { start: Number.NaN, end: Number.NaN };
    span[what as "start" | "end"] = Number(at.replace(",", ".")) * 1000;
    spans.set(name, span);
  }
  return spans;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function sortedCopy(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values).sort();
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `condition` every `everyMs` until true; throws after `timeoutMs`. */
export async function until(condition: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 10) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(everyMs);
  }
}

/** Resolves once `file` has grown past `size` (polled: the pacing of a loop, not what is measured). */
export async function grown(file: string, size: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!existsSync(file) || statSync(file).size <= size) {
    if (Date.now() > deadline) throw new Error(`${file} did not grow within ${timeoutMs} ms`);
    await sleep(1);
  }
}

/** Wall-clock epoch ms with sub-ms resolution, comparable across processes on this machine. */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

export interface CallStats {
  calls: number;
  /** Time the caller was blocked inside the call (SQLite work is synchronous, fsync included). */
  syncMs: number;
  /** For commit: transitions carried. */
  items: number;
}

/**
 * Wraps a storage so every method call is counted and its synchronous part timed. better-sqlite3 does
 * all its work (fsync included) before the returned promise exists, so this is the event-loop time
 * spent in storage. Two performance.now() calls per storage call: negligible next to a transaction.
 */
export function timedStorage(storage: Storage): { storage: Storage; stats: Map<string, CallStats> } {
  const stats = new Map<string, CallStats>();
  const wrapped = new Proxy(storage, {
    get(target, property, _receiver) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== "function" || typeof property !== "string") return value;
      const fn = value as (...args: unknown[]) => unknown;
      return (...args: unknown[]) => {
        const start = performance.now();
        try {
          return fn.apply(target, args);
        } finally {
          let s = stats.get(property);
          if (!s) {
            s = { calls: 0, syncMs: 0, items: 0 };
            stats.set(property, s);
          }
          s.calls++;
          s.syncMs += performance.now() - start;
          if (property === "commit") s.items += (args[0] as unknown[]).length;
        }
      };
    },
  });
  return { storage: wrapped, stats };
}

/** Storage call stats as figures under `prefix` (e.g. "engine.storage"). */
export function statsFigures(prefix: string, stats: Map<string, CallStats>): Figures {
  const figures: Figures = {};
  for (const [name, s] of [...stats].sort((a, b) => b[1].syncMs - a[1].syncMs)) {
    figures[`${prefix}.${name}.calls`] = s.calls;
    figures[`${prefix}.${name}.ms`] = round(s.syncMs, 1);
    if (name === "commit") figures[`${prefix}.commit.transitions`] = s.items;
  }
  return figures;
}

// ---- parent/child protocol ----------------------------------------------------------------------

/** Path of a compiled bench script next to this one (dist-bench/). */
export function benchScript(name: string): string {
  return fileURLToPath(new URL(`./${name}.js`, import.meta.url));
}

/** In a child: send a message to the parent and resolve once it is handed to the OS. */
export function sendToParent(message: ChildMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error("not started by the bench runner (no IPC channel)"));
    process.send(message, undefined, {}, (error) => (error ? reject(error) : resolve()));
  });
}

/** In a child: run `main`, report its figures (or its error), exit. */
export function childMain(main: () => Promise<{ figures: Figures; notes?: string[] }>): void {
  main().then(
    async ({ figures, notes }) => {
      await sendToParent(notes ? { type: "result", figures, notes } : { type: "result", figures });
      process.exit(0);
    },
    async (error: unknown) => {
      console.error(error);
      await sendToParent({ type: "error", message: String((error as Error)?.stack ?? error) }).catch(
        () => {},
      );
      process.exit(1);
    },
  );
}

export interface ChildOptions {
  execArgv?: string[];
  onMessage?: (message: ChildMessage, child: ChildProcess) => void;
}

/** Starts a compiled bench script as a child with an IPC channel. */
export function startChild(name: string, args: string[], options: ChildOptions = {}): ChildProcess {
  const child = fork(benchScript(name), args, {
    execArgv: [...(options.execArgv ?? []), ...(process.env.BENCH_CHILD_ARGS?.split(" ") ?? [])],
    stdio: ["ignore", "inherit", "inherit", "ipc"],
    env: { ...process.env, SLIPWAY_LOG_LEVEL: process.env.SLIPWAY_LOG_LEVEL ?? "warn" },
  });
  if (options.onMessage) {
    const onMessage = options.onMessage;
    child.on("message", (message) => onMessage(message as ChildMessage, child));
  }
  return child;
}

/** Runs a child to completion and returns what it reported. */
export function runChild(
  name: string,
  args: string[],
  execArgv: string[] = [],
): Promise<{ figures: Figures; notes: string[] }> {
  return new Promise((resolve, reject) => {
    let result: { figures: Figures; notes: string[] } | undefined;
    let failure: string | undefined;
    const child = startChild(name, args, {
      execArgv,
      onMessage: (message) => {
        if (message.type === "result") result = { figures: message.figures, notes: message.notes ?? [] };
        else if (message.type === "error") failure = message.message;
      },
    });
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      if (result) resolve(result);
      else
        reject(
          new Error(
            `${name} ${args.join(" ")} failed (${signal ?? `exit ${code}`})${failure ? `: ${failure}` : ""}`,
          ),
        );
    });
  });
}

/**
 * The benches' HTTP client: node:http with one keep-alive pool, as a service's client would hold
 * (idle connections reused, up to 1,024 kept; a new one opened whenever all are busy: 200 requests at
 * once open 200).
 * Not `fetch`: it spent about 4 times the CPU per request here (355–383 ms against 85–99 ms for 200
 * POSTs at once), on the same two cores as the server it measures.
 */
const pooled = new Agent({ keepAlive: true, maxFreeSockets: 1024 });

export interface HttpAnswer {
  status: number;
  text: string;
}

/** A failed request: `name` is `TimeoutError` when no answer came within the limit. */
export function httpRequest(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string; timeoutMs?: number } = {},
): Promise<HttpAnswer> {
  const body = options.body === undefined ? undefined : Buffer.from(options.body);
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: options.method ?? "GET",
        agent: pooled,
        headers: { ...options.headers, ...(body && { "content-length": String(body.length) }) },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({ status: res.statusCode!, text: Buffer.concat(chunks).toString("utf8") }),
        );
        res.on("error", reject);
      },
    );
    if (options.timeoutMs !== undefined)
      req.setTimeout(options.timeoutMs, () => {
        const error = new Error(`no answer from ${url} within ${options.timeoutMs} ms`);
        error.name = "TimeoutError";
        req.destroy(error);
      });
    req.on("error", reject);
    req.end(body);
  });
}
