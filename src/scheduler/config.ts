/**
 * The server's config file: resource pools, named locks, the work volume and per-key weights.
 *
 * ```yaml
 * resources: { memory: 16GiB, cpu: 2, disk: 50GiB }   # each defaults to what the machine has
 * locks: { swarm: 1 }
 * work_dir: /var/lib/slipway/work    # the volume disk is checked on; default: the data dir
 * keys: { recipe-a: { weight: 2 } }
 * ```
 *
 * Pools left out default to the machine: `os.totalmem()`, `os.availableParallelism()`, and the size
 * of the work volume (`statfs` of `work_dir`, which is the data dir unless set; the volume disk is
 * checked on is the one its pool should describe). A relative `work_dir` is relative to the config
 * file, so the server finds the same directory whatever directory it is started from.
 */
import { readFileSync } from "node:fs";
import { availableParallelism, totalmem } from "node:os";
import { dirname, resolve } from "node:path";
import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { NotFoundError, SlipwayError } from "../errors.js";
import { NAME, NAME_RULE } from "../names.js";
import { formatProblem, type Problem } from "../problems.js";
import { describe, type Entry, Reader } from "../yaml-reader.js";
import { Admission, type AdmissionOptions } from "./admission.js";
import { volumeFreeBytes, volumeSizeBytes } from "./disk.js";
import type { Capacity } from "./types.js";

/** `sources:` is the triggers' (triggers/config.ts reads it from the same file). */
export const CONFIG_KEYS = ["resources", "locks", "work_dir", "keys", "sources"] as const;
export const CONFIG_RESOURCES_KEYS = ["memory", "cpu", "disk"] as const;
export const CONFIG_KEY_KEYS = ["weight"] as const;

export interface ServerConfig {
  /** Pools and locks admission hands out. */
  capacity: Capacity;
  /** Absolute path of the directory whose volume disk needs are checked against. */
  workDir: string;
  /** Weight per concurrency key; keys not listed weigh 1. */
  weights: Record<string, number>;
}

/**
 * Sections of the same file that layers above the scheduler read (the server's tokens, retention...):
 * their keys, and a reader called with each such entry. Their problems go in the same list, at
 * their line and column, so the file is one format however many layers read it.
 */
export interface ConfigSections {
  keys: readonly string[];
  read(r: Reader, entry: Entry, baseDir: string): void;
}

/** What the machine has, for pools the config leaves out; injectable so tests don't depend on the host. */
export interface Machine {
  memoryBytes(): number;
  cpu(): number;
  /** Size of the volume `dir` is on. */
  diskBytes(dir: string): number;
}

export const THIS_MACHINE: Machine = {
  memoryBytes: () => totalmem(),
  cpu: () => availableParallelism(),
  diskBytes: (dir) => volumeSizeBytes(dir),
};

/** The config file has problems; `problems` lists every one, each with its line and column. */
export class ConfigError extends SlipwayError {
  readonly problems: readonly Problem[];
  constructor(problems: readonly Problem[]) {
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    const file = problems[0]?.file ?? "config";
    super("definition", `${file} has ${count}:\n${problems.map(formatProblem).join("\n")}`);
    this.problems = problems;
  }
}

/**
 * Reads the server config at `path`; with no path, everything defaults (pools from the machine, no
 * locks, disk checked on `dataDir`). Throws a {@link ConfigError} listing every problem, or a
 * {@link NotFoundError} when the file does not exist.
 */
export function loadServerConfig(
  path: string | undefined,
  dataDir: string,
  machine = THIS_MACHINE,
  sections?: ConfigSections,
): ServerConfig {
  if (path === undefined) return parseServerConfig("", "config", dataDir, machine, undefined, sections);
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new NotFoundError(`config file ${path} does not exist`);
    if (code === "EISDIR") throw new NotFoundError(`${path} is a directory, not a config file`);
    throw error;
  }
  return parseServerConfig(source, path, dataDir, machine, dirname(resolve(path)), sections);
}

/** Parses config text; `file` names it in problems, `baseDir` anchors a relative `work_dir`. */
export function parseServerConfig(
  source: string,
  file: string,
  dataDir: string,
  machine = THIS_MACHINE,
  baseDir = process.cwd(),
  sections?: ConfigSections,
): ServerConfig {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(file, source, lines, doc);
  for (const error of [...doc.errors, ...doc.warnings]) {
    r.report(r.position(error.pos[0]), `YAML: ${error.message.split("\n")[0]}`);
  }
  if (r.problems.length > 0) throw new ConfigError(r.problems);

  const pools: { memory?: number; cpu?: number; disk?: number } = {};
  const locks: Record<string, number> = {};
  const weights: Record<string, number> = {};
  let workDir = resolve(dataDir);

  const contents = doc.contents ?? undefined;
  const empty = contents === undefined || (isScalar(contents) && contents.value === null);
  if (!empty && !isMap(contents)) {
    r.report(contents, `the config must be a map (\`resources:\`, \`locks:\`...), got ${describe(contents)}`);
  } else if (!empty) {
    const keys = sections ? [...CONFIG_KEYS, ...sections.keys] : CONFIG_KEYS;
    for (const entry of r.map(contents as Node, "the config", keys)) {
      const value = entry.value;
      if (sections?.keys.includes(entry.name)) {
        sections.read(r, entry, baseDir);
      } else if (entry.name === "resources") {
        for (const pool of r.map(value, "`resources`", CONFIG_RESOURCES_KEYS)) {
          const label = `\`resources.${pool.name}\``;
          if (pool.name === "cpu") {
            const cpu = r.positiveNumber(pool.value, label);
            if (cpu !== undefined) pools.cpu = cpu;
          } else {
            const bytes = r.size(pool.value, label);
            if (bytes !== undefined) pools[pool.name as "memory" | "disk"] = bytes;
          }
        }
      } else if (entry.name === "locks") {
        for (const lock of r.map(value, "`locks`")) {
          if (!NAME.test(lock.name)) {
            r.report(lock.key, `lock name \`${lock.name}\` is not valid: use ${NAME_RULE}`);
            continue;
          }
          const slots = r.integer(lock.value, `lock \`${lock.name}\` (how many jobs may hold it at once)`, 1);
          if (slots !== undefined) locks[lock.name] = slots;
        }
      } else if (entry.name === "work_dir") {
        const dir = r.string(value, "`work_dir`");
        if (dir !== undefined) workDir = resolve(baseDir, dir);
      } else if (entry.name === "keys") {
        for (const key of r.map(value, "`keys`")) {
          for (const setting of r.map(key.value, `key \`${key.name}\``, CONFIG_KEY_KEYS)) {
            const weight = r.positiveNumber(setting.value, `\`weight\` of key \`${key.name}\``);
            if (weight !== undefined) weights[key.name] = weight;
          }
        }
      }
    }
  }
  if (r.problems.length > 0)
    throw new ConfigError([...r.problems].sort((a, b) => a.line - b.line || a.col - b.col));

  return {
    capacity: {
      memoryBytes: pools.memory ?? machine.memoryBytes(),
      cpu: pools.cpu ?? machine.cpu(),
      diskBytes: pools.disk ?? machine.diskBytes(workDir),
      locks,
    },
    workDir,
    weights,
  };
}

/** The admission a config describes: its pools, locks and key weights, disk checked on its work volume. */
export function admissionFor(
  config: ServerConfig,
  options: Pick<AdmissionOptions, "undeclaredLocks"> = {},
): Admission {
  return new Admission({
    capacity: config.capacity,
    freeDisk: () => volumeFreeBytes(config.workDir),
    weights: config.weights,
    // Others fill and free the disk too: look again now and then, not only when a job ends here.
    recheckMs: 2_000,
    ...options,
  });
}

/** The machine as one admission, for the CLI without a server: any lock a job names is exclusive. */
export function machineAdmission(dataDir: string): Admission {
  return admissionFor(loadServerConfig(undefined, dataDir), { undeclaredLocks: "exclusive" });
}
