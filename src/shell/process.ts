/** Runs one shell job attempt as a child process group: logged, masked, bounded in time, and leaving nothing behind. */
import {
  accessSync,
  closeSync,
  constants,
  createWriteStream,
  open as fsOpen,
  write as fsWrite,
  ftruncateSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { mkdir, readFile, stat, unlink } from "node:fs/promises";
import { delimiter, dirname, join } from "node:path";
import type { Readable } from "node:stream";
import { promisify } from "node:util";
import { diskFullError } from "../errors.js";
import { type JobProcess, type Launcher, startProcess } from "./launcher.js";
import { bootId, GroupSampler, readProcStat, terminateGroup } from "./proc.js";

/** Names one process group across pid reuse and reboots (Linux /proc semantics). */
export interface ProcessIdentity {
  /** The group leader's pid, which is also the group id. */
  pgid: number;
  /** Field 22 of /proc/<pgid>/stat: the leader's start, in clock ticks since boot. */
  startTime: number;
  /** /proc/sys/kernel/random/boot_id when recorded; a different one means the group died with the machine. */
  bootId?: string;
  /**
   * The Slipway process that started the job (pid and start time), when recorded: once it is gone,
   * the group is an orphan whoever continues the run (orphans.ts, `sweepOrphansOfTheDead`).
   */
  runner?: { pid: number; startTime: number };
}

export interface ShellOptions {
  /** Run as `bash -e -o pipefail -c SCRIPT` (`sh -e -c SCRIPT` when there is no bash on PATH). */
  script: string;
  cwd: string;
  /** The complete environment: nothing of process.env is added. */
  env: Record<string, string>;
  /** Per-attempt log, appended to; each line is `<ISO time> <out|err> <text>`. */
  logFile: string;
  /** Put in $SLIPWAY_OUTPUT (created empty before start) and parsed after exit. */
  outputFile?: string;
  /** Secret values, replaced by *** in the log, in onLine and in tail. */
  mask?: readonly string[];
  onLine?: (stream: "out" | "err", line: string) => void;
  /** Abort: SIGTERM to the whole group, SIGKILL after graceMs. */
  signal?: AbortSignal;
  /** Like an abort, with outcome "timeout". */
  timeoutMs?: number;
  /** Default 5000. */
  graceMs?: number;
  /** Its space taken before spawn, written right after with the ProcessIdentity as JSON; removed once the group is gone. */
  pidFile?: string;
  onSpawn?: (identity: ProcessIdentity) => void;
  /** Started by this launcher (while it is alive) instead of a fork of this process. */
  launcher?: Launcher | undefined;
}

export interface ShellResult {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  outcome: "exited" | "timeout" | "aborted";
  /** From $SLIPWAY_OUTPUT. */
  outputs: Record<string, string>;
  /** The last output lines of both streams (masked), for error messages. */
  tail: string[];
  /** Peak sum of RSS over the group's processes, sampled every ~200 ms; 0 if never sampled. */
  peakRssBytes: number;
  durationMs: number;
  /** When the process was spawned (epoch ms); undefined when it never was (aborted before). */
  spawnedAt?: number;
}

const DEFAULT_GRACE_MS = 5_000;
/** Stragglers left after the main process exited get less patience than an aborted job. */
const LEFTOVER_GRACE_MS = 1_000;
/** Once the group is gone its pipes close at once; a process that escaped the group may hold them open. */
const STREAM_DRAIN_MS = 1_000;
const TAIL_LINES = 20;
const RSS_SAMPLE_MS = 200;
/** One sampler for every job of this process. */
const sampler = new GroupSampler(RSS_SAMPLE_MS);

export async function runShell(options: ShellOptions): Promise<ShellResult> {
  const started = Date.now();
  const graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
  // The file work before the spawn is asynchronous: on a busy disk a `mkdir` or an `open` waits for
  // the journal (behind every fsync of the database), which would stall the server's event loop.
  let cwdIsDir = false;
  try {
    cwdIsDir = (await stat(options.cwd)).isDirectory();
  } catch {}
  // Without this check spawn reports a missing cwd as "spawn bash ENOENT", blaming the shell.
  if (!cwdIsDir) throw new Error(`working directory ${options.cwd} does not exist or is not a directory`);

  const env = { ...options.env };
  if (options.outputFile !== undefined) {
    // Not created up front (`>> "$SLIPWAY_OUTPUT"` creates it; a file never written is no outputs),
    // but one left from before must not count.
    try {
      await ensureDir(dirname(options.outputFile));
      await removeFile(options.outputFile);
    } catch (error) {
      throw diskFullError(error, `the job's output file ${options.outputFile}`);
    }
    env.SLIPWAY_OUTPUT = options.outputFile;
  }
  if (options.signal?.aborted) {
    return {
      exitCode: null,
      signal: null,
      outcome: "aborted",
      outputs: {},
      tail: [],
      peakRssBytes: 0,
      durationMs: 0,
    };
  }

  try {
    await ensureDir(dirname(options.logFile));
  } catch (error) {
    throw diskFullError(error, `the job's log directory ${dirname(options.logFile)}`);
  }
  let pidFile: ReservedFile | undefined;
  try {
    if (options.pidFile !== undefined) pidFile = await reserve(options.pidFile);
  } catch (error) {
    throw diskFullError(error, `the job's pid file ${options.pidFile}`);
  }
  const log = createWriteStream(options.logFile, { flags: "a" });
  // On 'close', not end's callback: that can come before the 'error' of a write that failed (ENOSPC).
  const logClosed = () =>
    new Promise<void>((resolve) => {
      if (log.closed) return resolve();
      log.once("close", () => resolve());
      if (!log.destroyed) log.end();
    });

  // Set once spawned; until then there is nothing to stop.
  let pgid = 0;
  let running = false;
  let outcome: ShellResult["outcome"] = "exited";
  let stopping: Promise<boolean> | undefined;
  const stop = (why: "timeout" | "aborted") => {
    if (!running || stopping) return;
    outcome = why;
    stopping = terminateGroup(pgid, graceMs);
  };
  // A broken log, pid file or callback fails the run (after the group is stopped), never crashes the host.
  let failure: unknown;
  const fail = (error: unknown) => {
    failure ??= error;
    stop("aborted");
  };
  // A full disk under the log stops the job: its output would be lost, and the reason is the disk.
  log.on("error", (error) => fail(diskFullError(error, `the job's log ${options.logFile}`)));

  const mask = masker(options.mask ?? []);
  const tail: string[] = [];
  const emit = (stream: "out" | "err", raw: string) => {
    const line = mask(raw);
    log.write(`${new Date().toISOString()} ${stream} ${line}\n`);
    tail.push(line);
    if (tail.length > TAIL_LINES) tail.shift();
    try {
      options.onLine?.(stream, line);
    } catch (error) {
      fail(error);
    }
  };

  const [shell, args] = shellCommand(options.script, env.PATH ?? "");
  const spawnedAt = Date.now();
  let child: JobProcess;
  try {
    const record = pidFile && {
      temp: pidFile.temp,
      path: options.pidFile!,
      identity: { bootId: bootId(), runner: thisProcess() },
    };
    child = await startProcess(
      shell,
      args,
      { cwd: options.cwd, env, ...(record && { record }) },
      options.launcher,
    );
  } catch (error) {
    pidFile?.discard();
    await logClosed();
    throw new Error(`could not start ${shell} in ${options.cwd}: ${(error as Error).message}`, {
      cause: error,
    });
  }
  child.onError(fail);
  const drained = Promise.all([
    readLines(child.stdout, (line) => emit("out", line)),
    readLines(child.stderr, (line) => emit("err", line)),
  ]);

  // Started detached (setsid before exec): the child leads a group whose id is its pid.
  pgid = child.pid;
  running = true;
  const identity: ProcessIdentity = {
    pgid,
    startTime: child.startTime,
    bootId: bootId(),
    runner: thisProcess(),
  };
  try {
    // Written by the launcher that started it already, unless it was started here.
    if (child.recorded === true) pidFile?.close();
    else if (child.recorded !== undefined) {
      pidFile?.discard();
      throw child.recorded;
    } else pidFile?.commit(`${JSON.stringify(identity)}\n`);
    options.onSpawn?.(identity);
  } catch (error) {
    fail(diskFullError(error, `the job's pid file ${options.pidFile}`));
  }

  let peakRssBytes = 0;
  const unwatch = sampler.watch(pgid, (total) => {
    peakRssBytes = Math.max(peakRssBytes, total);
  });

  const onAbort = () => stop("aborted");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  if (options.signal?.aborted) onAbort(); // aborted while spawning
  const timer =
    options.timeoutMs === undefined ? undefined : setTimeout(() => stop("timeout"), options.timeoutMs);

  const [exitCode, signal] = await child.exited;
  running = false;
  if (child.lost) failure ??= child.lost;
  unwatch();
  clearTimeout(timer);
  options.signal?.removeEventListener("abort", onAbort);

  // Background processes of the job (`cmd &`) outlive the shell; none may survive the attempt.
  const groupGone = await (stopping ?? terminateGroup(pgid, Math.min(graceMs, LEFTOVER_GRACE_MS)));
  if (!(await settlesWithin(drained, STREAM_DRAIN_MS))) child.destroyStreams();
  await logClosed();
  // Keep the pid file while something survived even SIGKILL, so a later sweep can retry.
  if (options.pidFile !== undefined && groupGone) await removeFile(options.pidFile);
  if (failure !== undefined) throw failure;

  let outputs: Record<string, string> = {};
  if (options.outputFile !== undefined) {
    let text = "";
    try {
      text = await readFile(options.outputFile, "utf8");
    } catch {} // never written (or the script removed it): no outputs
    const parsed = parseOutputs(text);
    // A failed script may have been cut off mid-write; its own failure is the error worth reporting.
    if (parsed.problems.length > 0 && outcome === "exited" && exitCode === 0) {
      throw new Error(`invalid $SLIPWAY_OUTPUT (${options.outputFile}): ${parsed.problems.join("; ")}`);
    }
    outputs = parsed.outputs;
  }
  return {
    exitCode,
    signal,
    outcome,
    outputs,
    tail,
    peakRssBytes,
    durationMs: Date.now() - started,
    spawnedAt,
  };
}

/**
 * Parses the $SLIPWAY_OUTPUT format (GitHub Actions' $GITHUB_OUTPUT): `key=value` lines and multi-line
 * `key<<DELIM` ... `DELIM` blocks. Malformed parts are skipped and described in `problems`.
 */
export function parseOutputs(text: string): { outputs: Record<string, string>; problems: string[] } {
  const outputs: Record<string, string> = {};
  const problems: string[] = [];
  const lines = text.split("\n").map((line) => (line.endsWith("\r") ? line.slice(0, -1) : line));
  if (lines.at(-1) === "") lines.pop();
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.trim() === "") continue;
    const eq = line.indexOf("=");
    const heredoc = line.indexOf("<<");
    if (heredoc > 0 && (eq < 0 || heredoc < eq)) {
      const key = line.slice(0, heredoc);
      const delim = line.slice(heredoc + 2);
      const end = lines.indexOf(delim, i + 1);
      if (delim === "" || end < 0) {
        problems.push(`line ${i + 1}: ${key}<<${delim} has no closing ${JSON.stringify(delim)} line`);
        break;
      }
      outputs[key] = lines.slice(i + 1, end).join("\n");
      i = end;
    } else if (eq > 0) {
      outputs[line.slice(0, eq)] = line.slice(eq + 1);
    } else {
      problems.push(`line ${i + 1}: expected key=value or key<<DELIMITER`);
    }
  }
  return { outputs, problems };
}

/** Replaces every occurrence of each secret with ***, longest first so a secret containing another is hidden whole. */
export function masker(secrets: readonly string[]): (text: string) => string {
  // Output is masked line by line, so a multi-line secret could only ever match line by line.
  const values = new Set(secrets.flatMap((s) => [s, ...(s.includes("\n") ? s.split(/\r?\n/) : [])]));
  const sorted = [...values].filter((v) => v.trim() !== "").sort((a, b) => b.length - a.length);
  if (sorted.length === 0) return (text) => text;
  const pattern = new RegExp(sorted.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join("|"), "g");
  return (text) => text.replace(pattern, "***");
}

/** The bash found on each PATH seen (null: none): looked up once, not at every job start. */
const bashOnPath = new Map<string, string | null>();

function shellCommand(script: string, path: string): [string, string[]] {
  let bash = bashOnPath.get(path);
  if (bash === undefined) {
    bash = null;
    for (const dir of path.split(delimiter)) {
      if (!dir) continue;
      try {
        accessSync(join(dir, "bash"), constants.X_OK);
        bash = join(dir, "bash");
        break;
      } catch {}
    }
    bashOnPath.set(path, bash);
  }
  return bash === null ? ["/bin/sh", ["-e", "-c", script]] : [bash, ["-e", "-o", "pipefail", "-c", script]];
}

/** Calls `onLine` per line (without \n or \r\n, final unterminated line included); resolves at end of stream. */
function readLines(stream: Readable, onLine: (line: string) => void): Promise<void> {
  // setEncoding decodes through a StringDecoder, so a multi-byte character split across chunks stays whole.
  stream.setEncoding("utf8");
  let pending = "";
  const flush = (line: string) => onLine(line.endsWith("\r") ? line.slice(0, -1) : line);
  stream.on("data", (chunk: string) => {
    const parts = (pending + chunk).split("\n");
    pending = parts.pop()!;
    for (const part of parts) flush(part);
  });
  return new Promise((resolve) => {
    const done = () => {
      if (pending !== "") flush(pending);
      pending = "";
      resolve();
    };
    stream.once("end", done);
    // Destroyed after STREAM_DRAIN_MS: keep what arrived.
    stream.once("close", done);
  });
}

/**
 * Write, then rename: a crash of this process leaves either no pid file or a complete one. No fsync:
 * the file matters only while the machine stays up (a reboot ends the job's processes too, and the
 * boot id in the file says so), and the page cache survives our own `kill -9`.
 */
/** Room for a pid file's JSON (about 100 bytes), taken before the job starts. */
const PID_FILE_BYTES = 512;

interface ReservedFile {
  /** The temporary file holding the space, renamed into place by `commit`. */
  temp: string;
  /**
   * Writes the text into the space taken, then puts the file in place at once (a rename).
   * Synchronous, so that it happens in the turn of the spawn: a `kill -9` of this process can then
   * not leave a job that no pid file names (the orphan sweep would never find it).
   */
  commit(text: string): void;
  /** Lets go of the space without touching the file: someone else wrote and renamed it. */
  close(): void;
  discard(): void;
}

/** `open` and `write` of a descriptor, off the main thread: `commit` then works on it synchronously. */
const openFd = promisify(fsOpen);
const writeFd = promisify(fsWrite);

/**
 * Takes a file's space before the job starts, in a temporary file renamed into place once written:
 * a full disk then fails the job before its command runs, never after it ran (an undo cut short
 * that way would run again, and a reader never sees a half-written file).
 */
async function reserve(path: string): Promise<ReservedFile> {
  await ensureDir(dirname(path));
  const temp = `${path}.${process.pid}.tmp`;
  const fd = await openFd(temp, "w");
  let open = true;
  const close = () => {
    if (open) closeSync(fd);
    open = false;
  };
  const discard = () => {
    close();
    rmSync(temp, { force: true });
  };
  try {
    await writeFd(fd, Buffer.alloc(PID_FILE_BYTES, " "));
  } catch (error) {
    discard();
    throw error;
  }
  return {
    temp,
    close,
    commit(text) {
      try {
        writeSync(fd, text, 0);
        ftruncateSync(fd, Buffer.byteLength(text));
        close();
        renameSync(temp, path);
      } catch (error) {
        discard();
        throw error;
      }
    },
    discard,
  };
}

/** Removes a file if it is there: one `unlink` (`rm` with `force` looks at it with `lstat` first). */
export async function removeFile(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
}

/** Directories this process made (or found) already: a job start costs no `mkdir` for them again. */
const knownDirs = new Set<string>();

async function ensureDir(dir: string): Promise<void> {
  if (knownDirs.has(dir)) return;
  await mkdir(dir, { recursive: true });
  knownDirs.add(dir);
}

async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true), limit]);
  } finally {
    clearTimeout(timer);
  }
}

let me: ProcessIdentity["runner"];

/** This process as a pid file records its jobs' runner. */
function thisProcess(): ProcessIdentity["runner"] {
  me ??= { pid: process.pid, startTime: readProcStat(process.pid)?.startTime ?? 0 };
  return me;
}
