/**
 * The runs service in-process: pipeline runs hosted by this process's executor, over its storage and
 * admission. A server hosts every run nobody alive runs (`adopt: "all"`); a foreground `slipway run`
 * hosts only what it submits, resumes or retries (`adopt: "asked"`), and merely records a cancel or a
 * signal for whichever process runs the run.
 */
import { readFileSync, rmSync } from "node:fs";
import type { Logger } from "pino";
import { Batcher } from "../engine/batcher.js";
import { ENDING_EVENTS, type RunEvent } from "../engine/events.js";
import type { ChildToHost } from "../engine/executor-options.js";
import { NotFoundError, SlipwayError } from "../errors.js";
import type { Json } from "../json.js";
import { type CompiledRun, compileRun, recompile } from "../pipeline/compile.js";
import type { RunRequest } from "../pipeline/plan.js";
import { PipelineInputError } from "../pipeline/problems.js";
import { runSpecOf, runSpecSchema } from "../pipeline/run-spec.js";
import { runDirectory, sweepRunOrphans } from "../shell/run-directory.js";
import { isPostgresUrl } from "../storage/open.js";
import {
  ACTIVE_STATUSES,
  type AuditRecord,
  FINAL_STATUSES,
  type NewAuditRecord,
  type PeakStore,
  type RunRecord,
} from "../storage/types.js";
import { ChangeFeed, type ChangeOptions, type RunChange } from "./changes.js";
import { liveChildren } from "./children.js";
import { ClusterWorker } from "./cluster.js";
import { loadRunDetail } from "./detail.js";
import { queueFromStorage } from "./explain.js";
import { EarlyEvents, followEvents } from "./follow.js";
import { HostedRuns } from "./hosted.js";
import { listRuns, pageRuns, runIdOfKey } from "./listing.js";
import { runnerCheck } from "./liveness.js";
import { openLogs } from "./logs.js";
import { nameRun } from "./naming.js";
import { findRun, sameRun } from "./records.js";
import { openRuntime, type Runtime, type RuntimeOptions } from "./runtime.js";
import type {
  ActionResponse,
  QueueEntry,
  ResourcesResponse,
  RunDetail,
  RunSummary,
  SignalResponse,
  SubmitResponse,
  WorkersResponse,
} from "./schemas.js";
import type {
  AuditLog,
  EventOptions,
  ListQuery,
  LogOptions,
  PipelineSource,
  PruneOptions,
  PruneResult,
  RunPage,
  RunService,
  SubmitOptions,
} from "./service.js";
import { loadResources } from "./usage.js";
import { loadWorkers } from "./workers.js";

export interface LocalRunsOptions {
  /** The SQLite database file. */
  db: string;
  /** Job logs, pid files and staged data; default the database's directory. */
  dataDir?: string | undefined;
  /** The engine's log; default `<dataDir>/slipway.log`. */
  logger?: Logger | undefined;
  /** Pipelines runs can be submitted by name: pipeline name → pipeline file. */
  registered?: ReadonlyMap<string, string> | undefined;
  /** The server's config file: resource pools, locks, key weights; absent: this machine's resources. */
  config?: string | undefined;
  /** What jobs inherit of this process's environment (RuntimeOptions.jobEnv); default `all`. */
  jobEnv?: "all" | "allowed" | undefined;
  /** How often storage is checked for what other processes wrote (signals, cancels), ms. Default 200. */
  pollIntervalMs?: number | undefined;
  /**
   * Which runs this process hosts. `all` (a server, which outlives its requests): at open, every
   * incomplete run nobody alive runs, and any run it is asked to act on that nobody runs. `asked` (a
   * process that ends with its command): only runs it submits, resumes or retries.
   */
  adopt?: "all" | "asked" | undefined;
  /**
   * Start job processes from a small launcher process, so forks don't stop this process's event loop.
   * Default: with `adopt: "all"` (a server, which starts jobs while it serves requests).
   */
  launcher?: boolean | undefined;
  /** Prometheus metrics (a server's); where `OTEL_*` variables turning traces on are read (runtime.ts). */
  observe?: RuntimeOptions["observe"];
}

export class LocalRuns implements RunService {
  readonly runtime: Runtime;
  readonly detached: boolean;
  readonly #adopt: "all" | "asked";
  readonly #registered: ReadonlyMap<string, string>;
  /** Runs this process has taken (submitted, or swept and recompiled): the only ones its executor accepts. */
  readonly #hosted: HostedRuns;
  #stopListening: (() => void) | undefined;
  /** Server-wide notices of runs created or changing status and of the queue changing (`changes`). */
  readonly #changes = new ChangeFeed();
  #auditBatch: Batcher<NewAuditRecord, AuditRecord> | undefined;
  /** Measured job peaks, read for `resources()` (prepared once). */
  #peaks: PeakStore | undefined;
  /** A server on PostgreSQL: one worker of a cluster (cluster.ts). */
  #cluster: ClusterWorker | undefined;
  readonly #early: EarlyEvents;

  private constructor(runtime: Runtime, options: LocalRunsOptions) {
    this.runtime = runtime;
    this.#early = new EarlyEvents(runtime.executor);
    this.#adopt = options.adopt ?? "all";
    this.detached = this.#adopt === "all";
    this.#registered = options.registered ?? new Map();
    this.#hosted = new HostedRuns(runtime.executor, runtime.dataDir);
  }

  /** Opens the runtime; with `adopt: "all"`, continues every incomplete run nobody alive runs. */
  static async open(options: LocalRunsOptions): Promise<LocalRuns> {
    let runs: LocalRuns | undefined;
    const runtime = await openRuntime({
      db: options.db,
      dataDir: options.dataDir,
      logger: options.logger,
      config: options.config,
      jobEnv: options.jobEnv,
      // Without a config nothing declares locks: each is one holder at a time.
      undeclaredLocks: options.config === undefined ? "exclusive" : "reject",
      pollIntervalMs: options.pollIntervalMs ?? 200,
      launcher: options.launcher ?? (options.adopt ?? "all") === "all",
      // Only runs taken here: a run another live process runs, or whose orphans were not swept yet, is not ours.
      // In a cluster, only while there is room: a full worker leaves a run due to wake to one with room.
      accept: (run) => (runs ? runs.#hosted.has(run.id) && (runs.#cluster?.room() ?? 1) > 0 : false),
      // A `uses:` job's child run is hosted where its parent runs, its saga compiled from its spec.
      hostChild: (child) => {
        if (runs) runs.#hostChild(child);
      },
      observe: options.observe,
    });
    runs = new LocalRuns(runtime, options);
    const self = runs;
    // A run that ended (or stopped for someone to act) is no longer held here: another process may continue it.
    runs.#stopListening = runtime.executor.on((event) => {
      self.#changes.publish(event);
      if (ENDING_EVENTS.has(event.type)) self.#hosted.ended(event.runId, event.seq);
      // Parked, it is owned by nobody: from now on only the mark tells others it is followed here.
      else if (event.type === "run:waiting") self.#hosted.mark(event.runId);
      else return;
      // It left memory here: room for a run queued for any worker.
      self.#cluster?.freed();
    });
    if (runs.#adopt === "all") {
      try {
        await runs.#adoptAll();
      } catch (error) {
        await runs.close();
        throw error;
      }
      if (isPostgresUrl(options.db)) await runs.#joinCluster();
    }
    return runs;
  }

  get #storage() {
    return this.runtime.storage;
  }

  get #executor() {
    return this.runtime.executor;
  }

  async submit(what: PipelineSource, options: SubmitOptions = {}): Promise<SubmitResponse> {
    const { file, source } = "pipeline" in what ? this.#registeredSource(what.pipeline) : what;
    const request: RunRequest & { workspace?: string; untrusted?: boolean; startedBy?: string } = {
      inputs: options.inputs ?? {},
      tiers: options.tiers ?? [],
      ...(options.event !== undefined && { event: options.event }),
      ...(options.workspace !== undefined && { workspace: options.workspace }),
      ...(options.untrusted === true && { untrusted: true }),
      ...(options.startedBy !== undefined && { startedBy: options.startedBy }),
    };
    const compiled = compileRun(file, source, request, this.runtime.jobs, { known: this.#hosted.known });
    const on = compiled.plan.pipeline.on;
    if (options.event === undefined && on !== undefined && !on.manual)
      throw new PipelineInputError([
        `pipeline "${compiled.plan.pipeline.name}" starts from its \`on:\` triggers only: add \`manual:\` to \`on:\` to run it by hand`,
      ]);
    const response = (id: string, name: string | null): SubmitResponse => ({
      id,
      name,
      pipeline: compiled.plan.pipeline.name,
      jobs: compiled.plan.steps.length,
    });
    const key = options.key;
    const id = key === undefined ? this.#executor.newRunId() : runIdOfKey(key);
    if (key !== undefined) {
      const existing = await this.#storage.getRun(id);
      if (existing) {
        if (!sameRun(existing, compiled))
          throw new SlipwayError(
            "idempotency_conflict",
            `key "${key}" already started run ${id} with another pipeline, inputs or tiers (${existing.saga} v${existing.version}); use a new key for a different run`,
          );
        return response(id, existing.runName);
      }
    }
    const runName = await nameRun(this.#storage, compiled, options.name);
    const saga = this.#hosted.register(compiled);
    // A full worker of a cluster queues it for whichever worker has room (this one too, later): not
    // hosted here, or this executor would take it back at once.
    if (this.#cluster !== undefined && this.#cluster.room() <= 0) {
      try {
        await this.#executor.enqueue(
          saga,
          { run: compiled.spec },
          runName === undefined ? { id } : { id, runName },
        );
      } finally {
        this.#hosted.forgetUnused(saga);
      }
      return response(id, runName ?? null);
    }
    // Marked once it parks (most runs never do): not a file written per submission.
    this.#hosted.host(id, saga, { mark: false });
    if (options.follow) this.#early.keep(id);
    try {
      await this.#executor.start(
        saga,
        { run: compiled.spec },
        runName === undefined ? { id } : { id, runName },
      );
    } catch (error) {
      this.#hosted.unhost(id);
      this.#early.take(id);
      throw error;
    }
    return response(id, runName ?? null);
  }

  list(query: Omit<ListQuery, "limit" | "cursor"> = {}): Promise<RunSummary[]> {
    return listRuns(this.#storage, query);
  }

  page(query: ListQuery & { limit: number }): Promise<RunPage> {
    return pageRuns(this.#storage, query);
  }

  async show(ref: string): Promise<RunDetail> {
    return loadRunDetail(this.#storage, await this.#find(ref), this.runtime.jobs.resources);
  }

  async logs(ref: string, options: LogOptions = {}): Promise<AsyncIterable<string>> {
    const record = await this.#find(ref);
    return openLogs({ storage: this.#storage, dataDir: this.runtime.dataDir, record, ...options });
  }

  async events(ref: string, options: EventOptions = {}): Promise<AsyncIterable<RunEvent>> {
    const record = await this.#find(ref);
    return followEvents({
      executor: this.#executor,
      storage: this.#storage,
      record,
      after: options.after ?? 0,
      signal: options.signal,
      hostedHere: () => this.#hosted.has(record.id),
      early: () => this.#early.take(record.id),
      admission: this.runtime.jobs.resources,
    });
  }

  async changes(options: ChangeOptions = {}): Promise<AsyncIterable<RunChange>> {
    return this.#changes.listen(options);
  }

  async cancel(ref: string, reason = "cancelled by request"): Promise<ActionResponse> {
    const record = await this.#find(ref);
    if (FINAL_STATUSES.includes(record.status))
      throw new SlipwayError("conflict", `run ${record.id} has already ended (${record.status})`);
    const runner = this.#adopt === "all" ? await this.#takeIfFree(record) : undefined;
    const seq = await this.#lastSeq(record.id);
    const updated = await this.#executor.cancel(record.id, reason);
    const where =
      runner ??
      (this.#hosted.has(record.id)
        ? "its jobs are stopping and the undos run"
        : updated.owner !== null
          ? "the process running it is stopping its jobs and running the undos"
          : "no process runs it now: the undos run when it is continued (slipway resume)");
    return { id: record.id, status: updated.status, message: where, seq };
  }

  async signal(ref: string, name: string, payload: Json = {}): Promise<SignalResponse> {
    const record = await this.#find(ref);
    if (FINAL_STATUSES.includes(record.status))
      throw new SlipwayError(
        "conflict",
        `run ${record.id} has already ended (${record.status}); signal "${name}" not delivered`,
      );
    if (this.#adopt === "all") await this.#takeIfFree(record);
    const sent = await this.#executor.signal(record.id, name, payload);
    return { id: record.id, signal: name, seq: sent.seq };
  }

  async retry(ref: string): Promise<ActionResponse> {
    const record = await this.#find(ref);
    if (record.status !== "failed")
      throw new SlipwayError(
        "conflict",
        `run ${record.id} is ${record.status}: only a held run (failed, on_failure: hold) can be retried${record.status === "needs_attention" ? `; use slipway resume ${record.id}` : ""}`,
      );
    const seq = await this.#lastSeq(record.id);
    const notes = await this.#take(record, seq);
    await this.#executor.retry(record.id);
    return {
      id: record.id,
      status: "running",
      message: "retrying from its failed jobs",
      seq,
      ...notesOf(notes),
    };
  }

  async resume(ref: string): Promise<ActionResponse> {
    const record = await this.#find(ref);
    if (record.status === "failed")
      throw new SlipwayError(
        "conflict",
        `run ${record.id} is held after a failure: continue it with slipway retry ${record.id}`,
      );
    if (FINAL_STATUSES.includes(record.status))
      throw new SlipwayError("conflict", `run ${record.id} has ended (${record.status}): nothing to resume`);
    const seq = await this.#lastSeq(record.id);
    // Needing attention, it is not run anywhere, here neither (its end may not have been told yet).
    if (this.#hosted.has(record.id) && record.status !== "needs_attention")
      return { id: record.id, status: record.status, message: "already running here", seq };
    const notes = await this.#take(record, seq);
    // Its child runs under way continue with it (after a crash, nobody runs them either).
    for (const child of await liveChildren(this.#storage, record.id))
      notes.push(...(await this.#take(child)));
    if (record.status === "needs_attention") await this.#executor.resume(record.id);
    else await this.#executor.recover();
    return { id: record.id, status: "running", message: "resumed", seq, ...notesOf(notes) };
  }

  async prune(options: PruneOptions): Promise<PruneResult> {
    const ended = await this.#storage.listRuns({ statuses: FINAL_STATUSES });
    const removed: string[] = [];
    for (const record of ended) {
      if (record.endedAt === null || record.endedAt >= options.endedBefore) continue;
      if (!(await this.#storage.deleteRun(record.id))) continue;
      rmSync(runDirectory(this.runtime.dataDir, record.id), { recursive: true, force: true });
      removed.push(record.id);
    }
    // No status tells of a run removed: a list showing it reads everything again.
    if (removed.length > 0) this.#changes.reset();
    return { removed };
  }

  /**
   * The audit log in this database (the server records the requests it answers there). Records
   * handed in during one turn of the event loop are written in one transaction, as the engine's
   * transitions are: a burst of requests costs one fsync, not one each.
   */
  get audit(): AuditLog {
    const storage = this.#storage;
    this.#auditBatch ??= new Batcher((records: NewAuditRecord[]) => storage.addAudit(records));
    const batch = this.#auditBatch;
    return {
      record: (entry) => batch.submit(entry),
      list: (query) => storage.listAudit(query),
    };
  }

  queue(): Promise<QueueEntry[]> {
    const resources = this.runtime.jobs.resources;
    return queueFromStorage(this.#storage, resources && ((run, action) => resources.explain(run, action)));
  }

  resources(): Promise<ResourcesResponse> {
    this.#peaks ??= this.#storage.peaks();
    return loadResources(this.#storage, this.runtime.jobs.resources, this.#peaks);
  }

  workers(): Promise<WorkersResponse> {
    return loadWorkers(this.#storage, this.#executor.owner);
  }

  /** Stops: running jobs are stopped and the runs released, left in storage for whoever continues them. */
  async close(): Promise<void> {
    await this.#cluster?.stop();
    this.#stopListening?.();
    this.#changes.close();
    await this.#auditBatch?.drained();
    await this.runtime.close();
    for (const id of this.#hosted.ids()) this.#hosted.unhost(id);
  }

  // ---- internals ----------------------------------------------------------------------------

  /** From now on takes, as room allows, the runs queued for any worker and those of dead workers. */
  async #joinCluster(): Promise<void> {
    this.#cluster = new ClusterWorker({
      storage: this.#storage,
      executor: this.#executor,
      dataDir: this.runtime.dataDir,
      logger: this.runtime.logger,
      maxRuns: this.runtime.config.maxRuns ?? Number.POSITIVE_INFINITY,
      intervalMs: this.#executor.heartbeatIntervalMs,
      hosted: (id) => this.#hosted.has(id),
      hostedIds: () => this.#hosted.ids(),
      take: async (record) => {
        await this.#take(record);
      },
      unhost: (id) => this.#hosted.unhost(id),
    });
    await this.#cluster.start();
  }

  /** At open: every incomplete pipeline run nobody alive runs is swept, recompiled and continued. */
  async #adoptAll(): Promise<void> {
    const runner = await runnerCheck(this.#storage, this.runtime.dataDir);
    let taken = 0;
    for (const record of await this.#storage.listRuns({ statuses: ACTIVE_STATUSES })) {
      if (!runSpecOf(record)) continue;
      const who = runner(record);
      if (who !== undefined) {
        this.runtime.logger.info({ runId: record.id }, who);
        continue;
      }
      try {
        await this.#take(record);
        taken++;
      } catch (error) {
        this.runtime.logger.error({ err: error, runId: record.id }, "run cannot be continued");
      }
    }
    if (taken > 0) await this.#executor.recover();
  }

  /**
   * Takes a run nobody alive runs so this executor may continue it: kills what its dead process left
   * running (a job must never run twice at once), rebuilds and registers its saga. Returns what it did
   * on the way (processes killed). `takenAfter`: the seq of its last event, for a run taken again
   * from its end (retried, resumed) — see HostedRuns.host.
   */
  async #take(record: RunRecord, takenAfter?: number): Promise<string[]> {
    if (this.#hosted.has(record.id)) {
      if (takenAfter !== undefined) this.#hosted.takenAgain(record.id, takenAfter);
      return [];
    }
    if (!runSpecOf(record))
      throw new SlipwayError(
        "conflict",
        `run ${record.id} is not a pipeline run: its own program continues it`,
      );
    // Owned by this process's executor, it is this process's to take (the cluster pass takes back those).
    const who = (await runnerCheck(this.#storage, this.runtime.dataDir, this.#executor.owner))(record);
    if (who !== undefined) throw new SlipwayError("conflict", who);
    const notes: string[] = [];
    for (const orphan of await sweepRunOrphans(this.runtime.dataDir, record.id)) {
      if (orphan.killed === 0) continue;
      const { pgid } = orphan.identity;
      this.runtime.logger.warn(
        { runId: record.id, pgid, killed: orphan.killed },
        "killed leftover processes of a crashed job",
      );
      notes.push(
        `run ${record.id}: killed ${orphan.killed} leftover process(es) of a crashed job (process group ${pgid})`,
      );
    }
    let compiled: CompiledRun;
    try {
      compiled = recompile(record, this.runtime.jobs, this.#hosted.known);
    } catch (error) {
      throw new SlipwayError("conflict", `run ${record.id} cannot be rebuilt: ${(error as Error).message}`);
    }
    // Marked at once: a run taken may be waiting already, owned by nobody.
    this.#hosted.host(record.id, this.#hosted.register(compiled), { mark: true, takenAfter });
    return notes;
  }

  /**
   * Takes an unfinished run when nobody alive runs it, so what is asked of it (a cancel, a signal)
   * is acted on here at once. Returns the sentence naming who runs it otherwise.
   */
  async #takeIfFree(record: RunRecord): Promise<string | undefined> {
    if (FINAL_STATUSES.includes(record.status) || this.#hosted.has(record.id) || !runSpecOf(record))
      return undefined;
    const who = (await runnerCheck(this.#storage, this.runtime.dataDir))(record);
    if (who !== undefined) return who;
    await this.#take(record);
    return undefined;
  }

  /** A child run of a `uses:` job, started or acted on here: its saga registered, the run hosted. */
  #hostChild(child: ChildToHost): void {
    if (this.#hosted.has(child.id)) return;
    const spec = runSpecSchema.safeParse(child.input.run);
    if (!spec.success) return;
    const compiled = compileRun(spec.data.file, spec.data.source, spec.data, this.runtime.jobs, {
      version: child.saga.version,
      known: this.#hosted.known,
    });
    this.#hosted.host(child.id, this.#hosted.register(compiled), { mark: false });
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
      throw new NotFoundError(
        `pipeline "${name}": cannot read ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
      );
    }
  }

  async #lastSeq(id: string): Promise<number> {
    return ((await this.#storage.load(id))?.nextEventSeq ?? 1) - 1;
  }

  async #find(ref: string): Promise<RunRecord> {
    const record = await findRun(this.#storage, ref);
    if (!record) throw new NotFoundError(`no run "${ref}"`);
    return record;
  }
}

function notesOf(notes: readonly string[]): { notes?: string[] } {
  return notes.length > 0 ? { notes: [...notes] } : {};
}
