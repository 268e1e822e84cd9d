/**
 * Metrics of a known set of runs, scraped: runs by status and pipeline, started and finished, job
 * durations and queue waits as histograms (exact counts), a lock held and a job waiting for it, the
 * executor, storage commits; and state read at the scrape, so another process's runs count too.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { jobOf } from "../../../src/observability/names.js";
import { LocalRuns } from "../../../src/runs/local.js";
import { eventually, tempDir } from "../../helpers.js";
import { parseMetrics, type Sample, sample, total } from "../../prometheus.js";

const OK = `name: ok
jobs:
  build:
    run: echo built
  test:
    needs: [build]
    run: echo tested
`;

const BAD = `name: bad
jobs:
  setup:
    run: echo set up
    undo: echo torn down
  broken:
    needs: [setup]
    run: exit 3
`;

/** Holds the swarm lock until \`release\` exists. */
const HOLD = `name: hold
jobs:
  deploy:
    resources: { locks: [swarm] }
    run: while [ ! -e release ]; do sleep 0.05; done
`;

const opened: LocalRuns[] = [];
afterEach(async () => {
  for (const runs of opened.splice(0)) await runs.close();
});

async function open(dir: string): Promise<LocalRuns> {
  writeFileSync(join(dir, "slipway.yml"), "locks: { swarm: 1 }\n");
  const runs = await LocalRuns.open({
    db: join(dir, "slipway.db"),
    config: join(dir, "slipway.yml"),
    adopt: "all",
    launcher: false,
    pollIntervalMs: 50,
    observe: { metrics: true, env: {} },
  });
  opened.push(runs);
  return runs;
}

async function scrape(runs: LocalRuns): Promise<Sample[]> {
  return parseMetrics(await runs.runtime.observability.metrics!.scrape());
}

/** The scrape once `count` run ends were counted in all. */
function endsCounted(runs: LocalRuns, count: number): Promise<Sample[]> {
  return eventually(async () => {
    const m = await scrape(runs);
    return total(m, "slipway_runs_finished_total") === count && m;
  }, `${count} run ends counted`);
}

describe("metrics", () => {
  it("count a known set of runs: completed, failed and undone, one holding a lock and one waiting for it", async () => {
    const dir = tempDir();
    const runs = await open(dir);
    const submit = (name: string, source: string) => {
      writeFileSync(join(dir, name), source);
      return runs.submit({ file: join(dir, name), source });
    };
    const status = (id: string, want: string) =>
      eventually(async () => (await runs.show(id)).status === want, `run ${id} ${want}`);

    const ok = [await submit("ok.yml", OK), await submit("ok.yml", OK)];
    const bad = await submit("bad.yml", BAD);
    for (const run of ok) await status(run.id, "completed");
    await status(bad.id, "compensated");
    const holder = await submit("hold.yml", HOLD);
    await eventually(() => runs.runtime.jobs.resources!.admission.snapshot().granted === 1, "the lock held");
    const waiter = await submit("hold.yml", HOLD);
    await eventually(() => runs.runtime.jobs.resources!.admission.snapshot().waiting === 1, "a job waiting");

    // Storage shows an end before its events are told (told once the disk flush answers): the
    // counters fed by events are read once the ends are counted.
    let m = await endsCounted(runs, 3);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "ok", status: "completed" })).toBe(2);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "bad", status: "compensated" })).toBe(1);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "hold", status: "running" })).toBe(2);
    expect(
      sample(m, "cicd_pipeline_run_active", {
        cicd_pipeline_name: "hold",
        cicd_pipeline_run_state: "executing",
      }),
    ).toBe(2);
    expect(total(m, "cicd_pipeline_run_active", { cicd_pipeline_name: "ok" })).toBe(0);
    expect(sample(m, "slipway_lock_in_use", { lock: "swarm" })).toBe(1);
    expect(sample(m, "slipway_lock_capacity", { lock: "swarm" })).toBe(1);
    expect(sample(m, "slipway_jobs_waiting")).toBe(1);
    expect(
      sample(m, "slipway_jobs_waiting_for", { cicd_pipeline_name: "hold", resource: "lock:swarm" }),
    ).toBe(1);
    expect(sample(m, "cicd_worker_count", { cicd_worker_state: "available" })).toBe(1);
    expect(sample(m, "cicd_worker_count", { cicd_worker_state: "offline" })).toBe(0);
    expect(sample(m, "slipway_executor_heartbeat_age_seconds")).toBeGreaterThanOrEqual(0);

    expect(sample(m, "slipway_runs_started_total", { cicd_pipeline_name: "ok" })).toBe(2);
    expect(sample(m, "slipway_runs_started_total", { cicd_pipeline_name: "bad" })).toBe(1);
    expect(sample(m, "slipway_runs_started_total", { cicd_pipeline_name: "hold" })).toBe(2);
    expect(
      sample(m, "slipway_runs_finished_total", { cicd_pipeline_name: "ok", cicd_pipeline_result: "success" }),
    ).toBe(2);
    expect(
      sample(m, "slipway_runs_finished_total", {
        cicd_pipeline_name: "bad",
        cicd_pipeline_result: "failure",
      }),
    ).toBe(1);
    expect(total(m, "slipway_runs_finished_total", { cicd_pipeline_name: "hold" })).toBe(0);
    const runCount = (pipeline: string, result: string) =>
      sample(m, "cicd_pipeline_run_duration_seconds_count", {
        cicd_pipeline_name: pipeline,
        cicd_pipeline_result: result,
      });
    expect(runCount("ok", "success")).toBe(2);
    expect(runCount("bad", "failure")).toBe(1);
    // Every observation is in the +Inf bucket, and the sum is a duration.
    expect(
      sample(m, "cicd_pipeline_run_duration_seconds_bucket", {
        cicd_pipeline_name: "ok",
        cicd_pipeline_result: "success",
        le: "+Inf",
      }),
    ).toBe(2);
    expect(
      sample(m, "cicd_pipeline_run_duration_seconds_sum", {
        cicd_pipeline_name: "ok",
        cicd_pipeline_result: "success",
      }),
    ).toBeGreaterThan(0);

    const jobs = (pipeline: string, job: string, result: string) =>
      sample(m, "slipway_job_duration_seconds_count", {
        cicd_pipeline_name: pipeline,
        cicd_pipeline_task_name: job,
        cicd_pipeline_task_run_result: result,
      });
    expect(jobs("ok", "build", "success")).toBe(2);
    expect(jobs("ok", "test", "success")).toBe(2);
    expect(jobs("bad", "setup", "success")).toBe(1);
    expect(jobs("bad", "broken", "failure")).toBe(1);
    expect(
      sample(m, "cicd_pipeline_run_errors_total", { cicd_pipeline_name: "bad", error_type: "job" }),
    ).toBe(1);
    expect(sample(m, "slipway_storage_commit_duration_seconds_count")).toBeGreaterThan(0);
    expect(sample(m, "nodejs_eventloop_lag_max_seconds")).toBeGreaterThanOrEqual(0);
    // No run id in any label.
    for (const s of m)
      for (const value of Object.values(s.labels))
        for (const id of [...ok, bad, holder, waiter].map((r) => r.id)) expect(value).not.toContain(id);

    writeFileSync(join(dir, "release"), "");
    await status(holder.id, "completed");
    await status(waiter.id, "completed");
    m = await endsCounted(runs, 5);
    const waits = (resource: string) =>
      sample(m, "slipway_job_queue_wait_seconds_count", {
        cicd_pipeline_name: "hold",
        cicd_pipeline_task_name: "deploy",
        resource,
      });
    // The first deploy was admitted at once, the second after waiting for the lock.
    expect(waits("none")).toBe(1);
    expect(waits("lock:swarm")).toBe(1);
    expect(
      sample(m, "slipway_job_queue_wait_seconds_sum", {
        cicd_pipeline_name: "hold",
        cicd_pipeline_task_name: "deploy",
        resource: "lock:swarm",
      }),
    ).toBeGreaterThan(0);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "hold", status: "completed" })).toBe(2);
    expect(sample(m, "slipway_lock_in_use", { lock: "swarm" })).toBe(0);
    expect(sample(m, "slipway_jobs_waiting")).toBe(0);
    expect(total(m, "slipway_jobs_waiting_for")).toBe(0);
  });

  it("read runs by status from storage at the scrape: right after a restart, counters start at zero", async () => {
    const dir = tempDir();
    const first = await open(dir);
    writeFileSync(join(dir, "ok.yml"), OK);
    const run = await first.submit({ file: join(dir, "ok.yml"), source: OK });
    await eventually(async () => (await first.show(run.id)).status === "completed", "the run");
    await first.close();
    opened.splice(opened.indexOf(first), 1);

    const second = await open(dir);
    const m = await scrape(second);
    expect(sample(m, "slipway_runs", { cicd_pipeline_name: "ok", status: "completed" })).toBe(1);
    expect(total(m, "slipway_runs_started_total")).toBe(0);
  });

  it("keep one registry per process's runtime: two side by side do not collide", async () => {
    const a = await open(tempDir());
    const b = await open(tempDir());
    expect(a.runtime.observability.metrics!.registry).not.toBe(b.runtime.observability.metrics!.registry);
    expect(sample(await scrape(a), "slipway_jobs_waiting")).toBe(0);
    expect(sample(await scrape(b), "slipway_jobs_waiting")).toBe(0);
  });

  it("label a loop's jobs by their names, every iteration under the same label", async () => {
    const dir = tempDir();
    const runs = await open(dir);
    const source = `name: looped
jobs:
  attempts:
    loop: { max: 3, until: "\${{ false }}" }
    jobs:
      fix:
        run: echo fixed
`;
    writeFileSync(join(dir, "looped.yml"), source);
    const run = await runs.submit({ file: join(dir, "looped.yml"), source });
    // Its condition never holds: three iterations, then the loop fails (and the run with it).
    await eventually(async () => (await runs.show(run.id)).status === "compensated", "the looped run");
    const m = await endsCounted(runs, 1);
    const tasks = new Set(
      m
        .filter((s) => s.name === "slipway_job_duration_seconds_count")
        .map((s) => s.labels.cicd_pipeline_task_name),
    );
    expect(tasks.has("fix")).toBe(true);
    for (const task of tasks) expect(task).not.toMatch(/#/);
    expect(
      sample(m, "slipway_job_duration_seconds_count", {
        cicd_pipeline_name: "looped",
        cicd_pipeline_task_name: "fix",
        cicd_pipeline_task_run_result: "success",
      }),
    ).toBe(3);
  });

  it("label a job by its name, without the index of a loop iteration or a fan-out leg", () => {
    expect(jobOf("build")).toBe("build");
    expect(jobOf("build.linux")).toBe("build.linux");
    expect(jobOf("deploy.ready")).toBe("deploy.ready");
    expect(jobOf("attempts#2.fix")).toBe("fix");
    expect(jobOf("build#13.build")).toBe("build");
    expect(jobOf("outer#1.inner#2.step")).toBe("step");
  });
});
