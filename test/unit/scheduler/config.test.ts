/** The server config file: pools, locks, work dir and key weights; defaults from the machine; problems at file:line:col. */
import { writeFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { NotFoundError } from "../../../src/errors.js";
import { formatProblem } from "../../../src/problems.js";
import {
  ConfigError,
  loadServerConfig,
  type Machine,
  parseServerConfig,
} from "../../../src/scheduler/config.js";
import { volumeFreeBytes, volumeSizeBytes } from "../../../src/scheduler/disk.js";
import { tempDir } from "../../helpers.js";
import { GiB } from "./helpers.js";

const MACHINE: Machine = { memoryBytes: () => 8 * GiB, cpu: () => 4, diskBytes: () => 100 * GiB };

/** Every problem of a config text, formatted as the server prints them. */
function problems(source: string): string[] {
  try {
    parseServerConfig(source, "server.yml", "/data", MACHINE);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.map(formatProblem);
  }
  throw new Error("expected the config to be rejected");
}

describe("server config", () => {
  it("without a file, every pool is what the machine has and disk is checked on the data dir", () => {
    const dataDir = tempDir();
    const config = loadServerConfig(undefined, dataDir);
    expect(config).toEqual({
      capacity: {
        memoryBytes: totalmem(),
        cpu: availableParallelism(),
        diskBytes: volumeSizeBytes(dataDir),
        locks: {},
      },
      workDir: resolve(dataDir),
      weights: {},
    });
    expect(config.capacity.diskBytes).toBeGreaterThan(0);
  });

  it("reads sizes, cpus, locks, the work dir (relative to the file) and key weights", () => {
    const dir = tempDir();
    const file = join(dir, "server.yml");
    writeFileSync(
      file,
      [
        "resources: { memory: 16GiB, cpu: 2, disk: 50GiB }",
        "locks: { swarm: 1, registry: 3 }",
        "work_dir: work",
        "keys: { recipe-a: { weight: 2 }, recipe-b: { weight: 0.5 } }",
      ].join("\n"),
    );
    expect(loadServerConfig(file, "/data", MACHINE)).toEqual({
      capacity: { memoryBytes: 16 * GiB, cpu: 2, diskBytes: 50 * GiB, locks: { swarm: 1, registry: 3 } },
      workDir: join(dir, "work"),
      weights: { "recipe-a": 2, "recipe-b": 0.5 },
    });
  });

  it("fills in only the pools left out, and the disk default comes from the work dir's volume", () => {
    const seen: string[] = [];
    const machine: Machine = {
      ...MACHINE,
      diskBytes: (dir) => {
        seen.push(dir);
        return 7 * GiB;
      },
    };
    const config = parseServerConfig(
      "resources: { cpu: 1.5 }\nwork_dir: /srv/work\n",
      "s.yml",
      "/data",
      machine,
    );
    expect(config.capacity).toEqual({ memoryBytes: 8 * GiB, cpu: 1.5, diskBytes: 7 * GiB, locks: {} });
    expect(seen).toEqual(["/srv/work"]);
  });

  it("an empty file or one with only comments means all defaults", () => {
    expect(parseServerConfig("# nothing yet\n", "s.yml", "/data", MACHINE).capacity.cpu).toBe(4);
  });

  it("a bad unit is reported at its line and column with what to write", () => {
    expect(problems("locks: { swarm: 1 }\nresources:\n  memory: 16 gigs\n")).toEqual([
      "server.yml:3:11: `resources.memory`: bad size `16 gigs`: use a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `4GiB`",
    ]);
    expect(problems("resources: { disk: 50G }")).toEqual([
      "server.yml:1:20: `resources.disk`: bad size `50G`: use a number and a unit (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), e.g. `50GiB`",
    ]);
  });

  it("every problem is reported at once, in file order, with suggestions for typos", () => {
    expect(
      problems(
        [
          "resources: { memroy: 1GiB, cpu: 0 }",
          "locks: { swarm: 0, bad.name: 1 }",
          "keys: { a: { weight: -1 }, b: { wieght: 2 } }",
          "workdir: /x",
        ].join("\n"),
      ),
    ).toEqual([
      "server.yml:1:14: unknown key `memroy` in `resources` (did you mean `memory`?)",
      "server.yml:1:33: `resources.cpu` must be a number greater than 0, got `0`",
      "server.yml:2:17: lock `swarm` (how many jobs may hold it at once) must be a whole number 1 or more, got `0`",
      "server.yml:2:20: lock name `bad.name` is not valid: use letters, digits, `-` and `_`",
      "server.yml:3:22: `weight` of key `a` must be a number greater than 0, got `-1`",
      "server.yml:3:33: unknown key `wieght` in key `b` (did you mean `weight`?)",
      "server.yml:4:1: unknown key `workdir` in the config (did you mean `work_dir`?)",
    ]);
  });

  it("YAML syntax errors and a config that is not a map are reported", () => {
    expect(problems("resources: { memory: 1GiB")[0]).toMatch(/^server\.yml:\d+:\d+: YAML: /);
    expect(problems("- memory")).toEqual([
      "server.yml:1:1: the config must be a map (`resources:`, `locks:`...), got a list",
    ]);
  });

  it("a config file that does not exist is a NotFoundError naming it", () => {
    expect(() => loadServerConfig("/nonexistent/server.yml", "/data")).toThrow(NotFoundError);
    expect(() => loadServerConfig("/nonexistent/server.yml", "/data")).toThrow(
      "config file /nonexistent/server.yml does not exist",
    );
  });

  it("statfs of a directory not made yet reads its nearest existing parent", () => {
    const dir = join(tempDir(), "not", "made", "yet");
    expect(volumeSizeBytes(dir)).toBeGreaterThan(0);
    expect(volumeFreeBytes(dir)).toBeGreaterThanOrEqual(0);
  });
});
