/** Real git for trigger tests: commands in a repository, with a fixed author so commits need no config. */
import { execFileSync } from "node:child_process";

export function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@example.org",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@example.org",
    },
  }).trim();
}

/** An empty commit in the clone `work`; returns its id. */
export function commit(work: string, message: string): string {
  git(work, "commit", "--quiet", "--allow-empty", "-m", message);
  return git(work, "rev-parse", "HEAD");
}
