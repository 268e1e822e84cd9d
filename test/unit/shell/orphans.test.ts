/** Orphan sweep: a job group left by a SIGKILLed process is killed; stale pid files are ignored and deleted. */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { killProcessGroup, processStartTime } from "../../../src/shell/orphans.js";
import { bootId, groupMembers } from "../../../src/shell/proc.js";
import type { ProcessIdentity } from "../../../src/shell/process.js";
import { attemptFiles, runDirectory, sweepRunOrphans } from "../../../src/shell/run-directory.js";
import { tempDir } from "../../helpers.js";
import { trackChild } from "../../leaks.js";
import { eventually, within } from "../../wait.js";

const CHILD = join(dirname(fileURLToPath(import.meta.url)), "fixtures", "run-shell-child.ts");
const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");

const children: ChildProcess[] = [];
const groups: number[] = [];

afterEach(() => {
  for (const child of children.splice(0)) child.kill("SIGKILL");
  for (const pgid of groups.splice(0)) {
    try {
      process.kill(-pgid, "SIGKILL");
    } catch {}
  }
});

/** A live `sleep` leading its own group, killed after the test. */
function sleeper(): number {
  const child = spawn("sleep", ["30"], { detached: true, stdio: "ignore" });
  groups.push(child.pid!);
  return child.pid!;
}

function writePidFile(path: string, identity: ProcessIdentity): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, JSON.stringify(identity));
}

describe("processStartTime", () => {
  it("reads a live process's start time, undefined once it is gone", () => {
    expect(processStartTime(process.pid)).toBeGreaterThan(0);
    const gone = spawnSync("true").pid;
    expect(processStartTime(gone)).toBeUndefined();
  });
});

describe("sweepRunOrphans", () => {
  it("kills the job group of a runner that was SIGKILLed, grandchildren included, and deletes its pid file", async () => {
    const dir = tempDir();
    const { pid: pidFile } = attemptFiles(dir, "r1", "build", "run", 1);
    // `--import tsx` resolves from the package root, where tsx is a dev dependency.
    const runner = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        CHILD,
        JSON.stringify({ script: "sleep 300 &\nsleep 300", cwd: dir, logFile: join(dir, "log"), pidFile }),
      ],
      { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
    );
    children.push(runner);
    trackChild(runner, "the runner of a job");
    let announced = "";
    runner.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      announced += chunk;
    });
    const line = await eventually(
      () => announced.slice(0, Math.max(0, announced.indexOf("\n"))),
      "the runner to spawn its job",
      15_000,
    );
    const identity = JSON.parse(line) as ProcessIdentity;
    groups.push(identity.pgid);
    expect(JSON.parse(readFileSync(pidFile, "utf8"))).toEqual(identity);
    // Both sleeps started (the shell and its background job), so the group outlives the shell's exec.
    await eventually(() => groupMembers(identity.pgid).length >= 2, "both sleeps to start");

    const exited = new Promise((resolve) => runner.once("exit", resolve));
    runner.kill("SIGKILL");
    await within(exited, "the runner to die");
    expect(groupMembers(identity.pgid).length).toBeGreaterThanOrEqual(2); // orphaned, still running

    const found = await within(sweepRunOrphans(dir, "r1", 1_000), "the sweep");
    expect(found).toEqual([{ pidFile, identity, killed: expect.any(Number) }]);
    expect(found[0]!.killed).toBeGreaterThanOrEqual(2);
    expect(groupMembers(identity.pgid)).toEqual([]);
    expect(existsSync(pidFile)).toBe(false);
  });

  it("ignores and deletes pid files whose group is gone, reused, or from another boot", async () => {
    const dir = tempDir();
    const live = sleeper();
    const liveStart = processStartTime(live)!;
    const dead = spawnSync("true").pid;
    const run = runDirectory(dir, "r1");
    const files = {
      dead: join(run, "dead.pid"),
      reused: join(run, "reused.pid"),
      rebooted: join(run, "rebooted.pid"),
      garbage: join(run, "garbage.pid"),
    };
    writePidFile(files.dead, { pgid: dead, startTime: 1, bootId: bootId() });
    // Same pid, later start: the pid was reused by an unrelated process, which must survive.
    writePidFile(files.reused, { pgid: live, startTime: liveStart - 1, bootId: bootId() });
    writePidFile(files.rebooted, {
      pgid: live,
      startTime: liveStart,
      bootId: "00000000-0000-0000-0000-000000000000",
    });
    writeFileSync(files.garbage, "{not json");
    writeFileSync(join(run, "notes.txt"), "not a pid file");
    // Another run's pid file is that run's business.
    const other = attemptFiles(dir, "r2", "build", "run", 1).pid;
    writePidFile(other, { pgid: dead, startTime: 1, bootId: bootId() });

    const found = await within(sweepRunOrphans(dir, "r1", 500), "the sweep");
    expect(found.map((f) => [f.pidFile, f.killed]).sort()).toEqual(
      [
        [files.dead, 0],
        [files.reused, 0],
        [files.rebooted, 0],
      ].sort(),
    );
    expect(processStartTime(live)).toBe(liveStart);
    for (const file of Object.values(files)) expect(existsSync(file)).toBe(false);
    expect(existsSync(join(run, "notes.txt"))).toBe(true);
    expect(existsSync(other)).toBe(true);
  });

  it("returns nothing for a directory that does not exist", async () => {
    expect(await sweepRunOrphans(tempDir(), "missing")).toEqual([]);
  });
});

describe("killProcessGroup", () => {
  it("kills a group that is still ours", async () => {
    const live = sleeper();
    const killed = await within(
      killProcessGroup({ pgid: live, startTime: processStartTime(live)!, bootId: bootId() }, 500),
      "the kill",
    );
    expect(killed).toBe(1);
    expect(groupMembers(live)).toEqual([]);
  });
});
