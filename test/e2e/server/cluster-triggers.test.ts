/**
 * Two `slipway serve` workers on one PostgreSQL with one plain git source (a real bare repository):
 * only the worker holding the source's lease polls it (each worker's git is traced to a file of its
 * own, so the test counts each one's `git ls-remote`). The holder stopped with SIGSTOP past its lease:
 * the other takes the source over, and the stopped one, resumed, finds it lost and polls no more. The
 * new holder killed with `kill -9`: the first takes it back, and a push then starts exactly one run.
 * Skipped without PostgreSQL installed, unless SLIPWAY_REQUIRE_PG is set.
 */
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: `${{ }}` is the pipeline files' expression syntax
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { RunSummary } from "../../../src/runs/schemas.js";
import { freshDatabase, startPostgres } from "../../../src/testing/postgres.js";
import type { TriggersResponse } from "../../../src/triggers/schemas.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { commit, git } from "./git.js";
import { type Server, startServer } from "./server.js";

const postgres = await startPostgres();
if (!postgres && process.env.SLIPWAY_REQUIRE_PG)
  throw new Error("PostgreSQL is required (SLIPWAY_REQUIRE_PG) but not installed");
afterAll(() => postgres?.stop());

/** Waits that span the lease (10 s) and a heartbeat (2 s), with room for a busy machine. */
const SLOW = { timeoutMs: 40_000, intervalMs: 100 };

interface Worker {
  project: Project;
  server: Server;
  pid: number;
  /** `git ls-remote` commands this worker ran so far. */
  polls(): number;
  /** Lines of its log. */
  log(): string;
}

async function startWorker(db: string, config: string): Promise<Worker> {
  const project = new Project();
  const trace = join(project.dir, "git-trace");
  const server = await startServer(project, ["--config", config], { db, env: { GIT_TRACE: trace } });
  return {
    project,
    server,
    pid: server.process.child.pid!,
    polls: () => project.read("git-trace").match(/built-in: git ls-remote /g)?.length ?? 0,
    log: () => project.read(".slipway/slipway.log"),
  };
}

async function source(worker: Worker): Promise<TriggersResponse["sources"][number]> {
  const { sources } = await worker.server.json<TriggersResponse>("GET", "/triggers");
  return sources.find((s) => s.name === "app")!;
}

/** Whether the source's lease is held by this worker (its executor id is `host:pid:random`). */
async function polledBy(viewer: Worker, holder: Worker): Promise<boolean> {
  return new RegExp(`:${holder.pid}:`).test((await source(viewer)).polledBy ?? "");
}

describe.skipIf(!postgres)("triggers on a cluster: one worker polls a source", () => {
  it("is the lease holder; another takes over when it stops or dies, and a push starts one run", {
    timeout: 180_000,
  }, async () => {
    const shared = new Project();
    const repo = join(shared.dir, "repo.git");
    const work = join(shared.dir, "work");
    mkdirSync(work);
    git(shared.dir, "init", "--quiet", "--bare", repo);
    git(work, "init", "--quiet", "-b", "main");
    git(work, "remote", "add", "origin", repo);
    commit(work, "first");
    git(work, "push", "--quiet", "origin", "main");
    const trace = join(shared.dir, "trace");
    shared.write(
      "ci.yml",
      `name: ci
on:
  push: { branches: [main] }
jobs:
  build:
    run: echo "ci \${{ event.sha }}" >> ${trace}
`,
    );
    const config = shared.write(
      "slipway.yml",
      `sources:
  app:
    url: ./repo.git
    poll: 300ms
    pipelines: [ci.yml]
`,
    );
    const db = await freshDatabase(postgres!.url, "cluster_triggers");
    const first = await startWorker(db, config);
    const second = await startWorker(db, config);

    // One of them holds the source's lease; the other never polls while it lasts.
    let holder: Worker | undefined;
    await eventually(
      async () => {
        holder = (await polledBy(first, first))
          ? first
          : (await polledBy(first, second))
            ? second
            : undefined;
        return holder !== undefined;
      },
      "a worker holding the source's lease",
      { intervalMs: 100 },
    );
    const other = holder === first ? second : first;
    const before = other.polls();
    await eventually(() => holder!.polls() >= before + 5, "five polls of the holder");
    expect(other.polls()).toBe(0);
    expect(await polledBy(other, holder!)).toBe(true);

    // The holder paused past its lease: the other takes the source over.
    process.kill(holder!.pid, "SIGSTOP");
    try {
      await eventually(() => polledBy(other, other), "the other worker to take the lease", SLOW);
      await eventually(() => other.polls() >= 3, "the other worker's polls");
    } finally {
      process.kill(holder!.pid, "SIGCONT");
    }
    // Resumed, the old holder finds the lease lost and polls no more (one poll it had begun may end).
    await eventually(
      () => /lease source:app lost/.test(holder!.log()),
      "the resumed worker to see it lost the lease",
    );
    const resumed = holder!.polls();
    const taken = other.polls();
    await eventually(() => other.polls() >= taken + 5, "five more polls of the new holder");
    expect(holder!.polls()).toBeLessThanOrEqual(resumed + 1);

    // The new holder killed: the first takes the source back, and a push starts exactly one run.
    other.server.process.child.kill("SIGKILL");
    await other.server.process.done;
    await eventually(() => polledBy(holder!, holder!), "the surviving worker to take the lease back", SLOW);
    const pushed = commit(work, "second");
    git(work, "push", "--quiet", "origin", "main");
    const runs = await eventually(
      async () => {
        const list = await holder!.server.json<RunSummary[]>("GET", "/runs?pipeline=ci");
        return list.length > 0 && list;
      },
      "a run for the push",
      SLOW,
    );
    expect(runs).toHaveLength(1);
    await holder!.server.status(runs[0]!.id, "completed");
    // Polls after the run ended see the same push: still one run.
    const after = holder!.polls();
    await eventually(() => holder!.polls() >= after + 3, "three more polls");
    expect(await holder!.server.json<RunSummary[]>("GET", "/runs?pipeline=ci")).toHaveLength(1);
    expect(shared.trace()).toEqual([`ci ${pushed}`]);
  });
});
