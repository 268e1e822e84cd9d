/** Crash-test harness: runner processes that get SIGKILLed, bounded waits, and readers for the side file and the database. */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { type EventRecord, type RunSnapshot, SqliteStorage } from "../../../src/index.js";
import { trackChild } from "../../leaks.js";
import { eventually, WAIT_MS, within } from "../../wait.js";
import type { Go, Phase, RunnerArgs, RunnerMessage, RunRecord } from "./fixtures/protocol.js";

const here = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(here, "../../..");
const RUNNER = join(here, "fixtures", "runner.ts");

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** One runner process and what it said. */
export class Runner {
  readonly messages: RunnerMessage[] = [];
  readonly exited: Promise<Exit>;
  stderr = "";
  exit: Exit | undefined;
  #stdoutRest = "";

  constructor(
    readonly label: string,
    readonly child: ChildProcess,
  ) {
    child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (this.#stdoutRest + chunk).split("\n");
      this.#stdoutRest = lines.pop() ?? "";
      for (const line of lines) if (line.trim()) this.messages.push(JSON.parse(line) as RunnerMessage);
    });
    child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  /** Why waiting on this runner is pointless: it exited. */
  exitedReason = (): string | undefined =>
    this.exit &&
    `runner "${this.label}" exited (code ${this.exit.code}, signal ${this.exit.signal}); stderr:\n${this.stderr.slice(-4000)}`;

  /** Waits for `check`, failing fast if this runner dies meanwhile. */
  waitFor<T>(
    what: string,
    check: () => T | undefined | false | Promise<T | undefined | false>,
    timeoutMs?: number,
  ): Promise<T> {
    return eventually(check, `${what} (runner "${this.label}")`, { timeoutMs, abort: this.exitedReason });
  }

  message<K extends RunnerMessage["kind"]>(kind: K): Extract<RunnerMessage, { kind: K }> | undefined {
    return this.messages.find((m): m is Extract<RunnerMessage, { kind: K }> => m.kind === kind);
  }

  /** Lets a gated runner (see `RunnerArgs.gated`) open its executor, once it is ready. */
  async go(message: Go = {}): Promise<void> {
    await this.waitFor("it to be ready", () => this.message("ready"));
    this.child.stdin?.write(`${JSON.stringify(message)}\n`);
  }

  /** The ids of the runs it started. */
  started(): Promise<string[]> {
    return this.waitFor("its started runs", () => this.message("started")?.ids);
  }

  /** SIGKILL, then wait until the process is reaped (a zombie would still look alive to recovery). */
  async kill(): Promise<void> {
    if (!this.alive) throw new Error(`cannot kill runner "${this.label}": ${this.exitedReason()}`);
    this.child.kill("SIGKILL");
    const exit = await within(this.exited, `runner "${this.label}" to die after SIGKILL`);
    if (exit.signal !== "SIGKILL")
      throw new Error(`runner "${this.label}" ended on its own: ${this.exitedReason()}`);
  }

  /** Waits for a clean end: every awaited run ended, the executor closed, exit code 0. */
  async finished(timeoutMs = WAIT_MS): Promise<Extract<RunnerMessage, { kind: "ended" }>[]> {
    await within(this.exited, `runner "${this.label}" to finish`, timeoutMs);
    if (this.exit?.code !== 0 || !this.message("done"))
      throw new Error(`runner "${this.label}" failed: ${this.exitedReason()}`);
    return this.messages.filter((m): m is Extract<RunnerMessage, { kind: "ended" }> => m.kind === "ended");
  }
}

/** A temp folder with the database, data dir, side file and control folder of one test; disposed after it. */
export class Workspace {
  readonly dir = mkdtempSync(join(tmpdir(), "slipway-crash-"));
  readonly db = join(this.dir, "slipway.db");
  readonly dataDir = join(this.dir, "data");
  readonly sideFile = join(this.dir, "runs.jsonl");
  readonly controlDir = join(this.dir, "control");
  readonly #runners: Runner[] = [];
  readonly #storages: SqliteStorage[] = [];

  constructor() {
    mkdirSync(this.controlDir);
  }

  /** Starts a runner process labelled `proc`; bodies listed in `block` (see `blockKey`) hang until it is killed. */
  spawn(
    proc: string,
    args: Omit<RunnerArgs, "db" | "dataDir" | "env">,
    block: readonly string[] = [],
  ): Runner {
    const full: RunnerArgs = {
      db: this.db,
      dataDir: this.dataDir,
      env: { sideFile: this.sideFile, controlDir: this.controlDir, proc, block },
      ...args,
    };
    // `--import tsx` resolves from the package root, where tsx is a dev dependency.
    const child = spawn(process.execPath, ["--import", "tsx", RUNNER, JSON.stringify(full)], {
      cwd: ROOT,
      // stdin stays open for the runner's life: it exits when the pipe closes (this process died).
      stdio: ["pipe", "pipe", "pipe"],
    });
    trackChild(child, `crash runner "${proc}"`);
    const runner = new Runner(proc, child);
    this.#runners.push(runner);
    return runner;
  }

  /** Every complete line of the side file (a line being written right now is skipped). */
  runs(): RunRecord[] {
    if (!existsSync(this.sideFile)) return [];
    const text = readFileSync(this.sideFile, "utf8");
    const complete = text.slice(0, text.lastIndexOf("\n") + 1);
    return complete
      .split("\n")
      .filter((line) => line.length > 0)
      .map((line) => JSON.parse(line) as RunRecord);
  }

  /** Opens the database from the test process, as an operator's tool would. */
  async storage(): Promise<SqliteStorage> {
    const storage = new SqliteStorage({ path: this.db });
    await storage.init();
    this.#storages.push(storage);
    return storage;
  }

  async dispose(): Promise<void> {
    for (const runner of this.#runners) {
      if (runner.alive) {
        runner.child.kill("SIGKILL");
      }
    }
    try {
      for (const runner of this.#runners) await within(runner.exited, `runner "${runner.label}" to die`);
      for (const storage of this.#storages) await storage.close();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}

/** The runs of one body as `proc:event:attempt` strings, in the order they happened: easy to compare whole. */
export function trail(
  runs: readonly RunRecord[],
  runId: string,
  action: string,
  phase: Phase = "run",
): string[] {
  return runs
    .filter((r) => r.runId === runId && r.action === action && r.phase === phase)
    .map((r) => `${r.proc}:${r.event}:${r.attempt}`);
}

/** Every idempotency key the runs of one body were given. */
export function keysOf(runs: readonly RunRecord[], runId: string, action: string, phase: Phase): string[] {
  return [
    ...new Set(
      runs.filter((r) => r.runId === runId && r.action === action && r.phase === phase).map((r) => r.key),
    ),
  ];
}

/** Position of a run in the side file, to compare orders; fails if there is no such run. */
export function indexOfRun(
  runs: readonly RunRecord[],
  match: Partial<RunRecord>,
  nth: "first" | "last" = "first",
): number {
  const matches = (r: RunRecord) =>
    Object.entries(match).every(([field, value]) => r[field as keyof RunRecord] === value);
  const index = nth === "first" ? runs.findIndex(matches) : runs.findLastIndex(matches);
  if (index < 0) throw new Error(`no run matches ${JSON.stringify(match)}`);
  return index;
}

/** What the history says about one action. */
export interface ActionHistory {
  /** Attempt of each `action:started`, in order. */
  started: number[];
  /** Attempts whose `action:started` says it re-runs an attempt a dead process left running. */
  recovered: number[];
  waiting: number;
  completed: number;
  failed: number;
  /** Attempt of each `undo:started`, in order. */
  undoStarted: number[];
  undoCompleted: number;
}

export function summarize(history: readonly EventRecord[]): Map<string, ActionHistory> {
  const byAction = new Map<string, ActionHistory>();
  for (const event of history) {
    if (event.action === null) continue;
    let entry = byAction.get(event.action);
    if (!entry) {
      entry = {
        started: [],
        recovered: [],
        waiting: 0,
        completed: 0,
        failed: 0,
        undoStarted: [],
        undoCompleted: 0,
      };
      byAction.set(event.action, entry);
    }
    const attempt = typeof event.data?.attempt === "number" ? event.data.attempt : -1;
    if (event.type === "action:started") {
      entry.started.push(attempt);
      if (event.data?.recovered === true) entry.recovered.push(attempt);
    } else if (event.type === "action:waiting") entry.waiting++;
    else if (event.type === "action:completed") entry.completed++;
    else if (event.type === "action:failed") entry.failed++;
    else if (event.type === "undo:started") entry.undoStarted.push(attempt);
    else if (event.type === "undo:completed") entry.undoCompleted++;
  }
  return byAction;
}

/** The run-level events of a history (no action), in order. */
export function lifecycle(history: readonly EventRecord[]): string[] {
  return history.filter((e) => e.action === null).map((e) => e.type);
}

/** Problems with a history's sequence numbers: they must run 1, 2, 3... with no gap or repeat. */
export function seqProblems(history: readonly EventRecord[]): string[] {
  return history.flatMap((e, i) => (e.seq === i + 1 ? [] : [`event #${i + 1} (${e.type}) has seq ${e.seq}`]));
}

/** Step statuses of a snapshot, by action. */
export function stepStatuses(snapshot: RunSnapshot | undefined): Record<string, string> {
  return Object.fromEntries((snapshot?.steps ?? []).map((s) => [s.action, `${s.status}#${s.attempt}`]));
}

/**
 * Where a snapshot's step rows and its history disagree. Both are written by the same transitions,
 * so a state left by a kill must agree with itself: a transition is all there or not at all.
 */
export function stateProblems(snapshot: RunSnapshot, history: readonly EventRecord[]): string[] {
  const problems: string[] = [];
  const summary = summarize(history);
  if (snapshot.nextEventSeq !== history.length + 1)
    problems.push(`nextEventSeq ${snapshot.nextEventSeq} after ${history.length} events`);
  for (const step of snapshot.steps) {
    const entry = summary.get(step.action);
    const where = `${step.action} (${step.status}, attempt ${step.attempt}, undo attempt ${step.undoAttempt})`;
    if (!entry) {
      problems.push(`${where} has no event`);
      continue;
    }
    if (step.attempt > 0 && entry.started.length > 0 && entry.started.at(-1) !== step.attempt)
      problems.push(`${where}: last action:started is attempt ${entry.started.at(-1)}`);
    const completed = ["completed", "undoing", "undone", "undo_failed"].includes(step.status);
    if (entry.completed !== (completed ? 1 : 0))
      problems.push(`${where}: ${entry.completed} action:completed`);
    if (step.undoAttempt !== (entry.undoStarted.at(-1) ?? 0))
      problems.push(`${where}: last undo:started is attempt ${entry.undoStarted.at(-1)}`);
    if (entry.undoCompleted !== (step.status === "undone" ? 1 : 0))
      problems.push(`${where}: ${entry.undoCompleted} undo:completed`);
  }
  const stepless = [...summary.keys()].filter((action) => !snapshot.steps.some((s) => s.action === action));
  if (stepless.length > 0) problems.push(`events of actions without a step row: ${stepless.join(", ")}`);
  return problems;
}
