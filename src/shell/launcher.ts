/**
 * How a job's process is started: directly (spawn from this process), or by a small long-lived
 * launcher process (launcher-main.ts) that forks it on this process's behalf and relays its output,
 * so a server's event loop never stops for a fork. Either way the job leads its own process group,
 * which this process signals, samples and sweeps itself; a launcher that fails falls back to direct.
 */
import { type ChildProcess, fork, spawn } from "node:child_process";
import { closeSync, ftruncateSync, openSync, renameSync, writeSync } from "node:fs";
import { PassThrough, type Readable } from "node:stream";
import { fileURLToPath } from "node:url";
import { readProcStat } from "./proc.js";
import type { ProcessIdentity } from "./process.js";

/** A started job process, whichever way it was started. */
export interface JobProcess {
  /** Its pid, which is also its process group's id (it was started detached: setsid). */
  pid: number;
  /** Field 22 of /proc/<pid>/stat, read while the process could not have been reaped; 0 if unknown. */
  startTime: number;
  stdout: Readable;
  stderr: Readable;
  /** Exit code and signal; both null when the outcome was lost (see `lost`). */
  exited: Promise<[number | null, NodeJS.Signals | null]>;
  /** Set when the outcome can't be known (the launcher died while the job ran). */
  lost?: Error;
  /** Stops reading its output (a process that escaped the group may hold the pipes open). */
  destroyStreams(): void;
  /** Errors after the start (a direct child's `error` event). */
  onError(listener: (error: Error) => void): void;
  /**
   * Whether its record (`StartOptions.record`) was written by the process that started it: true, or
   * why it could not be; undefined when it was not asked to (the caller writes it).
   */
  recorded?: true | Error;
}

export interface StartOptions {
  cwd: string;
  env: Record<string, string>;
  /**
   * Its pid file, written by the launcher the moment the process exists: a server killed right after
   * its job started must not leave a job no pid file names (the orphan sweep would never find it).
   * A direct start leaves it to the caller, in the same moment anyway.
   */
  record?: PidRecord;
}

/** Writes a started job's pid file into its reserved space and puts it in place (one rename). */
export function writePidRecord(record: PidRecord, pid: number, startTime: number): void {
  const identity: ProcessIdentity = { pgid: pid, startTime, ...record.identity };
  const text = `${JSON.stringify(identity)}\n`;
  const fd = openSync(record.temp, "r+");
  try {
    writeSync(fd, text, 0);
    ftruncateSync(fd, Buffer.byteLength(text));
  } finally {
    closeSync(fd);
  }
  renameSync(record.temp, record.path);
}

/** Where a job's identity goes (`temp`, space reserved, renamed to `path`) and what it says besides its pid. */
export interface PidRecord {
  temp: string;
  path: string;
  identity: Omit<ProcessIdentity, "pgid" | "startTime">;
}

/** Starts `command` detached with piped output, by `launcher` when given and alive, else directly. */
export function startProcess(
  command: string,
  args: string[],
  options: StartOptions,
  launcher?: Launcher,
): Promise<JobProcess> {
  if (launcher?.alive) return launcher.start(command, args, options);
  return startDirect(command, args, options);
}

async function startDirect(command: string, args: string[], options: StartOptions): Promise<JobProcess> {
  const child = spawn(command, args, {
    cwd: options.cwd,
    env: options.env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) =>
    child.once("exit", (code, signal) => resolve([code, signal])),
  );
  await new Promise<void>((resolve, reject) => {
    child.once("spawn", resolve);
    child.once("error", reject);
  });
  const pid = child.pid!;
  return {
    pid,
    // Not reaped yet: its exit is handled by this loop, later than this line.
    startTime: readProcStat(pid)?.startTime ?? 0,
    stdout: child.stdout!,
    stderr: child.stderr!,
    exited,
    destroyStreams() {
      child.stdout!.destroy();
      child.stderr!.destroy();
    },
    onError(listener) {
      child.on("error", listener);
    },
  };
}

// ---- the launcher ---------------------------------------------------------------------------------

/** What this process asks of the launcher. */
export type LauncherRequest =
  | {
      type: "spawn";
      id: number;
      command: string;
      args: string[];
      cwd: string;
      env: Record<string, string>;
      record?: PidRecord;
    }
  | { type: "destroy"; id: number };

/** What the launcher tells about a job, in order: spawned (or error), data and end per stream, exit. */
export type LauncherReply =
  | { type: "spawned"; id: number; pid: number; startTime: number; recordError?: string }
  | { type: "error"; id: number; message: string }
  | { type: "data"; id: number; stream: "out" | "err"; data: string }
  | { type: "end"; id: number; stream: "out" | "err" }
  | { type: "exit"; id: number; code: number | null; signal: NodeJS.Signals | null };

interface Pending {
  started: { resolve: (process: JobProcess) => void; reject: (error: Error) => void } | undefined;
  /** What was asked: started directly instead when the launcher goes before it started it. */
  asked: { command: string; args: string[]; options: StartOptions };
  process: JobProcess;
  stdout: PassThrough;
  stderr: PassThrough;
  exit: (result: [number | null, NodeJS.Signals | null]) => void;
  /** Streams ended and exit seen: the job is forgotten once both streams ended and it exited. */
  ended: number;
  exited: boolean;
}

/** The launcher's program next to this module: compiled, or (tests run the sources) through tsx. */
const SOURCE = import.meta.url.endsWith(".ts");
const MAIN = fileURLToPath(new URL(`./launcher-main.${SOURCE ? "ts" : "js"}`, import.meta.url));

export class Launcher {
  readonly #child: ChildProcess;
  readonly #jobs = new Map<number, Pending>();
  #nextId = 1;
  #alive = true;
  #exited: Promise<void>;

  private constructor(child: ChildProcess) {
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    child.on("message", (reply: LauncherReply) => this.#onReply(reply));
    // A launcher that can't start, or dies, leaves later jobs to direct spawns; the jobs it had
    // started lose their output pipes (as with a server that dies) and their outcome.
    const down = (why: string) => {
      if (!this.#alive) return;
      this.#alive = false;
      for (const [id, job] of this.#jobs) this.#lose(id, job, why);
    };
    child.once("error", (error) => down(`the job launcher failed: ${error.message}`));
    child.once("exit", (code, signal) => down(`the job launcher exited (${signal ?? `code ${code}`})`));
  }

  /** Starts a launcher process; it ends with this process or at close(). */
  static start(): Launcher {
    // No execArgv of ours (a profiler, a preload) in a process that only forks; its working directory
    // is none of ours (jobs get theirs), so it never holds a project's directory (from sources, tsx is
    // found from ours).
    const child = fork(MAIN, [], {
      cwd: SOURCE ? process.cwd() : "/",
      execArgv: SOURCE ? ["--import", "tsx"] : [],
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    // It must not keep this process alive, and neither may its channel.
    child.unref();
    (child.channel as { unref?: () => void } | undefined)?.unref?.();
    return new Launcher(child);
  }

  get alive(): boolean {
    return this.#alive;
  }

  /** The launcher process's pid: the parent of the jobs it starts. */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  start(command: string, args: string[], options: StartOptions): Promise<JobProcess> {
    const id = this.#nextId++;
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let exit!: Pending["exit"];
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => (exit = resolve));
    const destroy = () => {
      stdout.destroy();
      stderr.destroy();
      if (this.#alive) this.#send({ type: "destroy", id });
    };
    const process: JobProcess = {
      pid: 0,
      startTime: 0,
      stdout,
      stderr,
      exited,
      destroyStreams: destroy,
      onError() {},
    };
    return new Promise((resolve, reject) => {
      this.#jobs.set(id, {
        started: { resolve, reject },
        asked: { command, args, options },
        process,
        stdout,
        stderr,
        exit,
        ended: 0,
        exited: false,
      });
      this.#send({
        type: "spawn",
        id,
        command,
        args,
        cwd: options.cwd,
        env: options.env,
        ...(options.record && { record: options.record }),
      });
    });
  }

  /** Stops the launcher (jobs it started keep running in their own groups, as after a direct spawn). */
  async close(): Promise<void> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) {
      // Unref'd while it serves (it must not keep a finished process alive): waiting for its exit
      // needs it ref'd again, or a process with nothing else left to do ends before it hears the exit.
      this.#child.ref();
      this.#child.disconnect();
      await this.#exited;
    }
    this.#alive = false;
  }

  #send(request: LauncherRequest): void {
    this.#child.send(request);
  }

  #onReply(reply: LauncherReply): void {
    const job = this.#jobs.get(reply.id);
    if (!job) return;
    switch (reply.type) {
      case "spawned":
        job.process.pid = reply.pid;
        job.process.startTime = reply.startTime;
        if (job.asked.options.record)
          job.process.recorded = reply.recordError === undefined ? true : new Error(reply.recordError);
        job.started?.resolve(job.process);
        job.started = undefined;
        return;
      case "error":
        // After the start, an error is about the pipes; the exit still comes.
        if (!job.started) return;
        this.#jobs.delete(reply.id);
        job.started.reject(new Error(reply.message));
        job.started = undefined;
        return;
      case "data":
        (reply.stream === "out" ? job.stdout : job.stderr).write(reply.data);
        return;
      case "end":
        (reply.stream === "out" ? job.stdout : job.stderr).end();
        job.ended++;
        break;
      case "exit":
        job.exited = true;
        job.exit([reply.code, reply.signal]);
        break;
    }
    if (job.exited && job.ended === 2) this.#jobs.delete(reply.id);
  }

  #lose(id: number, job: Pending, why: string): void {
    this.#jobs.delete(id);
    if (job.started) {
      const { command, args, options } = job.asked;
      startDirect(command, args, options).then(job.started.resolve, job.started.reject);
      return;
    }
    job.process.lost = new Error(`${why}: the job's outcome is unknown`);
    job.stdout.end();
    job.stderr.end();
    job.exit([null, null]);
  }
}
