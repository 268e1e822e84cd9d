/** Linux /proc readers and process-group termination shared by the shell runner and the orphan sweep (Linux only). */
import { existsSync, readdirSync, readFileSync } from "node:fs";

export interface ProcStat {
  pid: number;
  /** Field 3: R, S, D, Z, ... */
  state: string;
  /** Field 5. */
  pgid: number;
  /** Field 22: clock ticks since boot; with the pid it names one process across pid reuse. */
  startTime: number;
}

/** Parses /proc/<pid>/stat; undefined if the process is gone (or /proc is unavailable). */
export function readProcStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // Field 2 (comm) is parenthesised and may itself contain spaces and parentheses: split after the last ")".
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  const pgid = Number(fields[2]);
  const startTime = Number(fields[19]);
  if (!state || !Number.isInteger(pgid) || !Number.isInteger(startTime)) return undefined;
  return { pid, state, pgid, startTime };
}

/**
 * The live processes whose process group is `pgid`. Zombies are left out: they hold no resources, can't be
 * killed, and an init that doesn't reap (as in some containers) would otherwise keep a group "alive" forever.
 */
export function groupMembers(pgid: number): ProcStat[] {
  // The usual answer, "nobody left", costs one syscall instead of a read of every process.
  if (!groupExists(pgid)) return [];
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return [];
  }
  const members: ProcStat[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid);
    if (stat && stat.pgid === pgid && stat.state !== "Z") members.push(stat);
  }
  return members;
}

/** Whether any process (a zombie included) is in the group. */
function groupExists(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Samples the resident memory of whole process groups. Each tick walks every watched group's process
 * tree from its leader (the kernel's children lists): a few reads per job, not a read of every process
 * on a busy machine. A member no longer below its leader (its parent exited, it was re-parented) is not
 * counted. Where the kernel lists no children, a tick is one pass over `/proc` that serves every group.
 */
export class GroupSampler {
  readonly #watched = new Map<number, (rssBytes: number) => void>();
  readonly #everyMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(everyMs: number) {
    this.#everyMs = everyMs;
  }

  /** Calls `onSample` with the group's total RSS every tick until the returned function is called. */
  watch(pgid: number, onSample: (rssBytes: number) => void): () => void {
    this.#watched.set(pgid, onSample);
    this.#timer ??= setInterval(() => this.#tick(), this.#everyMs);
    return () => {
      this.#watched.delete(pgid);
      if (this.#watched.size === 0 && this.#timer) {
        clearInterval(this.#timer);
        this.#timer = undefined;
      }
    };
  }

  #tick(): void {
    const totals = walkTotals([...this.#watched.keys()]) ?? scanTotals(this.#watched);
    if (!totals) return;
    for (const [pgid, onSample] of this.#watched) onSample(totals.get(pgid) ?? 0);
  }
}

/** Whether /proc/<pid>/task/<tid>/children exists (CONFIG_PROC_CHILDREN); learned on first use. */
let childrenListed: boolean | undefined;

/** Each group's RSS, from its leader's process tree; undefined where the kernel does not list children. */
function walkTotals(groups: readonly number[]): Map<number, number> | undefined {
  if (childrenListed === false) return undefined;
  const totals = new Map<number, number>();
  for (const pgid of groups) {
    let total = 0;
    const pending = [pgid];
    for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
      const stat = readProcStat(pid);
      if (!stat) continue;
      if (stat.pgid === pgid && stat.state !== "Z") total += rssBytes(pid);
      const children = childrenOf(pid);
      if (children === undefined) return undefined;
      pending.push(...children);
    }
    totals.set(pgid, total);
  }
  return totals;
}

/** The children of every thread of `pid`; [] when it is gone, undefined when the kernel does not list them. */
function childrenOf(pid: number): number[] | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return [];
  }
  const children: number[] = [];
  for (const tid of tasks) {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "ENOENT" || childrenListed === true) continue;
      // Is it this thread that is gone, or the file that never exists? The latter once, for good.
      childrenListed = existsSync(`/proc/${pid}/task/${tid}`) ? false : undefined;
      if (childrenListed === false) return undefined;
      continue;
    }
    childrenListed = true;
    for (const child of text.split(" ")) {
      const id = Number.parseInt(child, 10);
      if (id > 0) children.push(id);
    }
  }
  return children;
}

/** Each watched group's RSS, from one pass over every process. */
function scanTotals(watched: ReadonlyMap<number, unknown>): Map<number, number> | undefined {
  let names: string[];
  try {
    names = readdirSync("/proc");
  } catch {
    return undefined;
  }
  const totals = new Map<number, number>();
  for (const name of names) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0) continue;
    const stat = readProcStat(pid);
    if (!stat || stat.state === "Z" || !watched.has(stat.pgid)) continue;
    totals.set(stat.pgid, (totals.get(stat.pgid) ?? 0) + rssBytes(pid));
  }
  return totals;
}

/** Resident memory of one process in bytes (VmRSS), 0 if gone. */
export function rssBytes(pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

let cachedBootId: string | undefined;

/** This boot's id: pids and start times recorded under another boot id mean nothing now. */
export function bootId(): string | undefined {
  if (cachedBootId === undefined) {
    try {
      cachedBootId = readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim();
    } catch {
      return undefined;
    }
  }
  return cachedBootId;
}

/** Sends a signal to a whole group; false if no process received it. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    // ESRCH: the group is already empty; EPERM: not ours to signal. Either way nothing more to do here.
    return false;
  }
}

const POLL_MS = 20;
/** After SIGKILL, how long to wait for the kernel to tear processes down (a process in D state may linger). */
const KILL_WAIT_MS = 2_000;

/** Between reads of every process while a group still has members (only zombies, maybe). */
const SCAN_EVERY_MS = 250;

/**
 * Polls until the group has no live member; false if `ms` passed first. Each poll is one signal 0 to
 * the group; only while that finds someone is every process read (to leave zombies out), and not on
 * every poll: a server stopping hundreds of jobs at once would otherwise read all of /proc hundreds of
 * times every 20 ms.
 */
export async function waitGroupGone(pgid: number, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  let scanned = 0;
  for (;;) {
    if (!groupExists(pgid)) return true;
    if (Date.now() - scanned >= SCAN_EVERY_MS) {
      scanned = Date.now();
      if (groupMembers(pgid).length === 0) return true;
    }
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) =>
      setTimeout(resolve, Math.min(POLL_MS, Math.max(1, deadline - Date.now()))),
    );
  }
}

/**
 * SIGTERM to the group, SIGKILL after `graceMs` if anything is left. Resolves true once no live member
 * remains, false if some survived even SIGKILL for a while. Callers check beforehand that the group is theirs.
 */
export async function terminateGroup(pgid: number, graceMs: number): Promise<boolean> {
  if (groupMembers(pgid).length === 0) return true;
  signalGroup(pgid, "SIGTERM");
  if (await waitGroupGone(pgid, graceMs)) return true;
  signalGroup(pgid, "SIGKILL");
  return waitGroupGone(pgid, KILL_WAIT_MS);
}
