/**
 * The server's config file as a whole: the scheduler's sections (resources, locks, work_dir, keys:
 * scheduler/config.ts) plus the server's own, read here in the same pass so problems in any of them
 * come together, each at its line and column.
 *
 * ```yaml
 * tokens:                      # who may call the API; each token stored as its hash
 *   ci:    { role: operate, hash: "sha256:9f86d08…" }
 *   alice: { role: admin,   hash: "sha256:60303ae…" }
 * retention: 30d               # or { older_than: 30d, every: 1h }: ended runs older than that go
 * job_env: [AWS_PROFILE, "PIP_*"]   # more variables a job may inherit from the server's environment
 * public_url: https://ci.example.org   # where people reach the server (links in reports to forges)
 * metrics: { public: true }    # GET /metrics without a token (default: a `read` token)
 * max_runs: 20                 # runs this worker holds at once; on PostgreSQL the rest wait for any worker with room
 * ```
 */
import { createHash } from "node:crypto";
import { isMap, isScalar } from "yaml";
import { NAME, NAME_RULE } from "../names.js";
import { SERVER_JOB_ENV, SLIPWAY_CREDENTIAL } from "../pipeline/job-env.js";
import {
  type ConfigSections,
  loadServerConfig,
  parseServerConfig,
  type ServerConfig,
  THIS_MACHINE,
} from "../scheduler/config.js";
import { describe, type Reader } from "../yaml-reader.js";
import type { ConfigResponse } from "./schemas.js";

/** What a token may do; each role may do what the ones before it may. */
export const ROLES = ["read", "operate", "admin"] as const;
export type Role = (typeof ROLES)[number];

/** A named API token, kept as the hash of its text. */
export interface TokenEntry {
  name: string;
  role: Role;
  /** SHA-256 of the token's text (UTF-8), 32 bytes. */
  sha256: Buffer;
}

/** Ended runs older than `olderThanMs` are pruned every `everyMs`. */
export interface Retention {
  olderThanMs: number;
  everyMs: number;
}

export interface ServeConfig {
  /** The scheduler's part: pools, locks, work volume, key weights. */
  scheduler: ServerConfig;
  /** Named tokens and their roles; empty when the file declares none. */
  tokens: TokenEntry[];
  retention?: Retention | undefined;
  /** Names (or `PREFIX*` patterns) of variables jobs inherit beyond the default allow-list. */
  jobEnv: string[];
  /** Where people reach the server, for links to runs (`public_url:`); default: the listen address. */
  publicUrl?: string | undefined;
  /** `metrics: { public: true }`: Prometheus may scrape `GET /metrics` without a token. */
  metrics: { public: boolean };
  /**
   * `max_runs:`: runs this worker holds at once (running, or with jobs queued for admission here). On
   * PostgreSQL a run submitted while it is full waits in the database for whichever worker has room;
   * default: no limit.
   */
  maxRuns?: number | undefined;
}

export const SERVE_CONFIG_KEYS = [
  "tokens",
  "retention",
  "job_env",
  "public_url",
  "metrics",
  "max_runs",
] as const;
const METRICS_KEYS = ["public"] as const;
const TOKEN_KEYS = ["role", "hash"] as const;
const RETENTION_KEYS = ["older_than", "every"] as const;
/** How often retention looks for old runs unless told. */
export const DEFAULT_RETENTION_EVERY_MS = 60 * 60 * 1000;

const HASH = /^sha256:([0-9a-fA-F]{64})$/;
const ENV_PATTERN = /^[A-Za-z_][A-Za-z0-9_]*\*?$/;

/** The hash a config file keeps for a token: `sha256:<hex>` of its UTF-8 text. */
export function tokenHash(token: string): string {
  return `sha256:${createHash("sha256").update(token, "utf8").digest("hex")}`;
}

/** The config as `GET /config` shows it, less the tokens (the API adds those it accepts, without hashes). */
export function describeConfig(config: ServeConfig): Omit<ConfigResponse, "tokens"> {
  const { capacity, workDir, weights } = config.scheduler;
  return {
    resources: { memoryBytes: capacity.memoryBytes, cpu: capacity.cpu, diskBytes: capacity.diskBytes },
    locks: { ...capacity.locks },
    workDir,
    weights: { ...weights },
    retention: config.retention ?? null,
    jobEnv: [...SERVER_JOB_ENV, ...config.jobEnv],
  };
}

/** Reads the server config file (see {@link loadServerConfig}: ConfigError, NotFoundError), every section. */
export function loadServeConfig(
  path: string | undefined,
  dataDir: string,
  machine = THIS_MACHINE,
): ServeConfig {
  const { sections, result } = serveSections();
  const scheduler = loadServerConfig(path, dataDir, machine, sections);
  return { scheduler, ...result };
}

/** Parses config text (see {@link parseServerConfig}); `file` names it in problems. */
export function parseServeConfig(
  source: string,
  file: string,
  dataDir: string,
  machine = THIS_MACHINE,
): ServeConfig {
  const { sections, result } = serveSections();
  const scheduler = parseServerConfig(source, file, dataDir, machine, process.cwd(), sections);
  return { scheduler, ...result };
}

/** The server's own sections, as a reader the scheduler's parser calls, and what they read. */
export function serveSections(): { sections: ConfigSections; result: Omit<ServeConfig, "scheduler"> } {
  const result: Omit<ServeConfig, "scheduler"> = { tokens: [], jobEnv: [], metrics: { public: false } };
  const sections: ConfigSections = {
    keys: SERVE_CONFIG_KEYS,
    read(r, entry) {
      if (entry.name === "tokens") result.tokens = readTokens(r, entry.value);
      else if (entry.name === "retention") result.retention = readRetention(r, entry.value);
      else if (entry.name === "public_url") result.publicUrl = readPublicUrl(r, entry.value);
      else if (entry.name === "metrics") result.metrics = readMetrics(r, entry.value);
      else if (entry.name === "max_runs")
        result.maxRuns = r.integer(entry.value, "`max_runs` (runs this worker holds at once)", 1);
      else result.jobEnv = readJobEnv(r, entry.value);
    },
  };
  return { sections, result };
}

function readTokens(r: Reader, node: Parameters<Reader["map"]>[0]): TokenEntry[] {
  const tokens: TokenEntry[] = [];
  const hashes = new Map<string, string>();
  for (const token of r.map(node, "`tokens`")) {
    if (!NAME.test(token.name)) {
      r.report(token.key, `token name \`${token.name}\` is not valid: use ${NAME_RULE}`);
      continue;
    }
    let role: Role | undefined;
    let sha256: Buffer | undefined;
    const label = `token \`${token.name}\``;
    const entries = r.map(token.value, label, TOKEN_KEYS);
    for (const setting of entries) {
      if (setting.name === "role") {
        const value = r.string(setting.value, `\`role\` of ${label}`);
        if (value === undefined) continue;
        if ((ROLES as readonly string[]).includes(value)) role = value as Role;
        else
          r.report(
            setting.value,
            `\`role\` of ${label} must be one of ${ROLES.join(", ")}, got \`${value}\``,
          );
      } else {
        const value = r.string(setting.value, `\`hash\` of ${label}`);
        if (value === undefined) continue;
        const match = HASH.exec(value);
        if (!match) {
          r.report(
            setting.value,
            `\`hash\` of ${label} must be \`sha256:\` and 64 hex digits (\`slipway token hash\` prints it), got \`${value.length > 20 ? `${value.slice(0, 20)}…` : value}\``,
          );
          continue;
        }
        const hex = match[1]!.toLowerCase();
        const other = hashes.get(hex);
        if (other !== undefined) {
          r.report(setting.value, `${label} has the same hash as token \`${other}\`: one token, one name`);
          continue;
        }
        hashes.set(hex, token.name);
        sha256 = Buffer.from(hex, "hex");
      }
    }
    if (!isMap(token.value)) continue;
    if (role === undefined && !entries.some((e) => e.name === "role"))
      r.report(token.key, `${label} needs a \`role\` (${ROLES.join(", ")})`);
    if (sha256 === undefined && !entries.some((e) => e.name === "hash"))
      r.report(token.key, `${label} needs a \`hash\` (\`slipway token hash\` prints it)`);
    if (role !== undefined && sha256 !== undefined) tokens.push({ name: token.name, role, sha256 });
  }
  return tokens;
}

function readRetention(r: Reader, node: Parameters<Reader["map"]>[0]): Retention | undefined {
  if (isScalar(node)) {
    const olderThanMs = r.duration(node, "`retention` (how long ended runs are kept)");
    return olderThanMs === undefined ? undefined : { olderThanMs, everyMs: DEFAULT_RETENTION_EVERY_MS };
  }
  if (!isMap(node)) {
    r.report(
      node,
      `\`retention\` must be a duration (\`30d\`) or a map (\`older_than:\`, \`every:\`), got ${describe(node)}`,
    );
    return undefined;
  }
  let olderThanMs: number | undefined;
  let everyMs = DEFAULT_RETENTION_EVERY_MS;
  let ok = true;
  for (const entry of r.map(node, "`retention`", RETENTION_KEYS)) {
    const ms = r.duration(entry.value, `\`retention.${entry.name}\``);
    if (ms === undefined) ok = false;
    else if (entry.name === "older_than") olderThanMs = ms;
    else everyMs = ms;
  }
  if (olderThanMs === undefined) {
    if (ok) r.report(node, "`retention` needs `older_than` (how long ended runs are kept, e.g. `30d`)");
    return undefined;
  }
  return ok ? { olderThanMs, everyMs } : undefined;
}

function readPublicUrl(r: Reader, node: Parameters<Reader["map"]>[0]): string | undefined {
  const text = r.string(node, "`public_url`");
  if (text === undefined) return undefined;
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    // Said below.
  }
  if (!url || !["http:", "https:"].includes(url.protocol) || url.search !== "" || url.hash !== "") {
    r.report(
      node,
      `\`public_url\` must be an http(s) URL where people reach this server, such as \`https://ci.example.org\`, got \`${text}\``,
    );
    return undefined;
  }
  return text.replace(/\/+$/, "");
}

function readMetrics(r: Reader, node: Parameters<Reader["map"]>[0]): { public: boolean } {
  const metrics = { public: false };
  for (const entry of r.map(node, "`metrics`", METRICS_KEYS))
    metrics.public = r.boolean(entry.value, "`metrics.public`") ?? false;
  return metrics;
}

function readJobEnv(r: Reader, node: Parameters<Reader["map"]>[0]): string[] {
  const names: string[] = [];
  for (const item of r.list(node, "`job_env`", true) ?? []) {
    const name = r.string(item, "a `job_env` entry");
    if (name === undefined) continue;
    if (!ENV_PATTERN.test(name)) {
      r.report(
        item,
        `\`job_env\` entry \`${name}\` must be a variable name, or a prefix ending in \`*\` (\`AWS_*\`)`,
      );
    } else if (SLIPWAY_CREDENTIAL.test(name) || couldMatchSlipway(name)) {
      r.report(
        item,
        `\`job_env\` entry \`${name}\` would hand Slipway's own credentials to jobs: declare what a pipeline needs under \`secrets:\``,
      );
    } else names.push(name);
  }
  return names;
}

/** A prefix pattern that could match `SLIPWAY_*` variables, Slipway's credentials among them. */
function couldMatchSlipway(pattern: string): boolean {
  if (!pattern.endsWith("*")) return false;
  const prefix = pattern.slice(0, -1);
  return "SLIPWAY_".startsWith(prefix) || prefix.startsWith("SLIPWAY_");
}
