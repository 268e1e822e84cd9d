/**
 * Prometheus metrics of a process that runs pipeline runs, in a registry of its own (never
 * prom-client's global one: two servers or an embedded executor in one process must not collide).
 * What reflects state (runs by status, pools and locks, waiting jobs, executors) is read from storage
 * and admission at each scrape, so it is right after a restart; counters and histograms count what
 * happened in this process since it started. Names follow the OpenTelemetry CI/CD conventions where
 * they have one (`cicd.pipeline.run.duration` is `cicd_pipeline_run_duration_seconds`); no label
 * holds a run id. docs/observability.md lists them.
 */
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import { ENDING_EVENTS, type RunEvent } from "../engine/events.js";
import type { Executor } from "../engine/executor.js";
import { DEFAULT_LEASE_MS } from "../engine/liveness.js";
import type { Admitted, JobResources } from "../pipeline/resources.js";
import type { SqlStorage } from "../storage/open.js";
import { FINAL_STATUSES } from "../storage/types.js";
import { jobOf, runResult, runState } from "./names.js";

const PIPELINE = "cicd_pipeline_name";
const TASK = "cicd_pipeline_task_name";
/** Seconds: from a one-second job to a six-hour one. */
const DURATION_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 21600];
const WAIT_BUCKETS = [0.01, 0.1, 0.5, 1, 5, 15, 30, 60, 300, 900, 1800, 3600];
const COMMIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5];

export interface MetricsSources {
  storage: SqlStorage;
  executor: Executor;
  /** Admission: pools, locks, who waits; absent: none of those metrics. */
  resources?: JobResources | undefined;
  /** Since when an executor's silence makes it offline, ms. Default the engine's lease. */
  leaseMs?: number;
}

export class Metrics {
  readonly registry = new Registry();
  readonly #sources: MetricsSources;
  readonly #stop: (() => void)[] = [];
  readonly #loop: IntervalHistogram;
  #scraping: Promise<string> | undefined;
  /**
   * When each run that started here started, and when each attempt in flight started (or was admitted,
   * once: its wait is the queue wait's, not the job's), by run then action.
   */
  readonly #runs = new Map<
    string,
    { startedAt?: number; jobs: Map<string, { at: number; admitted: boolean }>; cancelling?: boolean }
  >();

  readonly #runsStarted: Counter;
  readonly #runsFinished: Counter;
  readonly #runDuration: Histogram;
  readonly #errors: Counter;
  readonly #jobDuration: Histogram;
  readonly #queueWait: Histogram;
  readonly #commit: Histogram;
  readonly #byStatus: Gauge;
  readonly #active: Gauge;
  readonly #workers: Gauge;
  readonly #heartbeat: Gauge;
  readonly #pools: Gauge[];
  readonly #locks: Gauge[];
  readonly #waitingJobs: Gauge;
  readonly #waitingFor: Gauge;
  readonly #lag: Gauge[];

  constructor(sources: MetricsSources) {
    this.#sources = sources;
    const registers = [this.registry];
    const counter = (name: string, help: string, labelNames: string[]) =>
      new Counter({ name, help, labelNames, registers });
    const gauge = (name: string, help: string, labelNames: string[] = []) =>
      new Gauge({ name, help, labelNames, registers });
    const histogram = (name: string, help: string, labelNames: string[], buckets: number[]) =>
      new Histogram({ name, help, labelNames, buckets, registers });

    this.#runDuration = histogram(
      "cicd_pipeline_run_duration_seconds",
      "Duration of pipeline runs that ended in this process, from their creation, by pipeline and result.",
      [PIPELINE, "cicd_pipeline_result"],
      DURATION_BUCKETS,
    );
    this.#active = gauge(
      "cicd_pipeline_run_active",
      "Runs not ended, by pipeline and state (pending: parked in a durable wait; executing; finalizing: undoing).",
      [PIPELINE, "cicd_pipeline_run_state"],
    );
    this.#errors = counter(
      "cicd_pipeline_run_errors_total",
      "Failed attempts of jobs (error_type job), undos (undo) and cleanups (cleanup) in this process.",
      [PIPELINE, "error_type"],
    );
    this.#workers = gauge(
      "cicd_worker_count",
      "Executors sharing the database, by state (available: heartbeat within the lease; offline).",
      ["cicd_worker_state"],
    );
    this.#byStatus = gauge("slipway_runs", "Runs in the database by pipeline and status.", [
      PIPELINE,
      "status",
    ]);
    this.#runsStarted = counter("slipway_runs_started_total", "Runs started in this process, by pipeline.", [
      PIPELINE,
    ]);
    this.#runsFinished = counter(
      "slipway_runs_finished_total",
      "Runs that ended in this process (held or needing attention included), by pipeline and result.",
      [PIPELINE, "cicd_pipeline_result"],
    );
    this.#jobDuration = histogram(
      "slipway_job_duration_seconds",
      "Duration of job attempts in this process, from start to completion or failure, by pipeline, job and result.",
      [PIPELINE, TASK, "cicd_pipeline_task_run_result"],
      DURATION_BUCKETS,
    );
    this.#queueWait = histogram(
      "slipway_job_queue_wait_seconds",
      "Time jobs waited for admission (pools, locks) before starting, by pipeline, job and what they waited for (none: admitted at once).",
      [PIPELINE, TASK, "resource"],
      WAIT_BUCKETS,
    );
    this.#commit = histogram(
      "slipway_storage_commit_duration_seconds",
      "Time each group commit of run transitions took in storage (one transaction, one fsync).",
      [],
      COMMIT_BUCKETS,
    );
    this.#heartbeat = gauge(
      "slipway_executor_heartbeat_age_seconds",
      "Seconds since each executor sharing the database last beat its heartbeat.",
      ["cicd_worker_id", "host"],
    );
    this.#pools = [
      gauge("slipway_memory_capacity_bytes", "Memory the scheduler hands out to jobs."),
      gauge("slipway_memory_in_use_bytes", "Memory granted to running jobs."),
      gauge("slipway_cpu_capacity_cores", "CPU cores the scheduler hands out to jobs."),
      gauge("slipway_cpu_in_use_cores", "CPU cores granted to running jobs."),
      gauge("slipway_disk_capacity_bytes", "Work-volume disk the scheduler hands out to jobs."),
      gauge("slipway_disk_in_use_bytes", "Work-volume disk granted to running jobs."),
    ];
    this.#locks = [
      gauge("slipway_lock_capacity", "How many jobs may hold each lock at once.", ["lock"]),
      gauge("slipway_lock_in_use", "How many jobs hold each lock now.", ["lock"]),
    ];
    this.#waitingJobs = gauge("slipway_jobs_waiting", "Jobs waiting for admission (pools, locks) now.");
    this.#waitingFor = gauge(
      "slipway_jobs_waiting_for",
      "Jobs waiting for admission now, by pipeline and each resource they wait for (a job short of two counts under both).",
      [PIPELINE, "resource"],
    );
    this.#lag = [
      gauge("nodejs_eventloop_lag_mean_seconds", "Mean event-loop delay since the last scrape."),
      gauge("nodejs_eventloop_lag_p50_seconds", "Median event-loop delay since the last scrape."),
      gauge("nodejs_eventloop_lag_p99_seconds", "99th percentile of event-loop delay since the last scrape."),
      gauge("nodejs_eventloop_lag_max_seconds", "Largest event-loop delay since the last scrape."),
    ];

    this.#loop = monitorEventLoopDelay({ resolution: 10 });
    this.#loop.enable();
    this.#stop.push(() => this.#loop.disable());
    this.#stop.push(sources.executor.on((event) => this.#event(event)));
    if (sources.resources) this.#stop.push(sources.resources.onAdmitted((a) => this.#admitted(a)));
    sources.storage.onCommit = (ms) => this.#commit.observe(ms / 1000);
    this.#stop.push(() => {
      sources.storage.onCommit = undefined;
    });
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The text exposition of every metric, state read now; scrapes at the same moment share one reading. */
  scrape(): Promise<string> {
    this.#scraping ??= this.#refresh()
      .then(() => this.registry.metrics())
      .finally(() => {
        this.#scraping = undefined;
      });
    return this.#scraping;
  }

  close(): void {
    for (const stop of this.#stop.splice(0)) stop();
    this.#runs.clear();
  }

  #run(runId: string) {
    let run = this.#runs.get(runId);
    if (!run) {
      run = { jobs: new Map() };
      this.#runs.set(runId, run);
    }
    return run;
  }

  #event(event: RunEvent): void {
    const pipeline = event.saga;
    switch (event.type) {
      case "run:started":
        this.#runsStarted.inc({ [PIPELINE]: pipeline });
        this.#run(event.runId).startedAt = event.at;
        return;
      case "run:compensating":
        if (event.data?.kind === "cancel") this.#run(event.runId).cancelling = true;
        return;
      case "action:started":
        if (event.action !== null)
          this.#run(event.runId).jobs.set(event.action, { at: event.at, admitted: false });
        return;
      case "action:completed":
      case "action:failed": {
        if (event.type === "action:failed") this.#errors.inc({ [PIPELINE]: pipeline, error_type: "job" });
        const run = this.#runs.get(event.runId);
        const started = event.action === null ? undefined : run?.jobs.get(event.action);
        if (started === undefined || event.action === null) return;
        run!.jobs.delete(event.action);
        const result =
          event.type === "action:completed" ? "success" : run!.cancelling ? "cancellation" : "failure";
        this.#jobDuration.observe(
          { [PIPELINE]: pipeline, [TASK]: jobOf(event.action), cicd_pipeline_task_run_result: result },
          Math.max(0, event.at - started.at) / 1000,
        );
        return;
      }
      case "undo:failed":
        this.#errors.inc({ [PIPELINE]: pipeline, error_type: "undo" });
        return;
      case "cleanup:failed":
        this.#errors.inc({ [PIPELINE]: pipeline, error_type: "cleanup" });
        return;
      default:
        if (ENDING_EVENTS.has(event.type)) this.#ended(event);
    }
  }

  #ended(event: RunEvent): void {
    const result = runResult(event.type)!;
    const labels = { [PIPELINE]: event.saga, cicd_pipeline_result: result };
    this.#runsFinished.inc(labels);
    const startedAt = this.#runs.get(event.runId)?.startedAt;
    this.#runs.delete(event.runId);
    const observe = (from: number) => this.#runDuration.observe(labels, Math.max(0, event.at - from) / 1000);
    if (startedAt !== undefined) return observe(startedAt);
    // Started before this process (resumed after a restart): its creation is in storage.
    this.#sources.storage.getRun(event.runId).then(
      (record) => record && observe(record.createdAt),
      () => {},
    );
  }

  #admitted({ runId, pipeline, action, grant }: Admitted): void {
    const started = this.#runs.get(runId)?.jobs.get(action);
    if (started && !started.admitted) {
      started.at = Math.max(started.at, grant.since);
      started.admitted = true;
    }
    const resource = grant.waitedFor.length === 0 ? "none" : grant.waitedFor.join("+");
    this.#queueWait.observe({ [PIPELINE]: pipeline, [TASK]: jobOf(action), resource }, grant.waitedMs / 1000);
  }

  async #refresh(): Promise<void> {
    const { storage, resources } = this.#sources;
    this.#byStatus.reset();
    this.#active.reset();
    const final = new Set<string>(FINAL_STATUSES);
    for (const { saga, status, count } of await storage.countRuns()) {
      this.#byStatus.set({ [PIPELINE]: saga, status }, count);
      const state = final.has(status) ? undefined : runState(status);
      if (state) this.#active.inc({ [PIPELINE]: saga, cicd_pipeline_run_state: state }, count);
    }

    const now = Date.now();
    const leaseMs = this.#sources.leaseMs ?? DEFAULT_LEASE_MS;
    this.#workers.reset();
    this.#heartbeat.reset();
    this.#workers.set({ cicd_worker_state: "available" }, 0);
    this.#workers.set({ cicd_worker_state: "offline" }, 0);
    for (const executor of await storage.listExecutors()) {
      const age = Math.max(0, now - executor.heartbeatAt);
      this.#workers.inc({ cicd_worker_state: age > leaseMs ? "offline" : "available" });
      this.#heartbeat.set({ cicd_worker_id: executor.id, host: executor.host }, age / 1000);
    }

    if (resources) {
      const snapshot = resources.admission.snapshot();
      const [memory, memoryUsed, cpu, cpuUsed, disk, diskUsed] = this.#pools;
      memory!.set(snapshot.capacity.memoryBytes);
      memoryUsed!.set(snapshot.inUse.memoryBytes);
      cpu!.set(snapshot.capacity.cpu);
      cpuUsed!.set(snapshot.inUse.cpu);
      disk!.set(snapshot.capacity.diskBytes);
      diskUsed!.set(snapshot.inUse.diskBytes);
      const [slots, held] = this.#locks;
      slots!.reset();
      held!.reset();
      for (const [lock, capacity] of Object.entries(snapshot.capacity.locks)) {
        slots!.set({ lock }, capacity);
        held!.set({ lock }, snapshot.inUse.locks[lock] ?? 0);
      }
      this.#waitingJobs.set(snapshot.waiting);
      // Why they wait, as `slipway queue` says it (the queue explains itself this often anyway).
      this.#waitingFor.reset();
      if (snapshot.waiting > 0)
        for (const { ticket, blockers } of resources.admission.explain())
          for (const { resource } of blockers)
            this.#waitingFor.inc({ [PIPELINE]: ticket.pipeline, resource });
    }

    const [mean, p50, p99, max] = this.#lag;
    const loop = this.#loop;
    // Before the first sample the histogram reads NaN (mean) or huge (min): report 0.
    const seconds = (ns: number) => (Number.isFinite(ns) && loop.count > 0 ? ns / 1e9 : 0);
    mean!.set(seconds(loop.mean));
    p50!.set(seconds(loop.percentile(50)));
    p99!.set(seconds(loop.percentile(99)));
    max!.set(seconds(loop.max));
    loop.reset();
  }
}
