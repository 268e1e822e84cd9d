/**
 * End-to-end harness: drives the real `slipway` binary (dist/cli/main.js, built by `npm test`) in a
 * temporary directory, with pipeline files and small fake tools written by each test.
 */
import { type ChildProcess, spawn } from "node:child_process";
import {
  chmodSync,
  existsSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach } from "vitest";
import { tempDir } from "../../helpers.js";
import { trackChild } from "../../leaks.js";
import { testDatabase } from "../../storage-backend.js";
import { eventually, WAIT_MS, within } from "../../wait.js";

const BIN = fileURLToPath(new URL("../../../dist/cli/main.js", import.meta.url));

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
  /** The run id, once printed (seeing a job's process does not mean its output has been read yet). */
  runId(): Promise<string>;
  done: Promise<Result>;
}

const children = new Set<ChildProcess>();
const projects = new Set<Project>();
afterEach(async () => {
  const running = [...children];
  children.clear();
  for (const child of running)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  await Promise.all(running.map((child) => exited(child)));
  // Jobs run in the project directory: anything still there outlived its run (the CLIs are gone).
  // A server killed mid-poll leaves its git command behind, which ends on its own: given a moment.
  const dirs = [...projects].map((project) => project.dir);
  await eventually(
    () => !dirs.some((dir) => processesIn(dir).some(({ cmdline }) => GIT.test(cmdline))),
    "git commands of killed servers to end",
    { timeoutMs: 5_000, intervalMs: 50 },
  ).catch(() => {}); // reported below as leaked
  const leaked: string[] = [];
  for (const project of projects) {
    for (const { pid, cmdline } of processesIn(project.dir)) {
      leaked.push(`${pid} ${cmdline}`);
      try {
        process.kill(pid, "SIGKILL");
      } catch {} // ended meanwhile
    }
  }
  projects.clear();
  if (leaked.length > 0) throw new Error(`processes leaked by the test (now killed):\n${leaked.join("\n")}`);
});

/** A git command line (`git ls-remote ...`, and the `git-upload-pack` a local fetch runs under a shell). */
const GIT = /^(git |\/bin\/sh -c git-)/;

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** A temporary project: a directory with a pipeline file and tools, and its own `.slipway` state. */
export class Project {
  /** Real path: it is compared with the working directories of processes. */
  readonly dir = realpathSync(tempDir());

  constructor() {
    projects.add(this);
  }

  /** Its database: `.slipway/slipway.db`, or a PostgreSQL schema of its own (test/storage-backend.ts). */
  get db(): string {
    return testDatabase(join(this.dir, ".slipway"));
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

  /** Lines jobs appended to `trace` (tools write one line per thing they did). */
  trace(): string[] {
    return this.read("trace").split("\n").filter(Boolean);
  }

  /** How many trace lines are exactly `line`. */
  count(line: string): number {
    return this.trace().filter((l) => l === line).length;
  }

  /** Writes an executable bash tool (`set -euo pipefail` is prepended) into the project. */
  tool(name: string, body: string): string {
    return this.write(name, `#!/usr/bin/env bash\nset -euo pipefail\n${body}\n`, true);
  }

  /** `slipway show RUN --json`, parsed. */
  async show(run: string): Promise<Shown> {
    const result = await this.run(["show", run, "--json"]);
    if (result.code !== 0) throw new Error(`slipway show ${run} exited ${result.code}: ${result.stderr}`);
    return JSON.parse(result.stdout) as Shown;
  }

  /** Starts `slipway ...args` in the project directory. */
  start(args: readonly string[], env: NodeJS.ProcessEnv = {}): Running {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: this.dir,
      // The project's own state: a .slipway/ in a directory above the test's must not be found instead.
      env: { ...process.env, SLIPWAY_DB: this.db, SLIPWAY_LOG_LEVEL: "info", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    trackChild(child, `slipway ${args.join(" ")}`);
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
      async runId() {
        await this.waitFor(/^(run \S+|\{)/m);
        return runId(stdout);
      },
      async waitFor(pattern, ms = WAIT_MS) {
        let check = () => {};
        const found = new Promise<RegExpMatchArray>((resolve, reject) => {
          check = () => {
            const match = stdout.match(pattern) ?? stderr.match(pattern);
            if (match) resolve(match);
            else if (child.exitCode !== null || child.signalCode !== null)
              reject(
                new Error(
                  `slipway exited before printing ${pattern}\nstdout:\n${stdout}\nstderr:\n${stderr}`,
                ),
              );
          };
        });
        listeners.add(check);
        check();
        try {
          return await within(found, `${pattern} in the output of slipway ${args.join(" ")}`, ms);
        } catch (error) {
          // Say what was printed instead.
          if (error instanceof Error && error.message.startsWith("timed out"))
            error.message += `\nstdout:\n${stdout}\nstderr:\n${stderr}`;
          throw error;
        } finally {
          listeners.delete(check);
        }
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

/** What `slipway show RUN --json` prints (the parts tests read). */
export interface Shown {
  id: string;
  status: string;
  cause:
    | { kind: "failure"; action: string; error: { message: string } }
    | { kind: "cancel"; reason: string }
    | null;
  error: { message: string } | null;
  steps: Array<{
    job: string;
    status: string;
    attempt: number;
    error: string | null;
    undoError: string | null;
    output: Record<string, { status: string; outputs: Record<string, string>; reason?: string }> | null;
  }>;
}

/**
 * A `sleep` argument no other process on the machine uses (tests and other checkouts run in
 * parallel), so `processesWith` finds exactly this test's sleeps: `301.<random digits>` seconds.
 */
export function uniqueSleep(): string {
  return `301.${String(Math.floor(Math.random() * 1e9)).padStart(9, "0")}1`;
}

/** The run id `slipway run` prints first: `run ID: pipeline, N jobs`, or `{"id":...}` with --json. */
export function runId(stdout: string): string {
  const first = stdout.split("\n", 1)[0] ?? "";
  if (first.startsWith("{")) return (JSON.parse(first) as { id: string }).id;
  const match = /^run ([^\s:]+)/m.exec(stdout);
  if (!match) throw new Error(`no run id in:\n${stdout}`);
  return match[1]!;
}

/** Live processes whose working directory is `dir` or below it (from /proc), excluding this test process. */
export function processesIn(dir: string): Array<{ pid: number; cmdline: string }> {
  const found: Array<{ pid: number; cmdline: string }> = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      // A directory removed meanwhile reads as "<path> (deleted)".
      const cwd = readlinkSync(`/proc/${entry}/cwd`).replace(/ \(deleted\)$/, "");
      if (cwd !== dir && !cwd.startsWith(`${dir}/`)) continue;
      if (isZombie(Number(entry))) continue;
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      found.push({ pid: Number(entry), cmdline });
    } catch {
      // The process ended while we looked, or is not ours to inspect.
    }
  }
  return found;
}

function isZombie(pid: number): boolean {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
}

/** Pids of processes whose command line starts with `text` (from /proc), excluding this test process. */
export function processesWith(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
      // Starts with: the shell that will run `sleep N` has it in its own command line too, before the
      // job's earlier commands (`echo deploy >> trace; sleep N`) have run.
      if (state !== "Z" && cmdline.startsWith(text) && Number(entry) !== process.pid)
        pids.push(Number(entry));
    } catch {
      // The process ended while we looked.
    }
  }
  return pids;
}
