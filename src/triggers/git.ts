/**
 * Plain `git` for triggers: the refs of a remote (`ls-remote`), a bare mirror per source fetched
 * from it, the commits a push added (`git log` in the mirror), a file at a commit, and a checkout
 * of one commit for a run's workspace that borrows the mirror's objects. Credentials go in through
 * the environment (`GIT_CONFIG_*`), never on a command line where process lists would show them.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import type { Readable } from "node:stream";
import { type JobProcess, type Launcher, startProcess } from "../shell/launcher.js";
import type { ForgeKind } from "./webhooks.js";

/** How git reaches a source: its URL and the environment that carries its credentials. */
export interface GitAccess {
  url: string;
  env: NodeJS.ProcessEnv;
  /** Who starts git (GitOptions.launcher); absent: this process. */
  launcher?: Launcher | undefined;
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

/** How a git command is run: where, with what environment, for how long at most, started by whom. */
export interface GitOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
  /**
   * The server's launcher process (launcher.ts): git is started there, so the fork of each git
   * command (milliseconds in a large process, on the way from a push to its run) does not stop this
   * event loop. Absent, or no longer alive: started from this process.
   */
  launcher?: Launcher | undefined;
}

/** What a finished git command said. */
interface GitOutcome {
  stdout: string;
  stderr: string;
  /** Undefined when it exited 0. */
  failure?: string;
}

/** Runs git; rejects with git's own first error line. */
export async function git(args: readonly string[], options: GitOptions = {}): Promise<string> {
  const env = options.env ?? { ...process.env, GIT_TERMINAL_PROMPT: "0" };
  const timeoutMs = options.timeoutMs ?? REMOTE_TIMEOUT_MS;
  const outcome = options.launcher?.alive
    ? await launched(options.launcher, args, options.cwd, env, timeoutMs)
    : await direct(args, options.cwd, env, timeoutMs);
  if (outcome.failure === undefined) return outcome.stdout;
  const why =
    outcome.stderr
      .split("\n")
      .map((line) => line.trim())
      .find((line) => /^(fatal|error):/.test(line)) ?? outcome.failure;
  // Named by its command, not by `-C <dir>`.
  throw new Error(`git ${args[0] === "-C" ? args[2] : args[0]}: ${why}`);
}

function direct(
  args: readonly string[],
  cwd: string | undefined,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<GitOutcome> {
  return new Promise((done) => {
    execFile(
      "git",
      args,
      { cwd, env, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) =>
        done({
          stdout,
          stderr,
          ...(error && { failure: error.killed ? "timed out" : error.message.split("\n")[0]! }),
        }),
    );
  });
}

/** Started by the launcher; killed (its process group) when it outlives `timeoutMs`. */
async function launched(
  launcher: Launcher,
  args: readonly string[],
  cwd: string | undefined,
  env: NodeJS.ProcessEnv,
  timeoutMs: number,
): Promise<GitOutcome> {
  const defined: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) defined[name] = value;
  let child: JobProcess;
  try {
    child = await startProcess("git", [...args], { cwd: cwd ?? process.cwd(), env: defined }, launcher);
  } catch (error) {
    return { stdout: "", stderr: "", failure: (error as Error).message };
  }
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // Gone already.
    }
  }, timeoutMs);
  const read = (stream: Readable) =>
    new Promise<string>((done) => {
      let text = "";
      stream.setEncoding("utf8");
      stream.on("data", (chunk: string) => {
        text += chunk;
      });
      stream.once("end", () => done(text));
      stream.once("close", () => done(text));
    });
  const [stdout, stderr, [code, signal]] = await Promise.all([
    read(child.stdout),
    read(child.stderr),
    child.exited,
  ]);
  clearTimeout(timer);
  if (code === 0) return { stdout, stderr };
  const failure = timedOut ? "timed out" : (child.lost?.message ?? `exited with ${signal ?? `code ${code}`}`);
  return { stdout, stderr, failure };
}

/** Branch and tag refs of the remote (a tag by the commit it points at), ref name → commit. */
export async function lsRemote(access: GitAccess): Promise<Record<string, string>> {
  const out = await git(["ls-remote", "--heads", "--tags", access.url], {
    env: access.env,
    launcher: access.launcher,
  });
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
  const out = await git(["ls-remote", access.url, "HEAD"], { env: access.env, launcher: access.launcher });
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
    await git(["init", "--quiet", "--bare", mirror], { launcher: access.launcher });
    // Workspaces fetch single commits by id from here.
    await git(["-C", mirror, "config", "uploadpack.allowAnySHA1InWant", "true"], {
      launcher: access.launcher,
    });
  }
  const specs = ["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"];
  if (access.kind === "gitlab") specs.push("+refs/merge-requests/*/head:refs/merge-requests/*/head");
  else if (access.kind !== "git") specs.push("+refs/pull/*/head:refs/pull/*/head");
  await git(
    ["-C", mirror, "fetch", "--quiet", "--prune", "--no-tags", "--no-auto-maintenance", access.url, ...specs],
    { env: access.env, launcher: access.launcher },
  );
}

/**
 * Fetches just `refs` (full names, kept under the same names) into an existing mirror: what one
 * event needs, without the other refs' advertisement and updates (the next poll's `fetchMirror` does
 * those, and prunes).
 */
export async function fetchRefs(mirror: string, access: GitAccess, refs: readonly string[]): Promise<void> {
  await git(
    [
      "-C",
      mirror,
      "fetch",
      "--quiet",
      "--no-tags",
      "--no-auto-maintenance",
      "--no-write-fetch-head",
      access.url,
      ...refs.map((ref) => `+${ref}:${ref}`),
    ],
    { env: access.env, launcher: access.launcher },
  );
}

/** Packs the mirror's loose objects when there are enough of them (git's `--auto` thresholds). */
export async function maintainMirror(mirror: string, launcher?: Launcher): Promise<void> {
  await git(["-C", mirror, "maintenance", "run", "--auto", "--quiet"], { launcher });
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
export function readAt(mirror: string, sha: string, path: string, launcher?: Launcher): Promise<string> {
  return git(["-C", mirror, "show", `${sha}:${path}`], { launcher });
}

/**
 * An empty repository at `dir` that borrows the objects of `mirror` (git alternates), so a checkout
 * copies nothing (replacing whatever a crash left there). Written here rather than by `git init`:
 * the few files of gitrepository(5)'s layout cost less than a process (as `git init --template=`
 * makes them: no hooks, nothing runs in it), and HEAD names an unborn branch, so the checkout that
 * follows writes every file.
 */
export function borrowingRepository(mirror: string, dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  const dotGit = join(dir, ".git");
  for (const sub of ["objects/info", "objects/pack", "refs/heads", "refs/tags"])
    mkdirSync(join(dotGit, sub), { recursive: true });
  writeFileSync(join(dotGit, "HEAD"), "ref: refs/heads/main\n");
  writeFileSync(
    join(dotGit, "config"),
    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
  );
  writeFileSync(join(dotGit, "objects", "info", "alternates"), `${resolve(mirror, "objects")}\n`);
}

/** Checks out `sha` (detached) in a repository made by `borrowingRepository`. */
export async function checkout(dir: string, sha: string, launcher?: Launcher): Promise<void> {
  await git(["-C", dir, "checkout", "--quiet", "--detach", sha], { launcher });
}
