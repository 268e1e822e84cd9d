/**
 * The pipeline host: one long-lived executor that runs every pipeline run a server is given, and
 * continues, at start, every incomplete run no live process runs (after killing what its dead process
 * left running). The HTTP API (`app.ts`) is a thin layer over it; so could be any other front end.
 */
import { mkdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import type { Logger } from "pino";
import { openStorage } from "../cli/state.js";
import type { Saga } from "../definition/saga.js";
import { ENDING_EVENTS, type ExecutionEvent } from "../engine/events.js";
import { Executor } from "../engine/executor.js";
import { NotFoundError, SlipwayError } from "../errors.js";
import type { Json } from "../json.js";
import { type CompiledRun, compileRun, recompile } from "../pipeline/compile.js";
import { runRoster } from "../pipeline/concurrency.js";
import type { RunRequest } from "../pipeline/plan.js";
import { JobResources } from "../pipeline/resources.js";
import { runSpecOf } from "../pipeline/run-spec.js";
import type { JobRuntime } from "../pipeline/step-context.js";
import { admissionFor, loadServerConfig } from "../scheduler/config.js";
import { sweepRunOrphans } from "../shell/run-directory.js";
import type { SqliteStorage } from "../storage/sqlite/sqlite-storage.js";
import {
  ACTIVE_STATUSES,
  type ExecutionRecord,
  type ExecutionStatus,
  FINAL_STATUSES,
} from "../storage/types.js";
import { queueFromStorage } from "./explain.js";
import { markFollowed, runnerCheck } from "./liveness.js";
import { openLogs } from "./logs.js";
import { findRun, planOf, runDetail, runSummary } from "./records.js";
import type {
  ActionResponse,
  QueueEntry,
  ResourcesResponse,
  RunDetail,
  RunSummary,
  SubmitResponse,
} from "./schemas.js";

export interface PipelineHostOptions {
  /** The SQLite database file. */
  db: string;
  /** Job logs, pid files and staged data; default the database's directory. */
  dataDir?: string;
  /** The engine's log. */
  logger?: Logger;
  /** Pipelines runs can be submitted by name: pipeline name → pipeline file. */
  registered?: ReadonlyMap<string, string>;
  /**
   * How this host's jobs run. Default: logs under `dataDir`, jobs admitted by the pools and locks of
   * `config` (the machine's own when there is none).
   */
  runtime?: JobRuntime;
  /** The server's config file: resource pools, locks, key weights. */
  config?: string;
  /** How often storage is checked for what other processes wrote (signals, cancels), ms. Default 200. */
  pollIntervalMs?: number;
}

/** A run to submit: a pipeline file's text, or a pipeline registered with the host, by name. */
export type PipelineSource = { file: string; source: string } | { pipeline: string };

export interface SubmitOptions extends RunRequest {
  /** The run name, e.g. `{ticket}-{branch}-{attempt}`. */
  name?: string | undefined;
}

/** Compiled runs kept by their file, text, inputs and tiers (a burst of the same submission parses once). */
const COMPILED_CACHE_SIZE = 64;

/** Statuses a run stays in until someone acts: ended, held, or needing attention. */
const STOPPED: readonly ExecutionStatus[] = [...FINAL_STATUSES, "needs_attention", "failed"];

export class PipelineHost {
  readonly storage: SqliteStorage;
  readonly executor: Executor;
  readonly dataDir: string;
  readonly runtime: JobRuntime;
  readonly config: string | undefined;
  readonly #logger: Logger;
  readonly #registered: ReadonlyMap<string, string>;
  /** Sagas registered with the executor, by `name@version`: a run's saga is compiled once per plan. */
  readonly #sagas = new Map<string, Saga>();
  /** Runs held here per saga (`name@version`), and each held run's saga. */
  readonly #users = new Map<string, Set<string>>();
  readonly #sagaOfRun = new Map<string, string>();
  /**
   * Runs this host has taken (submitted, or swept and recompiled): the only ones its executor accepts,
   * each with the remover of the mark that tells other processes a live process runs it.
   */
  readonly #hosted = new Map<string, () => void>();
  /**
   * The last compiled runs, by file, text, inputs and tiers (insertion order is recency). Compiling is
   * pure in those, and the same submission arriving many times (a burst of CI runs of one pipeline)
   * would otherwise parse and plan the YAML every time: the largest part of a submission's CPU.
   */
  readonly #compiled = new Map<string, CompiledRun>();
  #stopListening: (() => void) | undefined;

  private constructor(
    storage: SqliteStorage,
    executor: Executor,
    options: PipelineHostOptions,
    dataDir: string,
    runtime: JobRuntime,
  ) {
    this.storage = storage;
    this.executor = executor;
    this.dataDir = dataDir;
    this.runtime = runtime;
    this.config = options.config;
    this.#logger = executor.logger;
    this.#registered = options.registered ?? new Map();
  }

  /** Opens the database and the executor, then continues every incomplete run nobody alive runs. */
  static async open(options: PipelineHostOptions): Promise<PipelineHost> {
    const dataDir = options.dataDir ?? dirname(options.db);
    mkdirSync(dataDir, { recursive: true });
    // A bad config fails the start before anything is opened.
    const runtime: JobRuntime = options.runtime ?? {
      dataDir,
      resources: new JobResources(admissionFor(loadServerConfig(options.config, dataDir))),
    };
    const storage = await openStorage(options.db);
    let host: PipelineHost | undefined;
    let executor: Executor;
    try {
      executor = await Executor.open({
        storage,
        sagas: [],
        dataDir,
        ...(options.logger && { logger: options.logger }),
        pollIntervalMs: options.pollIntervalMs ?? 200,
        // Only runs taken here: a run another live process runs, or whose orphans were not swept yet, is not ours.
        accept: (execution) => (host ? host.#hosted.has(execution.id) : false),
        recover: false,
      });
    } catch (error) {
      await storage.close();
      throw error;
    }
    host = new PipelineHost(storage, executor, options, dataDir, runtime);
    runtime.runs = runRoster(storage, executor);
    runtime.resources?.usePeaks(storage.peaks());
    // A run that ended (or stopped for someone to act) is no longer held here: another process may continue it.
    host.#stopListening = executor.on((event) => {
      if (!ENDING_EVENTS.has(event.type)) return;
      host.#release(event.executionId);
      // A grant kept for a probe that never ran (cancelled in between) goes back to the pool.
      runtime.resources?.releaseRun(event.executionId);
    });
    try {
      await host.#recoverAll();
    } catch (error) {
      await host.close();
      throw error;
    }
    return host;
  }

  /** Compiles a run, registers its saga and starts it. Problems in the file, inputs or tiers throw (400). */
  async submit(what: PipelineSource, request: SubmitOptions): Promise<SubmitResponse> {
    const { file, source } = "pipeline" in what ? this.#registeredSource(what.pipeline) : what;
    const compiled = this.#compile(file, source, request);
    const saga = this.#register(compiled);
    const id = this.executor.newExecutionId();
    this.#hold(id, saga);
    try {
      const name = request.name;
      await this.executor.start(
        saga,
        { run: compiled.spec },
        name === undefined ? { id } : { id, runName: name },
      );
    } catch (error) {
      this.#release(id);
      throw error;
    }
    return {
      id,
      name: request.name ?? null,
      pipeline: compiled.plan.pipeline.name,
      jobs: compiled.plan.steps.length,
    };
  }

  /** Runs, newest first, optionally only those in `statuses`. */
  async list(statuses?: readonly ExecutionStatus[]): Promise<RunSummary[]> {
    const records = await this.storage.listExecutions(statuses?.length ? { statuses } : {});
    return records.reverse().map(runSummary);
  }

  /** One run (by id or run name) with its steps and plan. */
  async show(ref: string): Promise<RunDetail> {
    const record = await this.#find(ref);
    const snapshot = await this.storage.load(record.id);
    if (!snapshot) throw new NotFoundError(`no run "${ref}"`);
    const detail = runDetail(snapshot);
    for (const step of detail.steps) {
      const queued =
        step.status === "running" ? this.runtime.resources?.explain(record.id, step.job) : undefined;
      if (queued !== undefined) step.queued = queued;
    }
    return detail;
  }

  /** Requests a cancel: the run stops its jobs and runs the undos, here or in the process running it. */
  async cancel(ref: string, reason: string): Promise<ActionResponse> {
    const record = await this.#find(ref);
    const runner = await this.#takeIfFree(record);
    const seq = await this.#lastSeq(record.id);
    const updated = await this.executor.cancel(record.id, reason);
    return {
      id: record.id,
      status: updated.status,
      message: runner ?? "cancel requested: its jobs are stopping and the undos run",
      seq,
    };
  }

  /** Persists a signal; the run's wait picks it up here, or in the process running it. */
  async signal(
    ref: string,
    name: string,
    payload: Json,
  ): Promise<{ id: string; signal: string; seq: number }> {
    const record = await this.#find(ref);
    if (FINAL_STATUSES.includes(record.status))
      throw new SlipwayError(
        "conflict",
        `run ${record.id} has already ended (${record.status}); signal "${name}" not delivered`,
      );
    await this.#takeIfFree(record);
    const sent = await this.executor.signal(record.id, name, payload);
    return { id: record.id, signal: name, seq: sent.seq };
  }

  /** Continues a held run (failed, `on_failure: hold`) from its failed jobs. */
  async retry(ref: string): Promise<ActionResponse> {
    const record = await this.#find(ref);
    if (record.status !== "failed")
      throw new SlipwayError(
        "conflict",
        `run ${record.id} is ${record.status}: only a held run (failed, on_failure: hold) can be retried${record.status === "needs_attention" ? "; resume it instead" : ""}`,
      );
    await this.#take(record);
    const seq = await this.#lastSeq(record.id);
    await this.executor.retry(record.id);
    return { id: record.id, status: "running", message: "retrying from its failed jobs", seq };
  }

  /**
   * Continues a run that needs attention (its failed undos run again), or an incomplete run no live
   * process runs (one whose `slipway run` died while this server was up).
   */
  async resume(ref: string): Promise<ActionResponse> {
    const record = await this.#find(ref);
    if (record.status === "failed")
      throw new SlipwayError("conflict", `run ${record.id} is held after a failure: retry it instead`);
    if (FINAL_STATUSES.includes(record.status))
      throw new SlipwayError("conflict", `run ${record.id} has ended (${record.status}): nothing to resume`);
    const seq = await this.#lastSeq(record.id);
    if (this.#hosted.has(record.id))
      return { id: record.id, status: record.status, message: "already running on this server", seq };
    await this.#take(record);
    if (record.status === "needs_attention") await this.executor.resume(record.id);
    else await this.executor.recover();
    return { id: record.id, status: "running", message: "resumed", seq };
  }

  /**
   * The run's events: the persisted history after `after` (a seq), then live events (progress
   * included) until the run ends or stops for someone to act. Throws NotFoundError before streaming.
   */
  async events(
    ref: string,
    options: { after?: number; signal?: AbortSignal } = {},
  ): Promise<AsyncGenerator<ExecutionEvent>> {
    const record = await this.#find(ref);
    return this.#events(record, options.after ?? 0, options.signal);
  }

  async *#events(
    record: ExecutionRecord,
    after: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<ExecutionEvent> {
    const id = record.id;
    const buffer: ExecutionEvent[] = [];
    let wake: (() => void) | undefined;
    // Listen first, then read the history: nothing falls between the two.
    const stop = this.executor.on((event) => {
      buffer.push(event);
      wake?.();
    }, id);
    const onAbort = () => wake?.();
    signal?.addEventListener("abort", onAbort);
    let last = after;
    const newer = async () => (await this.executor.history(id)).filter((e) => e.seq! > last);
    try {
      for (const event of await newer()) {
        last = event.seq!;
        yield event;
      }
      const now = await this.storage.getExecution(id);
      if (!now || (STOPPED.includes(now.status) && !this.#hosted.has(id))) return;
      while (!signal?.aborted) {
        while (buffer.length > 0) {
          const event = buffer.shift()!;
          if (event.seq !== undefined) {
            if (event.seq <= last) continue;
            // Events published while the history was read, or a batch that was not published here.
            for (const missed of await newer()) if (missed.seq! < event.seq) yield missed;
            last = event.seq;
          }
          yield event;
          if (ENDING_EVENTS.has(event.type)) return;
        }
        // A run another process runs publishes nothing here: read its history now and then.
        await new Promise<void>((resolve) => {
          wake = resolve;
          setTimeout(resolve, this.#hosted.has(id) ? 5_000 : 500).unref();
        });
        wake = undefined;
        if (buffer.length === 0)
          for (const event of await newer()) {
            last = event.seq!;
            yield event;
            if (ENDING_EVENTS.has(event.type)) return;
          }
      }
    } finally {
      stop();
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** The run's job output as text; `follow` reads on until the run ends. */
  async logs(
    ref: string,
    options: { job?: string; follow?: boolean; signal?: AbortSignal },
  ): Promise<AsyncGenerator<string>> {
    const record = await this.#find(ref);
    return openLogs({ storage: this.storage, dataDir: this.dataDir, record, ...options });
  }

  /** Every job of an unfinished run that is not running, and why: admission's word first. */
  queue(): Promise<QueueEntry[]> {
    const resources = this.runtime.resources;
    return queueFromStorage(this.storage, resources && ((run, action) => resources.explain(run, action)));
  }

  /** The scheduler's pools, and the jobs running now with what they declared. */
  async resources(): Promise<ResourcesResponse> {
    const running: ResourcesResponse["running"] = [];
    for (const record of await this.storage.listExecutions({ statuses: ["running", "compensating"] })) {
      const snapshot = await this.storage.load(record.id);
      const plan = planOf(record);
      for (const step of snapshot?.steps ?? []) {
        if (step.status !== "running" && step.status !== "undoing") continue;
        // A started step still waiting for admission is queued, not running: `/queue` lists it.
        if (this.runtime.resources?.explain(record.id, step.action) !== undefined) continue;
        const planned = plan?.steps.find((s) => s.action === step.action);
        running.push({
          run: record.id,
          job: step.action,
          label: planned?.label ?? step.action,
          since: step.startedAt,
          declared: JSON.parse(JSON.stringify(planned?.job.resources ?? {})) as Record<string, unknown>,
        });
      }
    }
    return { pools: this.runtime.resources?.pools() ?? [], running };
  }

  /**
   * Stops: running jobs are stopped and the runs released, left in the database for the next start
   * (or any other process) to continue.
   */
  async close(): Promise<void> {
    this.#stopListening?.();
    // The executor first: closing aborts jobs waiting for admission, which leaves them resumable;
    // closing admission first would fail them.
    await this.executor.close();
    this.runtime.resources?.admission.close();
    for (const id of [...this.#hosted.keys()]) this.#release(id);
    await this.storage.close();
  }

  // ---- internals ----------------------------------------------------------------------------

  /** At start: every incomplete pipeline run nobody alive runs is swept, recompiled and continued. */
  async #recoverAll(): Promise<void> {
    const runner = await runnerCheck(this.storage, this.dataDir);
    let taken = 0;
    for (const record of await this.storage.listExecutions({ statuses: ACTIVE_STATUSES })) {
      if (!runSpecOf(record)) continue;
      const who = runner(record);
      if (who !== undefined) {
        this.#logger.info({ executionId: record.id }, who);
        continue;
      }
      try {
        await this.#take(record);
        taken++;
      } catch (error) {
        this.#logger.error({ err: error, executionId: record.id }, "run cannot be continued");
      }
    }
    if (taken > 0) await this.executor.recover();
  }

  /**
   * Takes a run nobody alive runs so this host's executor may continue it: kills what its dead
   * process left running (a job must never run twice at once), rebuilds and registers its saga.
   */
  async #take(record: ExecutionRecord): Promise<void> {
    if (this.#hosted.has(record.id)) return;
    const who = (await runnerCheck(this.storage, this.dataDir))(record);
    if (who !== undefined) throw new SlipwayError("conflict", who);
    for (const orphan of await sweepRunOrphans(this.dataDir, record.id)) {
      if (orphan.killed > 0)
        this.#logger.warn(
          { executionId: record.id, pgid: orphan.identity.pgid, killed: orphan.killed },
          "killed leftover processes of a crashed job",
        );
    }
    this.#hold(record.id, this.#register(recompile(record, this.runtime)));
  }

  /**
   * Takes an unfinished run when nobody alive runs it, so what is asked of it (a cancel, a signal)
   * is acted on here at once. Returns the sentence naming who runs it otherwise.
   */
  async #takeIfFree(record: ExecutionRecord): Promise<string | undefined> {
    if (FINAL_STATUSES.includes(record.status) || this.#hosted.has(record.id) || !runSpecOf(record))
      return undefined;
    const who = (await runnerCheck(this.storage, this.dataDir))(record);
    if (who !== undefined) return who;
    await this.#take(record);
    return undefined;
  }

  /** compileRun, memoized: problems still throw every time (they are not kept). */
  #compile(file: string, source: string, request: RunRequest): CompiledRun {
    const key = JSON.stringify([file, source, request.inputs, request.tiers]);
    const known = this.#compiled.get(key);
    if (known) {
      this.#compiled.delete(key);
      this.#compiled.set(key, known);
      return known;
    }
    const compiled = compileRun(file, source, { inputs: request.inputs, tiers: request.tiers }, this.runtime);
    this.#compiled.set(key, compiled);
    if (this.#compiled.size > COMPILED_CACHE_SIZE) this.#compiled.delete(this.#compiled.keys().next().value!);
    return compiled;
  }

  /** The saga of a compiled run, registered once per plan (the executor insists on one instance). */
  #register(compiled: CompiledRun): Saga {
    const key = `${compiled.saga.name}@${compiled.saga.version}`;
    const known = this.#sagas.get(key);
    if (known) return known;
    this.executor.register(compiled.saga);
    this.#sagas.set(key, compiled.saga);
    return compiled.saga;
  }

  /** Marks the run as run here: this executor accepts it, `slipway resume` elsewhere leaves it alone. */
  #hold(id: string, saga: Saga): void {
    if (this.#hosted.has(id)) return;
    this.#hosted.set(id, markFollowed(this.dataDir, [id]));
    const key = `${saga.name}@${saga.version}`;
    this.#sagaOfRun.set(id, key);
    let users = this.#users.get(key);
    if (!users) {
      users = new Set();
      this.#users.set(key, users);
    }
    users.add(id);
  }

  /** The run is no longer run here; its saga goes too once no run held here uses it. */
  #release(id: string): void {
    this.#hosted.get(id)?.();
    this.#hosted.delete(id);
    const key = this.#sagaOfRun.get(id);
    if (key === undefined) return;
    this.#sagaOfRun.delete(id);
    const users = this.#users.get(key);
    users?.delete(id);
    if (users && users.size > 0) return;
    // A server up for weeks sees a plan per distinct inputs: keep only those of runs it still holds.
    this.#users.delete(key);
    const saga = this.#sagas.get(key);
    this.#sagas.delete(key);
    if (saga) this.executor.unregister(saga);
  }

  #registeredSource(name: string): { file: string; source: string } {
    const file = this.#registered.get(name);
    if (file === undefined) {
      const known = [...this.#registered.keys()];
      throw new NotFoundError(
        `no pipeline "${name}" is registered with this server${known.length ? ` (registered: ${known.join(", ")})` : ""}`,
      );
    }
    try {
      return { file, source: readFileSync(file, "utf8") };
    } catch (error) {
      throw new SlipwayError(
        "not_found",
        `pipeline "${name}": cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  }

  async #lastSeq(id: string): Promise<number> {
    return ((await this.storage.load(id))?.nextEventSeq ?? 1) - 1;
  }

  async #find(ref: string): Promise<ExecutionRecord> {
    const record = await findRun(this.storage, ref);
    if (!record) throw new NotFoundError(`no run "${ref}"`);
    return record;
  }
}
