/**
 * Triggers phase (child), against a real `slipway serve` whose config names one source on a real bare
 * git repository in a temp directory:
 * - poll: a `git push` to the repository (a plain git source polled every second) -> the job's process
 *   running;
 * - webhook: a signed GitHub-style push delivery to POST /hooks/{source} (a github source, polled only
 *   every 10 minutes, so the delivery is what starts the run) -> the job's process running.
 * Each event is a new commit on `main`, paced (the next once the previous run has completed), all
 * starting the same pipeline, whose job is the api phase's stamp (its mark: the event's commit).
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { mkdirSync, statSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";
import {
  childMain,
  epochNow,
  type Figures,
  grown,
  percentile,
  readTrace,
  removeDir,
  round,
  sleep,
  sortedCopy,
  tempDir,
} from "./common.js";
import {
  type BenchServer,
  type RunDetail,
  type RunSummary,
  stampPipelineText,
  startServer,
  type TriggersSummary,
} from "./server.js";

const SECRET = "bench-hook-secret";
/** Events before the measured ones (the mirror's first fetch, the first checkout): not counted. */
const WARM_UP = 3;

type Mode = "poll" | "webhook";

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", args, {
    cwd,
    encoding: "utf8",
    env: {
      ...process.env,
      GIT_AUTHOR_NAME: "bench",
      GIT_AUTHOR_EMAIL: "bench@example.org",
      GIT_COMMITTER_NAME: "bench",
      GIT_COMMITTER_EMAIL: "bench@example.org",
    },
  }).trim();
}

/** A bare repository with one commit on main, and a clone to push from. */
function repository(dir: string): { repo: string; work: string } {
  const repo = join(dir, "repo.git");
  const work = join(dir, "work");
  mkdirSync(work);
  git(dir, "init", "--quiet", "--bare", repo);
  git(work, "init", "--quiet", "-b", "main");
  git(work, "remote", "add", "origin", repo);
  git(work, "commit", "--quiet", "--allow-empty", "-m", "first");
  git(work, "push", "--quiet", "origin", "main");
  return { repo, work };
}

/** One server, one source, `warmUp + events` pushes; per event: the times the figures are made of. */
async function measure(mode: Mode, events: number, pollMs: number): Promise<Figures> {
  const dir = tempDir(`triggers-${mode}`);
  const trace = join(dir, "trace");
  writeFileSync(trace, "");
  const { repo, work } = repository(dir);
  writeFileSync(
    join(dir, "bench.yml"),
    stampPipelineText(trace, {
      mark: "${{ event.sha }}",
      head: "run-name: t-${{ event.sha }}\non:\n  push: { branches: [main] }\n",
    }),
  );
  writeFileSync(
    join(dir, "slipway.yml"),
    mode === "poll"
      ? `sources:\n  app:\n    url: ./repo.git\n    poll: ${pollMs}ms\n    pipelines: [bench.yml]\n`
      : `sources:\n  app:\n    url: ./repo.git\n    kind: github\n    poll: 10m\n    webhook_secret: { env: BENCH_HOOK_SECRET }\n    pipelines: [bench.yml]\n`,
  );
  const server = await startServer(dir, ["--config", "slipway.yml"], { BENCH_HOOK_SECRET: SECRET });
  const sent = new Map<string, number>();
  const pushMs: number[] = [];
  /** The machine's 1-minute load average at each event. */
  const loads: number[] = [];
  /** Poll mode: start of the poll that saw each push, by commit. */
  const sawAt = new Map<string, number>();
  try {
    // The first poll only notes where the branches are: pushes after it start runs.
    const deadline = Date.now() + 30_000;
    while ((await server.json<TriggersSummary>("GET", "/triggers")).sources[0]?.outcome !== "ok") {
      if (Date.now() > deadline) throw new Error("triggers: the source's first poll did not succeed");
      await sleep(20);
    }
    const floor = mode === "webhook" ? new GitFloor(dir, work, trace) : undefined;
    await floor?.start();
    for (let i = 0; i < WARM_UP + events; i++) {
      loads.push(loadavg()[0]!);
      // Polls: pushed at a random moment of the poll cycle, as pushes come (not just after a poll).
      if (mode === "poll") await sleep(Math.random() * pollMs);
      const before = git(work, "rev-parse", "HEAD");
      git(work, "commit", "--quiet", "--allow-empty", "-m", `event ${i}`);
      const sha = git(work, "rev-parse", "HEAD");
      const size = statSync(trace).size;
      const pushing = epochNow();
      git(work, "push", "--quiet", "origin", "main");
      // The branch has moved in the repository once `git push` has returned.
      let t0 = epochNow();
      pushMs.push(t0 - pushing);
      if (mode === "webhook") {
        const body = JSON.stringify({
          ref: "refs/heads/main",
          before,
          after: sha,
          deleted: false,
          repository: { full_name: "bench/app", clone_url: repo },
        });
        t0 = epochNow();
        const answer = await fetch(`${server.url}/hooks/app`, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "x-github-event": "push",
            "x-github-delivery": `bench-${i}`,
            "x-hub-signature-256": `sha256=${createHmac("sha256", SECRET).update(body).digest("hex")}`,
          },
          body,
          signal: AbortSignal.timeout(20_000),
        });
        if (answer.status !== 202)
          throw new Error(`delivery answered ${answer.status}: ${await answer.text()}`);
      }
      await grown(trace, size, 30_000);
      if (i >= WARM_UP) sent.set(sha, t0);
      if (mode === "poll" && i >= WARM_UP) {
        const at = await pollThatSaw(server, t0);
        if (at !== undefined) sawAt.set(sha, at);
      }
      await completed(server, sha);
      await floor?.event(i >= WARM_UP);
    }
    const marks = readTrace(trace);
    const start: number[] = [];
    const created: number[] = [];
    const launched: number[] = [];
    const afterPoll: number[] = [];
    for (const [sha, t0] of sent) {
      const mark = marks.get(sha)?.start;
      if (mark === undefined || Number.isNaN(mark)) throw new Error(`triggers: no start mark for ${sha}`);
      start.push(mark - t0);
      const poll = sawAt.get(sha);
      if (poll !== undefined) afterPoll.push(mark - poll);
      const [run] = await server.json<RunSummary[]>("GET", `/runs?name=t-${sha}`);
      const detail = await server.json<RunDetail>("GET", `/runs/${run!.id}`);
      created.push(detail.createdAt - t0);
      const step = detail.steps[0]!;
      const at = step.output?.[step.job]?.launchedAt;
      if (at !== undefined) launched.push(at - t0);
    }
    const runs = await server.json<RunSummary[]>("GET", "/runs");
    if (runs.length !== WARM_UP + events)
      throw new Error(`triggers: ${runs.length} runs for ${WARM_UP + events} events`);
    const key = mode === "poll" ? "triggers.poll_to" : "triggers.webhook_to";
    const figures: Figures = { [`triggers.${mode}_events`]: events };
    for (const [what, values] of [
      ["start", start],
      ["run_created", created],
      ["job_launch", launched],
    ] as const) {
      const sorted = sortedCopy(values);
      figures[`${key}_${what}_p50_ms`] = round(percentile(sorted, 50), 1);
      figures[`${key}_${what}_p99_ms`] = round(percentile(sorted, 99), 1);
    }
    if (afterPoll.length > 0) {
      const sorted = sortedCopy(afterPoll);
      figures["triggers.poll_start_to_start_p50_ms"] = round(percentile(sorted, 50), 1);
      figures["triggers.poll_start_to_start_p99_ms"] = round(percentile(sorted, 99), 1);
      figures["triggers.poll_start_samples"] = afterPoll.length;
    }
    figures[`triggers.${mode}_push_p50_ms`] = round(percentile(sortedCopy(pushMs), 50), 1);
    figures[`triggers.${mode}_load_1m`] = round(percentile(sortedCopy(loads), 50), 2);
    if (floor) {
      const sorted = sortedCopy(floor.latency);
      figures["triggers.webhook_git_floor_p50_ms"] = round(percentile(sorted, 50), 1);
      figures["triggers.webhook_git_floor_p99_ms"] = round(percentile(sorted, 99), 1);
    }
    return figures;
  } finally {
    await server.stop();
    removeDir(dir);
  }
}

/** Runs git without blocking this process's loop; resolves when it exited well. */
function gitAsync(cwd: string, ...args: string[]): Promise<void> {
  return new Promise((resolve, reject) =>
    execFile("git", args, { cwd }, (error) => (error ? reject(error) : resolve())),
  );
}

/**
 * The floor under webhook_to_start: the git commands the server runs for a webhook's push (the fetch
 * of the pushed ref into the mirror, beside the workspace's few files written in-process to borrow
 * its objects; the checkout) and the stamp job's bash, from this bare Node process with no server.
 * Measured one push at a time, each just after a webhook event, so both see the same machine:
 * push returned -> the mark.
 */
class GitFloor {
  readonly #dir: string;
  readonly #floorRepo: string;
  readonly #work: string;
  readonly #trace: string;
  readonly #mirror: string;
  #made = 0;
  /** The floor branch's last commit. */
  #head = "";
  readonly latency: number[] = [];

  constructor(dir: string, work: string, trace: string) {
    this.#dir = dir;
    this.#floorRepo = join(dir, "floor-repo.git");
    this.#work = work;
    this.#trace = trace;
    this.#mirror = join(dir, "floor-mirror.git");
  }

  async start(): Promise<void> {
    git(this.#dir, "init", "--quiet", "--bare", this.#floorRepo);
    git(this.#work, "remote", "add", "floor", this.#floorRepo);
    this.#head = git(this.#work, "rev-parse", "HEAD");
    git(this.#work, "push", "--quiet", "floor", "HEAD:refs/heads/floor");
    git(this.#dir, "init", "--quiet", "--bare", this.#mirror);
    await this.#fetch();
  }

  /** The server's fetch of a pushed ref (git.ts fetchRefs). */
  #fetch(): Promise<void> {
    return gitAsync(
      this.#mirror,
      "fetch",
      "--quiet",
      "--no-tags",
      "--no-auto-maintenance",
      "--no-write-fetch-head",
      this.#floorRepo,
      "+refs/heads/floor:refs/heads/floor",
    );
  }

  /** One push of a new commit to the floor's branch, then the floor's commands; `measured`: kept. */
  async event(measured: boolean): Promise<void> {
    const i = this.#made++;
    // A commit beside the work's branch, to a repository of its own: the server's source never sees it.
    const sha = git(this.#work, "commit-tree", "HEAD^{tree}", "-p", this.#head, "-m", `floor ${i}`);
    this.#head = sha;
    git(this.#work, "push", "--quiet", "floor", `${sha}:refs/heads/floor`);
    const size = statSync(this.#trace).size;
    const t0 = epochNow();
    const workspace = join(this.#dir, "floor-workspaces", String(i));
    const fetched = this.#fetch();
    const dotGit = join(workspace, ".git");
    for (const sub of ["objects/info", "objects/pack", "refs/heads", "refs/tags"])
      mkdirSync(join(dotGit, sub), { recursive: true });
    writeFileSync(join(dotGit, "HEAD"), "ref: refs/heads/main\n");
    writeFileSync(
      join(dotGit, "config"),
      "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n\tlogallrefupdates = true\n",
    );
    writeFileSync(join(dotGit, "objects", "info", "alternates"), `${join(this.#mirror, "objects")}\n`);
    await fetched;
    await gitAsync(workspace, "checkout", "--quiet", "--detach", sha);
    await new Promise((resolve) => {
      const child = spawn(
        "bash",
        ["-e", "-o", "pipefail", "-c", `echo "floor-${sha} start $EPOCHREALTIME" >> ${this.#trace}`],
        { cwd: workspace, detached: true, stdio: ["ignore", "pipe", "pipe"] },
      );
      child.stdout!.resume();
      child.stderr!.resume();
      child.once("exit", resolve);
    });
    await grown(this.#trace, size, 30_000);
    if (measured) this.latency.push(readTrace(this.#trace).get(`floor-${sha}`)!.start - t0);
    removeDir(workspace);
  }
}

/**
 * The start of the poll that saw a push that returned at `pushed`: the source's last poll once it
 * is at most 200 ms before the push (a poll under way as the branch moved can see it), read just
 * after the job's mark. Undefined when the state did not show it within a second.
 */
async function pollThatSaw(server: BenchServer, pushed: number): Promise<number | undefined> {
  const deadline = Date.now() + 1_000;
  while (Date.now() < deadline) {
    const at = (await server.json<TriggersSummary>("GET", "/triggers")).sources[0]?.lastPollAt ?? 0;
    if (at >= pushed - 200) return at;
    await sleep(5);
  }
  return undefined;
}

/** Waits for the run of `sha` to end (the pacing between events; polled, not measured). */
async function completed(server: BenchServer, sha: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const [run] = await server.json<RunSummary[]>("GET", `/runs?name=t-${sha}`);
    if (run?.endedAt != null) {
      if (run.status !== "completed") throw new Error(`triggers: run ${run.id} ended ${run.status}`);
      return;
    }
    if (Date.now() > deadline) throw new Error(`triggers: the run of ${sha} did not end`);
    await sleep(5);
  }
}

childMain(async () => {
  const events = Number(process.argv[2] ?? 100);
  const pollMs = Number(process.argv[3] ?? 1_000);
  const modes = (process.argv[4] ?? "webhook,poll").split(",") as Mode[];
  const figures: Figures = {};
  for (const mode of modes) Object.assign(figures, await measure(mode, events, pollMs));
  return { figures };
});
