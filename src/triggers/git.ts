/**
 * Plain `git` for triggers: the refs of a remote (`ls-remote`), a bare mirror per source fetched
 * from it, the commits a push added (`git log` in the mirror), a file at a commit, and a checkout
 * of one commit for a run's workspace that borrows the mirror's objects. Credentials go in through
 * the environment (`GIT_CONFIG_*`), never on a command line where process lists would show them.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { ForgeKind } from "./webhooks.js";

/** How git reaches a source: its URL and the environment that carries its credentials. */
export interface GitAccess {
  url: string;
  env: NodeJS.ProcessEnv;
  kind: ForgeKind;
}

const ZERO = /^0+$/;
/** ls-remote and fetch of a slow forge; a hung connection must not stall polling for good. */
const REMOTE_TIMEOUT_MS = 120_000;

/** The user name sent with a token, per forge (any works for Gitea/Forgejo). */
const TOKEN_USER: Record<ForgeKind, string> = {
  git: "git",
  github: "x-access-token",
  gitea: "token",
  forgejo: "token",
  gitlab: "oauth2",
};

/**
 * The access to a source: with a token, an `Authorization` header for HTTP(S) URLs, set through
 * `GIT_CONFIG_COUNT`/`KEY`/`VALUE` so it is in no argument list.
 */
export function gitAccess(url: string, kind: ForgeKind, token?: string, username?: string): GitAccess {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    GIT_TERMINAL_PROMPT: "0",
    GIT_ASKPASS: "true",
    // A job's or the user's git config must not redirect what the server fetches.
    GIT_CONFIG_NOSYSTEM: "1",
  };
  if (token !== undefined && /^https?:/i.test(url)) {
    const basic = Buffer.from(`${username ?? TOKEN_USER[kind]}:${token}`).toString("base64");
    env.GIT_CONFIG_COUNT = "1";
    env.GIT_CONFIG_KEY_0 = `http.${url}.extraHeader`;
    env.GIT_CONFIG_VALUE_0 = `Authorization: Basic ${basic}`;
  }
  return { url, env, kind };
}

/** Runs git; rejects with git's own first error line. */
export function git(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<string> {
  return new Promise((done, fail) => {
    execFile(
      "git",
      args,
      {
        cwd: options.cwd,
        env: options.env ?? { ...process.env, GIT_TERMINAL_PROMPT: "0" },
        timeout: options.timeoutMs ?? REMOTE_TIMEOUT_MS,
        maxBuffer: 64 * 1024 * 1024,
      },
      (error, stdout, stderr) => {
        if (!error) return done(stdout);
        const why =
          stderr
            .split("\n")
            .map((line) => line.trim())
            .find((line) => /^(fatal|error):/.test(line)) ??
          (error.killed ? "timed out" : error.message.split("\n")[0]);
        // Named by its command, not by `-C <dir>`.
        fail(new Error(`git ${args[0] === "-C" ? args[2] : args[0]}: ${why}`));
      },
    );
  });
}

/** Branch and tag refs of the remote (a tag by the commit it points at), ref name → commit. */
export async function lsRemote(access: GitAccess): Promise<Record<string, string>> {
  const out = await git(["ls-remote", "--heads", "--tags", access.url], { env: access.env });
  const refs: Record<string, string> = {};
  for (const line of out.split("\n")) {
    const [sha, ref] = line.split("\t");
    if (!sha || !ref) continue;
    // An annotated tag is listed twice; its `^{}` line is the commit.
    if (ref.endsWith("^{}")) refs[ref.slice(0, -3)] = sha;
    else refs[ref] ??= sha;
  }
  return refs;
}

/** The commit the remote's HEAD (its default branch) points at, if it has one. */
export async function remoteHead(access: GitAccess): Promise<string | undefined> {
  const out = await git(["ls-remote", access.url, "HEAD"], { env: access.env });
  return out.split("\t")[0] || undefined;
}

/**
 * Creates the bare mirror if missing, then fetches every branch, tag and pull request head into it.
 * Git's own upkeep (`maintenance run --auto`, which a fetch would start and wait for) is left to
 * `maintainMirror`, off the path from an event to its run.
 */
export async function fetchMirror(mirror: string, access: GitAccess): Promise<void> {
  if (!existsSync(`${mirror}/HEAD`)) {
    mkdirSync(dirname(mirror), { recursive: true });
    rmSync(mirror, { recursive: true, force: true });
    await git(["init", "--quiet", "--bare", mirror]);
    // Workspaces fetch single commits by id from here.
    await git(["-C", mirror, "config", "uploadpack.allowAnySHA1InWant", "true"]);
  }
  const specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
  if (access.kind === "gitlab") specs.push("+refs/merge-requests/*/head:refs/merge-requests/*/head");
  else if (access.kind !== "git") specs.push("+refs/pull/*/head:refs/pull/*/head");
  await git(
    ["-C", mirror, "fetch", "--quiet", "--prune", "--no-tags", "--no-auto-maintenance", access.url, ...specs],
    { env: access.env },
  );
}

/** Packs the mirror's loose objects when there are enough of them (git's `--auto` thresholds). */
export async function maintainMirror(mirror: string): Promise<void> {
  await git(["-C", mirror, "maintenance", "run", "--auto", "--quiet"]);
}

/**
 * The commits a push from `before` to `after` added, oldest first, along the first parents (what the
 * branch itself went through); just `after` for a new branch or when `before` is not in the mirror.
 */
export async function newCommits(
  mirror: string,
  before: string | undefined,
  after: string,
): Promise<string[]> {
  if (before === undefined || ZERO.test(before)) return [after];
  try {
    const out = await git(["-C", mirror, "rev-list", "--reverse", "--first-parent", `${before}..${after}`]);
    const commits = out.split("\n").filter((line) => line !== "");
    return commits.length > 0 ? commits : [after];
  } catch {
    // A force push whose old commit the mirror never had.
    return [after];
  }
}

/** A file's text at a commit, from the mirror. */
export function readAt(mirror: string, sha: string, path: string): Promise<string> {
  return git(["-C", mirror, "show", `${sha}:${path}`]);
}

/**
 * An empty repository at `dir` that borrows the objects of `mirror` (git alternates), so a checkout
 * copies nothing (replacing whatever a crash left there). No hook templates: nothing runs in it.
 */
export async function borrowingRepository(mirror: string, dir: string): Promise<void> {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await git(["init", "--quiet", "--template=", dir]);
  mkdirSync(join(dir, ".git", "objects", "info"), { recursive: true });
  writeFileSync(join(dir, ".git", "objects", "info", "alternates"), `${resolve(mirror, "objects")}\n`);
}

/** Checks out `sha` (detached) in a repository made by `borrowingRepository`. */
export async function checkout(dir: string, sha: string): Promise<void> {
  await git(["-C", dir, "checkout", "--quiet", "--detach", sha]);
}
