/**
 * A real `slipway serve` whose database and logs are on small tmpfs volumes that fill up: the request or
 * job that hit the full disk fails with that reason, the server keeps answering reads and keeps every
 * run, and once space is back new runs go through and the affected runs finish. Needs root (to mount);
 * skipped with the reason elsewhere.
 */
import { execFileSync } from "node:child_process";
import {
  closeSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunDetail, RunSummary, SubmitResponse } from "../../../src/runs/schemas.js";
import { onPostgres } from "../../storage-backend.js";
import { eventually } from "../../wait.js";
import { Project } from "../cli/harness.js";
import { startServer } from "./server.js";

/** The database's volume, with a smaller volume for the logs mounted inside it (`<volume>/logs`). */
const mounts: string[] = [];
let volume = "";
let skipReason: string | undefined;

function mount(dir: string, size: string): void {
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdio: "pipe" });
  mounts.unshift(dir);
}

beforeAll(() => {
  if (onPostgres) {
    skipReason = "the database is a PostgreSQL server's, not a file on the volume that fills";
    return;
  }
  if (process.getuid?.() !== 0) {
    skipReason = "mounting a tmpfs needs root";
    return;
  }
  volume = mkdtempSync(join(tmpdir(), "slipway-full-"));
  try {
    mount(volume, "32m");
    mkdirSync(join(volume, "logs"));
    mount(join(volume, "logs"), "2m");
  } catch (error) {
    skipReason = `cannot mount a tmpfs here: ${String((error as { stderr?: unknown }).stderr ?? error).trim()}`;
  }
});

afterAll(() => {
  // The server was killed after the test (the harness's afterEach): nothing holds the volumes.
  for (const dir of mounts.splice(0)) {
    try {
      execFileSync("umount", [dir], { stdio: "pipe" });
    } catch {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    }
  }
  if (volume) rmSync(volume, { recursive: true, force: true });
});

/** A project whose state (database, engine log, job logs) is on the volume. */
class VolumeProject extends Project {
  override get db(): string {
    return join(volume, "slipway.db");
  }
}

/** Fills the volume at `dir` to the last byte; returns the filler file, to delete to give the space back. */
function fill(dir: string): string {
  const path = join(dir, "filler");
  const fd = openSync(path, "a");
  try {
    for (const size of [1024 * 1024, 4096, 1]) {
      const chunk = Buffer.alloc(size, 1);
      try {
        for (;;) writeSync(fd, chunk);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOSPC") throw error;
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/** Processes (of jobs) whose command line names `text`. */
function jobsWith(text: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(text)) pids.push(Number(entry));
    } catch {} // ended meanwhile
  }
  return pids;
}

/** A job that waits for `gate`, then writes far more output than fits in the page its log has. */
const GATED = (gate: string) => `
    run: |
      echo started
      until [ -e ${gate} ]; do sleep 0.05; done
      for i in $(seq 1 400); do echo "line $i: enough output to need new pages of the log file"; done`;

describe("slipway serve on a volume that fills", () => {
  it("fails what hit the full disk with that reason, keeps serving and keeps every run, and writes again once space returns", async (ctx) => {
    if (skipReason !== undefined) return ctx.skip(skipReason);
    const project = new VolumeProject();
    const gates = { logs: join(project.dir, "logs-gate"), db: join(project.dir, "db-gate") };
    project.write(
      "logs.yml",
      `name: logs-full
jobs:
  setup:
    run: echo setup >> trace
    undo: echo undo-setup >> trace
  work:
    needs: [setup]${GATED(gates.logs)}
`,
    );
    project.write(
      "db.yml",
      `name: db-full
jobs:
  work:${GATED(gates.db)}
  after:
    needs: [work]
    run: echo after >> trace
`,
    );
    project.write("quick.yml", "name: quick\njobs:\n  one:\n    run: echo quick >> trace\n");
    const server = await startServer(project);
    const alive = () =>
      server.process.child.exitCode === null && server.process.child.signalCode === null
        ? undefined
        : `the server exited (${server.process.child.exitCode ?? server.process.child.signalCode}):\n${server.process.stderr}`;
    const submit = async (file: string, expect = 201) =>
      server.json<SubmitResponse>(
        "POST",
        "/runs",
        { file: { name: `${project.dir}/${file}`, source: project.read(file) } },
        expect,
      );
    const show = (id: string) => server.json<RunDetail>("GET", `/runs/${id}`);
    const stepOf = async (id: string, job: string) => {
      const run = await show(id);
      seen = JSON.stringify({ status: run.status, steps: run.steps });
      return run.steps.find((s) => s.job === job);
    };
    let seen = "";
    const waitFor = <T>(check: () => Promise<T | undefined | false>, what: string) =>
      eventually(check, () => `${what} (last seen: ${seen})`, {
        timeoutMs: 30_000,
        intervalMs: 50,
        abort: alive,
      });

    // 1. Only the logs' volume is full: the job that cannot write its log fails with that reason, and
    // the run takes its normal failure path (its completed job is undone) since the database can write.
    const first = await submit("logs.yml");
    await waitFor(async () => (await stepOf(first.id, "work"))?.status === "running", "the first job to run");
    let logsFiller = fill(join(volume, "logs"));
    project.write("logs-gate", "");
    const failed = await waitFor(async () => {
      const step = await stepOf(first.id, "work");
      return step?.status === "failed" && step;
    }, "the job that could not write its log to fail");
    expect(failed.error).toContain("the disk is full: cannot write the job's");
    expect(failed.error).toContain(join(volume, "logs", first.id));
    // Its undo needs a pid file on the same full volume: undone now, or after a resume once space is back.
    let run = await server.status(first.id, "compensated", "needs_attention");
    rmSync(logsFiller);
    if (run.status === "needs_attention") {
      expect(run.steps.find((s) => s.job === "setup")?.undoError).toContain("the disk is full");
      await server.json("POST", `/runs/${first.id}/resume`, {});
      run = await server.status(first.id, "compensated");
    }
    expect(run.cause).toMatchObject({ kind: "failure", action: "work" });
    expect(project.count("undo-setup")).toBe(1);

    // 2. Both volumes full, with two runs under way.
    const runs = [(await submit("db.yml")).id, (await submit("db.yml")).id];
    for (const id of runs)
      await waitFor(async () => (await stepOf(id, "work"))?.status === "running", `run ${id}'s job to run`);
    const dbFiller = fill(volume);
    logsFiller = fill(join(volume, "logs"));

    // A submission fails with the reason and where, and leaves nothing. (SQLite may still fit a write
    // in what its WAL file already holds: a submission that fits is accepted, and kept like any run.)
    const quickBody = { file: { name: `${project.dir}/quick.yml`, source: project.read("quick.yml") } };
    const accepted: string[] = [];
    let refused: Response | undefined;
    for (let i = 0; i < 20 && refused === undefined; i++) {
      const answer = await server.api("/runs", {
        method: "POST",
        body: JSON.stringify(quickBody),
        headers: { "content-type": "application/json" },
      });
      if (answer.status === 201) accepted.push(((await answer.json()) as SubmitResponse).id);
      else refused = answer;
    }
    expect(refused?.status).toBe(507);
    expect(await refused!.json()).toEqual({
      error: { code: "disk_full", message: `the disk is full: cannot write the database ${project.db}` },
    });

    // Reads still answer.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const listed = await server.json<RunSummary[]>("GET", "/runs");
    expect(listed.map((r) => r.id).sort()).toEqual([first.id, ...runs, ...accepted].sort());
    expect((await show(runs[0]!)).status).toBe("running");
    expect((await server.api(`/runs/${runs[0]}/logs`)).status).toBe(200);

    // The jobs now write more than their logs can hold: they fail, for that reason. Whether storage
    // can record it depends on what SQLite finds already allocated in its WAL file: either the run
    // stays as stored (the job running, its first attempt) and continues once space is back, or its
    // failure is recorded and the run ends by its normal failure path.
    project.write("db-gate", "");
    await waitFor(async () => jobsWith(gates.db).length === 0, "the gated jobs to end");
    for (const id of runs) {
      const stored = await show(id);
      const work = stored.steps.find((s) => s.job === "work");
      if (work?.status === "failed") expect(work.error).toContain("the disk is full: cannot write the job's");
      else expect([stored.status, work?.status]).toEqual(["running", "running"]);
    }
    expect(server.process.stderr).toContain(
      `slipway: cannot write the log ${join(volume, "slipway.log")}: the disk is full`,
    );

    // 3. Space is back: new submissions work, the affected runs finish, the database is intact.
    rmSync(dbFiller);
    rmSync(logsFiller);
    const quick = await submit("quick.yml");
    expect((await server.status(quick.id, "completed")).status).toBe("completed");
    let completed = 0;
    for (const id of runs) {
      const done = await server.status(id, "completed", "compensated");
      if (done.status === "completed") {
        completed++;
        // Its first attempt's end was never stored: the job ran again.
        expect(done.steps.map((s) => [s.job, s.status])).toEqual([
          ["work", "completed"],
          ["after", "completed"],
        ]);
        expect(done.steps[0]!.attempt).toBeGreaterThan(1);
      } else {
        expect(done.cause).toMatchObject({ kind: "failure", action: "work" });
        expect(done.steps.find((s) => s.job === "work")?.error).toContain("the disk is full");
      }
    }
    expect(project.count("after")).toBe(completed);
    for (const id of accepted) await server.status(id, "completed", "compensated");
    const db = new Database(project.db, { readonly: true });
    try {
      expect(db.pragma("integrity_check", { simple: true })).toBe("ok");
    } finally {
      db.close();
    }
    expect(alive()).toBeUndefined();
    await waitFor(
      async () => server.process.stderr.includes(`${join(volume, "slipway.log")} is written again`),
      "the engine's log to be written again",
    );
  });
});
