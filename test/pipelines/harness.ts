/**
 * End-to-end harness: drives the real `slipway` binary (dist/cli/main.js, built by `npm test`) in a
 * temporary directory, with pipeline files and small fake tools written by each test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";
import { tempDir } from "../helpers.js";

const BIN = fileURLToPath(new URL("../../dist/cli/main.js", import.meta.url));

export interface Result {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  /** Everything printed so far. */
  readonly stdout: string;
  readonly stderr: string;
  /** Resolves once stdout (or stderr) has a line matching `pattern`; fails the test after `ms`. */
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpMatchArray>;
  done: Promise<Result>;
}

const children = new Set<ChildProcess>();
afterEach(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  children.clear();
});

/** A temporary project: a directory with a pipeline file and tools, and its own `.slipway` state. */
export class Project {
  readonly dir = tempDir();

  get db(): string {
    return join(this.dir, ".slipway", "slipway.db");
  }

  /** Writes a file (relative to the project); `executable` for tools. */
  write(name: string, text: string, executable = false): string {
    const path = join(this.dir, name);
    writeFileSync(path, text);
    if (executable) chmodSync(path, 0o755);
    return path;
  }

  read(name: string): string {
    const path = join(this.dir, name);
    return existsSync(path) ? readFileSync(path, "utf8") : "";
  }

  /** Lines a job appended to `trace` (the tools below write `<what>` per run). */
  trace(): string[] {
    return this.read("trace").split("\n").filter(Boolean);
  }

  /** Starts `slipway ...args` in the project directory. */
  start(args: readonly string[], env: NodeJS.ProcessEnv = {}): Running {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: this.dir,
      env: { ...process.env, SLIPWAY_DB: undefined, SLIPWAY_LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    const listeners = new Set<() => void>();
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      for (const listener of listeners) listener();
    });
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => {
      stderr += chunk;
      for (const listener of listeners) listener();
    });
    const done = new Promise<Result>((resolve) => {
      child.on("close", (code, signal) => {
        children.delete(child);
        for (const listener of listeners) listener();
        resolve({ code, signal, stdout, stderr });
      });
    });
    return {
      child,
      get stdout() {
        return stdout;
      },
      get stderr() {
        return stderr;
      },
      done,
      waitFor(pattern, ms = 15_000) {
        return new Promise((resolve, reject) => {
          const check = () => {
            const match = stdout.match(pattern) ?? stderr.match(pattern);
            if (match) {
              cleanup();
              resolve(match);
            } else if (child.exitCode !== null || child.signalCode !== null) {
              cleanup();
              reject(
                new Error(
                  `slipway exited before printing ${pattern}\nstdout:\n${stdout}\nstderr:\n${stderr}`,
                ),
              );
            }
          };
          const timer = setTimeout(() => {
            cleanup();
            reject(new Error(`no ${pattern} within ${ms} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
          }, ms);
          const cleanup = () => {
            clearTimeout(timer);
            listeners.delete(check);
          };
          listeners.add(check);
          check();
        });
      },
    };
  }

  /** Runs `slipway ...args` to the end (at most `ms`). */
  async run(args: readonly string[], env: NodeJS.ProcessEnv = {}, ms = 30_000): Promise<Result> {
    const running = this.start(args, env);
    const timer = setTimeout(() => running.child.kill("SIGKILL"), ms);
    try {
      const result = await running.done;
      if (result.signal === "SIGKILL")
        throw new Error(
          `slipway ${args.join(" ")} did not end within ${ms} ms\n${result.stdout}\n${result.stderr}`,
        );
      return result;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The run id `slipway run` prints first. */
export function runId(stdout: string): string {
  const match = /^run (\S+)/m.exec(stdout);
  if (!match) throw new Error(`no run id in:\n${stdout}`);
  return match[1]!;
}

/** Pids of processes whose command line contains `text` (from /proc), excluding this test process. */
export function processesWith(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      if (state !== "Z" && cmdline.includes(text) && Number(entry) !== process.pid) pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
