/**
 * The server config's `sources:`: the repositories runs start from, each with its URL, forge kind,
 * read-only credentials (from the environment or a file, never the config text), poll interval,
 * webhook secret, and the pipelines to run. See docs/triggers.md.
 *
 * ```yaml
 * sources:
 *   app:
 *     url: https://git.example.org/team/app.git   # or a local path, file://, ssh://...
 *     kind: gitea                # git (default), github, gitea, forgejo, gitlab
 *     credentials: { env: APP_TOKEN }             # or { file: /run/secrets/app-token }
 *     poll: 1m
 *     webhook_secret: { file: /run/secrets/app-hook }
 *     allow: [alice]             # may use comment commands, besides the repository's writers
 *     keep_failed: 1d            # a failed run's workspace is kept this long
 *     api: https://git.example.org/api/v1   # only when the API is not where the URL says
 *     report:                    # opt-in: tell the forge about runs, with a token that can write
 *       credentials: { env: APP_WRITE_TOKEN }
 *       status: true             # commit statuses: pending, then success, failure or error
 *       comments: true           # answer a comment command that started runs, with links
 *       refusals: false          # answer a refused one too, saying why
 *     pipelines:
 *       - file: ci/app.yml       # on the server's disk, relative to this file
 *       - path: .slipway/ci.yml  # in the repository, read at the triggering commit
 * ```
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isMap, isScalar, LineCounter, type Node, parseDocument } from "yaml";
import { NotFoundError } from "../errors.js";
import { NAME, NAME_RULE } from "../names.js";
import { closest, listOr } from "../problems.js";
import { ConfigError } from "../scheduler/config.js";
import { describe, Reader } from "../yaml-reader.js";
import type { ForgeKind } from "./webhooks.js";

export const SOURCE_KEYS = [
  "url",
  "kind",
  "credentials",
  "username",
  "poll",
  "webhook_secret",
  "allow",
  "keep_failed",
  "api",
  "report",
  "pipelines",
] as const;
export const REPORT_KEYS = ["credentials", "status", "comments", "refusals"] as const;
export const SOURCE_KINDS: readonly ForgeKind[] = ["git", "github", "gitea", "forgejo", "gitlab"];

/** Where a secret value is read from when it is needed: an environment variable or a file. */
export type SecretRef = { env: string } | { file: string };

/**
 * Reporting back to the forge (opt-in): a token that can write, kept apart from the read-only
 * `credentials` the source is polled with, and what to report.
 */
export interface ReportConfig {
  credentials: SecretRef;
  /** A commit status per run: `pending` when it starts, then `success`, `failure` or `error`. */
  status: boolean;
  /** A comment answering a command that started runs, with a link to each. */
  comments: boolean;
  /** A comment answering a command that started nothing, saying why. */
  refusals: boolean;
}

/** A pipeline a source runs: a file on the server's disk, or a path in the repository at the commit. */
export type SourcePipeline = { file: string } | { path: string };

export interface SourceConfig {
  name: string;
  url: string;
  kind: ForgeKind;
  credentials?: SecretRef;
  /** The user name sent with the token over HTTP(S); default per forge. */
  username?: string;
  pollMs: number;
  webhookSecret?: SecretRef;
  /** May use comment commands and approve forks' pull requests, besides the repository's writers. */
  allow: string[];
  /** How long a failed run's workspace is kept before it is removed. */
  keepFailedMs: number;
  /** The forge's API root when it is not where the URL says (an unusual install, a test server). */
  api?: string;
  /** What to report back to the forge; absent: nothing (the read-only default). */
  report?: ReportConfig;
  pipelines: SourcePipeline[];
}

const DEFAULT_POLL_MS = 60_000;
const DEFAULT_KEEP_FAILED_MS = 24 * 3_600_000;

/** The sources of the config file at `path` (none without a file); problems throw a ConfigError. */
export function loadSources(path: string | undefined): SourceConfig[] {
  if (path === undefined) return [];
  let source: string;
  try {
    source = readFileSync(path, "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT")
      throw new NotFoundError(`config file ${path} does not exist`);
    throw error;
  }
  return parseSources(source, path, dirname(resolve(path)));
}

/** Parses the `sources:` of config text; relative pipeline files and credential files are relative to `baseDir`. */
export function parseSources(source: string, file: string, baseDir = process.cwd()): SourceConfig[] {
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const r = new Reader(file, source, lines, doc);
  // YAML errors and the other sections are the config loader's to report.
  const contents = doc.contents ?? undefined;
  if (doc.errors.length > 0 || !isMap(contents)) return [];
  const node = contents.items.find((pair) => isScalar(pair.key) && pair.key.value === "sources")?.value as
    | Node
    | undefined;
  if (node === undefined || r.isEmpty(node)) return [];
  const sources: SourceConfig[] = [];
  for (const entry of r.map(node, "`sources`")) {
    if (!NAME.test(entry.name)) {
      r.report(entry.key, `source name \`${entry.name}\` is not valid: use ${NAME_RULE}`);
      continue;
    }
    const parsed = parseSource(r, entry.name, entry.value, baseDir);
    if (parsed) sources.push(parsed);
  }
  if (r.problems.length > 0)
    throw new ConfigError([...r.problems].sort((a, b) => a.line - b.line || a.col - b.col));
  return sources;
}

function parseSource(r: Reader, name: string, node: Node, baseDir: string): SourceConfig | undefined {
  const label = (key: string) => `\`${key}\` of source \`${name}\``;
  const fields = new Map(r.map(node, `source \`${name}\``, SOURCE_KEYS).map((e) => [e.name, e]));
  if (!isMap(node)) return undefined;
  const urlEntry = fields.get("url");
  if (!urlEntry) {
    r.report(node, `source \`${name}\` needs \`url\`: where git fetches it from (a URL or a local path)`);
    return undefined;
  }
  const rawUrl = r.string(urlEntry.value, label("url"));
  if (rawUrl === undefined) return undefined;
  if (/^[a-z][a-z0-9+.-]*:\/\/[^/]*:[^/@]*@/i.test(rawUrl))
    r.report(
      urlEntry.value,
      `${label("url")} holds a password: give it as \`credentials: { env: NAME }\` instead`,
    );
  // A local path is relative to the config file, like every other path in it.
  const url =
    /^[a-z][a-z0-9+.-]*:/i.test(rawUrl) || /^[^/]+@[^/]+:/.test(rawUrl) ? rawUrl : resolve(baseDir, rawUrl);

  let kind: ForgeKind = "git";
  const kindEntry = fields.get("kind");
  if (kindEntry) {
    const text = r.string(kindEntry.value, label("kind"));
    if (text !== undefined && (SOURCE_KINDS as readonly string[]).includes(text)) kind = text as ForgeKind;
    else if (text !== undefined)
      r.report(
        kindEntry.value,
        `${label("kind")} must be ${listOr(SOURCE_KINDS)}, got \`${text}\``,
        closest(text, SOURCE_KINDS),
      );
  }
  const secret = (entry: { value: Node } | undefined, key: string): SecretRef | undefined => {
    if (!entry) return undefined;
    if (isScalar(entry.value)) {
      r.report(
        entry.value,
        `${label(key)} must say where the value is, \`{ env: NAME }\` or \`{ file: PATH }\`, never the value itself`,
      );
      return undefined;
    }
    const parts = r.map(entry.value, label(key), ["env", "file"]);
    if (parts.length !== 1) {
      r.report(entry.value, `${label(key)} needs exactly one of \`env\` or \`file\``);
      return undefined;
    }
    const value = r.string(parts[0]!.value, label(`${key}.${parts[0]!.name}`));
    if (value === undefined) return undefined;
    return parts[0]!.name === "env" ? { env: value } : { file: resolve(baseDir, value) };
  };
  const credentials = secret(fields.get("credentials"), "credentials");
  const webhookSecret = secret(fields.get("webhook_secret"), "webhook_secret");
  const reportEntry = fields.get("report");
  let report: ReportConfig | undefined;
  if (reportEntry && kind === "git")
    r.report(
      reportEntry.key,
      `${label("report")}: a plain \`git\` source has no forge to report to (set \`kind\`: github, gitea, forgejo or gitlab)`,
    );
  else if (reportEntry) {
    const parts = new Map(r.map(reportEntry.value, label("report"), REPORT_KEYS).map((e) => [e.name, e]));
    const flag = (key: "status" | "comments" | "refusals", fallback: boolean) => {
      const entry = parts.get(key);
      return (entry && r.boolean(entry.value, label(`report.${key}`))) ?? fallback;
    };
    const writeToken = secret(parts.get("credentials"), "report.credentials");
    if (isMap(reportEntry.value) && !parts.has("credentials"))
      r.report(
        reportEntry.value,
        `${label("report")} needs \`credentials\`: a token that may write statuses and comments, \`{ env: NAME }\` or \`{ file: PATH }\` (kept apart from the read-only \`credentials\`)`,
      );
    if (writeToken)
      report = {
        credentials: writeToken,
        status: flag("status", true),
        comments: flag("comments", true),
        refusals: flag("refusals", false),
      };
  }
  const usernameEntry = fields.get("username");
  const username = usernameEntry && r.string(usernameEntry.value, label("username"));
  const pollEntry = fields.get("poll");
  const pollMs = (pollEntry && r.duration(pollEntry.value, label("poll"))) ?? DEFAULT_POLL_MS;
  const keepEntry = fields.get("keep_failed");
  const keepFailedMs =
    (keepEntry && r.duration(keepEntry.value, label("keep_failed"))) ?? DEFAULT_KEEP_FAILED_MS;
  const apiEntry = fields.get("api");
  const api = apiEntry && r.string(apiEntry.value, label("api"));
  const allow: string[] = [];
  const allowEntry = fields.get("allow");
  for (const item of allowEntry ? (r.list(allowEntry.value, label("allow"), true) ?? []) : []) {
    const login = r.string(item, `a user of ${label("allow")}`);
    if (login !== undefined) allow.push(login);
  }
  const pipelines: SourcePipeline[] = [];
  const pipelinesEntry = fields.get("pipelines");
  if (!pipelinesEntry) r.report(node, `source \`${name}\` needs \`pipelines\`: the pipeline files it runs`);
  for (const item of pipelinesEntry ? (r.list(pipelinesEntry.value, label("pipelines")) ?? []) : []) {
    // `- ci.yml` is a file on the server's disk.
    if (isScalar(item)) {
      const file = r.string(item, `a pipeline of source \`${name}\``);
      if (file !== undefined) pipelines.push({ file: resolve(baseDir, file) });
      continue;
    }
    const parts = r.map(item, `a pipeline of source \`${name}\``, ["file", "path"]);
    if (!isMap(item)) continue;
    if (parts.length !== 1) {
      r.report(
        item,
        `a pipeline of source \`${name}\` is \`file: PATH\` (server's disk) or \`path: PATH\` (in the repository), got ${describe(item)}`,
      );
      continue;
    }
    const value = r.string(parts[0]!.value, `\`${parts[0]!.name}\` of a pipeline of source \`${name}\``);
    if (value === undefined) continue;
    if (parts[0]!.name === "file") pipelines.push({ file: resolve(baseDir, value) });
    else if (value.startsWith("/") || value.split("/").includes(".."))
      r.report(parts[0]!.value, "`path` is inside the repository: relative, without `..`");
    else pipelines.push({ path: value });
  }
  return {
    name,
    url,
    kind,
    ...(credentials && { credentials }),
    ...(username !== undefined && { username }),
    pollMs,
    ...(webhookSecret && { webhookSecret }),
    allow,
    keepFailedMs,
    ...(api !== undefined && { api }),
    ...(report && { report }),
    pipelines,
  };
}

/** Reads a secret when it is needed (a rotated file is picked up); throws, saying why, when it can't be. */
export function readSecret(ref: SecretRef, env: NodeJS.ProcessEnv = process.env): string {
  if ("env" in ref) {
    const value = env[ref.env];
    if (value === undefined || value === "") throw new Error(`environment variable ${ref.env} is not set`);
    return value;
  }
  try {
    return readFileSync(ref.file, "utf8").replace(/\r?\n$/, "");
  } catch (error) {
    throw new Error(
      `cannot read ${ref.file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
}
