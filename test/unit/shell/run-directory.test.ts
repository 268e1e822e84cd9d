/** The run directory's layout: attempt files, log listing, the follower mark, and what the orphan sweep may touch. */
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  attemptFiles,
  followerFile,
  listLogFiles,
  runDirectory,
  sweepRunOrphans,
} from "../../../src/shell/run-directory.js";
import { tempDir } from "../../helpers.js";

function touch(path: string, text = ""): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

describe("run directory", () => {
  it("keeps a run's files under <dataDir>/logs/<run id>", () => {
    expect(runDirectory("/data", "r1")).toBe(join("/data", "logs", "r1"));
    expect(followerFile("/data", "r1")).toBe(join("/data", "logs", "r1", "follower.json"));
  });

  it("names an attempt's log, pid file and outputs after the job, phase and attempt", () => {
    const dir = join("/data", "logs", "r1");
    expect(attemptFiles("/data", "r1", "build.linux", "run", 2)).toEqual({
      log: join(dir, "build.linux.2.log"),
      pid: join(dir, "build.linux.2.log.pid"),
      outputs: join(dir, "build.linux.2.log.outputs"),
    });
    expect(attemptFiles("/data", "r1", "deploy", "undo", 1).log).toBe(join(dir, "deploy.undo.1.log"));
    expect(attemptFiles("/data", "r1", "deploy", "cleanup", 2).log).toBe(join(dir, "deploy.cleanup.2.log"));
    // Every check of a poll appends to one file.
    expect(attemptFiles("/data", "r1", "wait", "poll", 7).log).toBe(join(dir, "wait.poll.log"));
  });

  it("lists the log files it named, and nothing else", () => {
    const data = tempDir();
    const logs = [
      attemptFiles(data, "r1", "build.linux", "run", 2),
      attemptFiles(data, "r1", "deploy", "undo", 1),
      attemptFiles(data, "r1", "wait", "poll", 3),
      attemptFiles(data, "r1", "deploy", "cleanup", 2),
    ];
    for (const files of logs) {
      touch(files.log);
      touch(files.pid, "{}");
      touch(files.outputs);
    }
    touch(followerFile(data, "r1"), "{}");
    const listed = listLogFiles(data, "r1").sort((a, b) => a.path.localeCompare(b.path));
    expect(listed).toEqual([
      { action: "build.linux", phase: "run", attempt: 2, path: logs[0]!.log },
      { action: "deploy", phase: "cleanup", attempt: 2, path: logs[3]!.log },
      { action: "deploy", phase: "undo", attempt: 1, path: logs[1]!.log },
      { action: "wait", phase: "poll", attempt: 1, path: logs[2]!.log },
    ]);
    expect(listLogFiles(data, "r1", ["deploy"]).map((f) => f.action)).toEqual(["deploy", "deploy"]);
    expect(listLogFiles(data, "never-ran")).toEqual([]);
  });

  it("sweeps pid files only: the follower mark stays", async () => {
    const data = tempDir();
    const { pid } = attemptFiles(data, "r1", "build", "run", 1);
    touch(pid, "{not json");
    touch(followerFile(data, "r1"), JSON.stringify({ pid: 1, startTime: 1 }));
    expect(await sweepRunOrphans(data, "r1")).toEqual([]);
    expect(listLogFiles(data, "r1")).toEqual([]);
    expect(existsSync(pid)).toBe(false);
    expect(existsSync(followerFile(data, "r1"))).toBe(true);
  });
});
