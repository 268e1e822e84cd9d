/** SQLite storage backend: one WAL-mode file, versioned migrations, group commit of transitions. */
import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import { diskFullError, NotFoundError, SlipwayError } from "../../errors.js";
import type { Json } from "../../json.js";
import { toJsonText } from "../json-text.js";
import {
  type AuditRow,
  type EventRow,
  type ExecutorRow,
  type RunRow,
  runOf,
  type SignalRow,
  signalOf,
  signalWithRunOf,
  stepOf,
  toEvent,
  toRun,
  toSignal,
} from "../rows.js";
import type { TriggerStore } from "../triggers.js";
import type {
  AuditQuery,
  AuditRecord,
  ClaimRequest,
  CommitResult,
  EventRecord,
  ExecutorRecord,
  NewAuditRecord,
  NewSignal,
  PeakStore,
  RunQuery,
  RunRecord,
  RunSnapshot,
  SignalRecord,
  SignalWithRun,
  Storage,
  Transition,
} from "../types.js";
import { FINAL_STATUSES } from "../types.js";
import { BUSY_TIMEOUT_MS, enableWal, openReadOnly } from "./connection.js";
import { type LockStore, sqliteLockStore } from "./lock-store.js";
import { assertMigrated, migrate } from "./migrations.js";
import { type EncodedTransition, encodeTransition } from "./rows.js";
import { prepareStatements, runQuerySql, type Statement, type Statements, updateSql } from "./statements.js";
import { TextIndex } from "./text-index.js";
import { sqliteTriggerStore } from "./trigger-store.js";
import { type Fdatasync, WalSync } from "./wal-sync.js";

export interface SqliteStorageOptions {
  /** Database file; created (with its folder's WAL/SHM companions) when missing. */
  path: string;
  /**
   * "full" (default): every commit is fsync'd before `commit` resolves, so a power loss never loses
   * an acknowledged transition. "normal": WAL is fsync'd at checkpoints only; a crash of the process
   * still loses nothing, a power loss may lose the last commits.
   */
  synchronous?: "full" | "normal";
  /**
   * Open for reading only (the file must exist and be migrated): no write, no lock that blocks a
   * writer, so another process can list and follow runs beside the executors that run them.
   */
  readOnly?: boolean;
  /** How the WAL is flushed for batched writes in "full" mode (tests watch it); fs.fdatasync by default. */
  fdatasync?: Fdatasync;
}

/** Measured peaks kept per job: plenty for a p95, bounded so the table doesn't grow forever. */
const KEPT_PEAKS = 100;

export class SqliteStorage implements Storage {
  readonly path: string;
  readonly readOnly: boolean;
  private readonly db: Database.Database;
  private statements: Statements | undefined;
  /** Conditional UPDATEs keyed by which patch fields they set: at most 2^8, each prepared once. */
  private readonly updates = new Map<number, Statement>();
  /** listRuns statements keyed by their SQL (one per filter shape). */
  private readonly queries = new Map<string, Statement>();
  private readonly commitBatch: (batch: EncodedTransition[]) => CommitResult[];
  private readonly claimTx: (requests: readonly ClaimRequest[], now: number) => (RunSnapshot | undefined)[];
  private readonly addSignalsTx: (signals: readonly NewSignal[], payloads: string[]) => SignalRecord[];
  private readonly addAuditTx: (
    records: readonly NewAuditRecord[],
    replays: (string | null)[],
  ) => AuditRecord[];
  private readonly loadTx: (runId: string) => RunSnapshot | undefined;
  private triggerStore: TriggerStore | undefined;
  private lockStore: LockStore | undefined;
  private readonly loadManyTx: (runIds: readonly string[]) => (RunSnapshot | undefined)[];
  /**
   * "full" mode on a file: signals and audit records flush the WAL off the main thread
   * (wal-sync.ts); opened by `init`. Null: SQLite's own fsync for all.
   */
  private walSync: WalSync | null | undefined;
  private readonly fdatasync: Fdatasync | undefined;
  /** Told how long each commit of transitions took, in ms (metrics set it); absent: not timed. */
  onCommit: ((ms: number) => void) | undefined;
  private readonly textIndex: TextIndex;
  private readonly syncNormal: Statement | undefined;
  private readonly syncFull: Statement | undefined;

  constructor(options: SqliteStorageOptions) {
    this.path = options.path;
    this.readOnly = options.readOnly === true;
    if (!this.readOnly && options.path !== ":memory:" && !options.path.startsWith("file:"))
      mkdirSync(dirname(options.path), { recursive: true });
    this.db = this.readOnly ? openReadOnly(options.path) : new Database(options.path);
    this.textIndex = new TextIndex(this.db);
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    if (!this.readOnly) enableWal(this.db, options.path);
    this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    this.db.pragma("foreign_keys = ON");
    // The text filter's case folding for needles too short for the trigram index (runQuerySql).
    this.db.function("slipway_lower", { deterministic: true }, (text: unknown) =>
      typeof text === "string" ? text.toLowerCase() : text,
    );
    this.fdatasync = options.fdatasync;
    if (
      this.readOnly ||
      options.synchronous === "normal" ||
      this.db.pragma("journal_mode", { simple: true }) !== "wal"
    )
      this.walSync = null;
    else {
      this.syncNormal = this.db.prepare("PRAGMA synchronous = NORMAL");
      this.syncFull = this.db.prepare("PRAGMA synchronous = FULL");
    }

    const commitBatch = this.db.transaction((batch: EncodedTransition[]): CommitResult[] => {
      const s = this.stmts();
      const results: CommitResult[] = [];
      for (const t of batch) {
        // The ownership check (or the insert) comes first; on failure nothing else of t is written.
        if (t.insert) {
          if (s.insertRun.run(...t.insert).changes === 0) {
            results.push("exists");
            continue;
          }
        } else if (t.update!.run(...t.updateArgs).changes === 0) {
          results.push("not_owner");
          continue;
        }
        for (const args of t.steps) s.upsertStep.run(...args);
        for (const args of t.events) {
          try {
            s.insertEvent.run(...args);
          } catch (error) {
            if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_PRIMARYKEY") {
              throw new SlipwayError(
                "conflict",
                `event ${String(args[1])} of run ${t.runId} already exists`,
                { cause: error },
              );
            }
            throw error;
          }
        }
        for (const args of t.consume) s.consumeSignal.run(...args);
        for (const args of t.notify) s.notifySignal.run(...args);
        results.push("ok");
      }
      return results;
    });
    // IMMEDIATE: take the write lock up front so another process cannot slip a commit in between our
    // first read and first write (which would fail with SQLITE_BUSY_SNAPSHOT instead of waiting).
    this.commitBatch = commitBatch.immediate;
    const claimTx = this.db.transaction((requests: readonly ClaimRequest[], now: number) => {
      const s = this.stmts();
      return requests.map((request) => {
        const taken = s.claim.run(
          request.owner,
          now,
          request.runId,
          request.owner,
          JSON.stringify(request.takeOverFrom ?? []),
        );
        return taken.changes === 0 ? undefined : this.snapshot(request.runId);
      });
    });
    this.claimTx = claimTx.immediate;
    const addSignalsTx = this.db.transaction((signals: readonly NewSignal[], payloads: string[]) => {
      const s = this.stmts();
      return signals.map((signal, i): SignalRecord => {
        const { lastInsertRowid } = s.addSignal.run(signal.runId, signal.name, payloads[i], signal.createdAt);
        return {
          seq: Number(lastInsertRowid),
          runId: signal.runId,
          name: signal.name,
          payload: JSON.parse(payloads[i]!) as Json,
          createdAt: signal.createdAt,
          consumedBy: null,
        };
      });
    });
    this.addSignalsTx = addSignalsTx.immediate;
    const addAuditTx = this.db.transaction(
      (records: readonly NewAuditRecord[], replays: (string | null)[]) => {
        const s = this.stmts();
        return records.map((record, i): AuditRecord => {
          const replay = replays[i]!;
          const { lastInsertRowid } = s.addAudit.run(
            record.at,
            record.actor,
            record.method,
            record.route,
            record.path,
            record.runId,
            record.status,
            record.key,
            replay,
          );
          return {
            seq: Number(lastInsertRowid),
            at: record.at,
            actor: record.actor,
            method: record.method,
            route: record.route,
            path: record.path,
            runId: record.runId,
            status: record.status,
            key: record.key,
            replay: replay === null ? null : (JSON.parse(replay) as AuditRecord["replay"]),
          };
        });
      },
    );
    this.addAuditTx = addAuditTx.immediate;
    // A read transaction, so the snapshot's parts all come from the same committed state.
    this.loadTx = this.db.transaction((runId: string) => this.snapshot(runId)).deferred;
    this.loadManyTx = this.db.transaction((runIds: readonly string[]) => this.snapshots(runIds)).deferred;
  }

  async init(): Promise<void> {
    if (!this.db.open) throw new SlipwayError("storage", `SqliteStorage(${this.path}) is closed`);
    if (this.statements) return;
    if (this.readOnly) assertMigrated(this.db, this.path);
    else this.writing(() => migrate(this.db));
    this.statements = prepareStatements(this.db);
    // The WAL file exists once the connection has read the database (init did): without it at hand,
    // every write keeps SQLite's own fsync.
    if (this.walSync === undefined) this.walSync = WalSync.open(`${this.path}-wal`, this.fdatasync) ?? null;
  }

  async close(): Promise<void> {
    this.textIndex.flush();
    await this.walSync?.close();
    this.walSync = null;
    if (this.db.open) this.db.close();
  }

  /** What triggers remember (see {@link TriggerStore}), in this file's trigger tables. */
  triggers(): TriggerStore {
    this.stmts();
    this.triggerStore ??= sqliteTriggerStore(this.db);
    return this.triggerStore;
  }

  /** Named locks held in this file, for every process sharing it (see {@link LockStore}). */
  locks(): LockStore {
    this.stmts();
    this.lockStore ??= sqliteLockStore(this.db);
    return this.lockStore;
  }

  /** Measured job peaks in this file (see {@link PeakStore}); the newest 100 per job are kept. */
  peaks(): PeakStore {
    this.stmts();
    const insert = this.db.prepare(
      "INSERT INTO job_peaks (pipeline, job, at, peak_bytes) VALUES (?, ?, ?, ?)",
    );
    const prune = this.db.prepare(
      `DELETE FROM job_peaks WHERE pipeline = ? AND job = ? AND rowid NOT IN
        (SELECT rowid FROM job_peaks WHERE pipeline = ? AND job = ? ORDER BY at DESC LIMIT ${KEPT_PEAKS})`,
    );
    const recent = this.db.prepare(
      "SELECT peak_bytes AS b FROM job_peaks WHERE pipeline = ? AND job = ? ORDER BY at DESC LIMIT ?",
    );
    const measured = this.db.prepare("SELECT DISTINCT pipeline, job FROM job_peaks ORDER BY pipeline, job");
    const record = this.db.transaction((pipeline: string, job: string, bytes: number, at: number) => {
      insert.run(pipeline, job, at, bytes);
      prune.run(pipeline, job, pipeline, job);
    });
    return {
      recordPeak: (pipeline, job, bytes, at) =>
        this.writing(() => record(pipeline, job, Math.round(bytes), at)),
      recentPeaks: (pipeline, job, limit) =>
        (recent.all(pipeline, job, limit) as { b: number }[]).map((row) => row.b),
      measuredJobs: () => measured.all() as { pipeline: string; job: string }[],
    };
  }

  async commit(transitions: readonly Transition[]): Promise<CommitResult[]> {
    this.stmts();
    if (transitions.length === 0) return [];
    // Serialize everything before the first write: a value JSON cannot hold fails the batch up front.
    const now = Date.now();
    const batch = transitions.map((t) => encodeTransition(t, now, (mask) => this.updateStatement(mask)));
    const observe = this.onCommit;
    const started = observe ? performance.now() : 0;
    const results = await this.durably(() => this.commitBatch(batch));
    if (observe) {
      try {
        observe(performance.now() - started);
      } catch {
        // Committed whatever the observer does.
      }
    }
    if (batch.some((t) => t.insert !== null)) this.textIndex.soon();
    return results;
  }

  /** How many runs there are per saga and status (an index-only scan): what metrics show at a scrape. */
  countRuns(): { saga: string; status: RunRecord["status"]; count: number }[] {
    this.stmts();
    return this.db
      .prepare("SELECT saga, status, COUNT(*) AS count FROM runs GROUP BY status, saga")
      .all() as { saga: string; status: RunRecord["status"]; count: number }[];
  }

  async claim(request: ClaimRequest): Promise<RunSnapshot | undefined> {
    return (await this.claimMany([request]))[0];
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<(RunSnapshot | undefined)[]> {
    this.stmts();
    if (requests.length === 0) return [];
    return this.writing(() => this.claimTx(requests, Date.now()));
  }

  async load(runId: string): Promise<RunSnapshot | undefined> {
    this.stmts();
    return this.loadTx(runId);
  }

  async loadMany(runIds: readonly string[]): Promise<(RunSnapshot | undefined)[]> {
    this.stmts();
    if (runIds.length === 0) return [];
    return this.loadManyTx(runIds);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const row = this.stmts().getRun.get(runId) as unknown[] | undefined;
    return row && runOf(row);
  }

  async getRuns(runIds: readonly string[]): Promise<(RunRecord | undefined)[]> {
    const s = this.stmts();
    if (runIds.length === 0) return [];
    if (runIds.length === 1) return [await this.getRun(runIds[0]!)];
    const byId = new Map<string, unknown[]>();
    for (const row of s.runsIn.all(JSON.stringify(runIds)) as unknown[][]) byId.set(row[0] as string, row);
    return runIds.map((id) => {
      const row = byId.get(id);
      return row && runOf(row);
    });
  }

  async deleteRun(runId: string): Promise<boolean> {
    const ended = FINAL_STATUSES.map(() => "?").join(", ");
    const remove = this.db.transaction((id: string): boolean => {
      const deleted = this.db
        .prepare(`DELETE FROM runs WHERE id = ? AND status IN (${ended})`)
        .run(id, ...FINAL_STATUSES);
      if (deleted.changes === 0) return false;
      for (const table of ["steps", "events", "signals"])
        this.db.prepare(`DELETE FROM ${table} WHERE run_id = ?`).run(id);
      return true;
    });
    return this.writing(() => remove(runId));
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    this.stmts();
    const { sql, args } = runQuerySql(query);
    let statement = this.queries.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.queries.set(sql, statement);
    }
    return (statement.all(...args) as RunRow[]).map(toRun);
  }

  async nextWakeAt(sagas: readonly string[]): Promise<number | undefined> {
    const row = this.stmts().nextWakeAt.get(JSON.stringify(sagas)) as { wake: number | null };
    return row.wake ?? undefined;
  }

  async history(runId: string, afterSeq?: number): Promise<EventRecord[]> {
    const rows = this.stmts().history.all(runId, afterSeq ?? Number.MIN_SAFE_INTEGER) as EventRow[];
    return rows.map(toEvent);
  }

  async addSignal(signal: NewSignal): Promise<SignalRecord> {
    return (await this.addSignals([signal]))[0]!;
  }

  async addSignals(signals: readonly NewSignal[]): Promise<SignalRecord[]> {
    this.stmts();
    if (signals.length === 0) return [];
    const payloads = signals.map((signal) => toJsonText(signal.payload, "signal payload"));
    try {
      return await this.durably(() => this.addSignalsTx(signals, payloads));
    } catch (error) {
      if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        const ids = [...new Set(signals.map((s) => s.runId))].join(", ");
        throw new NotFoundError(`cannot signal: one of the runs ${ids} does not exist`);
      }
      throw error;
    }
  }

  async signalsAfter(afterSeq: number, limit?: number): Promise<SignalRecord[]> {
    const rows = this.stmts().signalsAfter.all(afterSeq, sqliteLimit(limit)) as SignalRow[];
    return rows.map(toSignal);
  }

  async signalsWithRunsAfter(afterSeq: number, limit?: number): Promise<SignalWithRun[]> {
    const rows = this.stmts().signalsWithRunsAfter.all(afterSeq, sqliteLimit(limit)) as unknown[][];
    return rows.map(signalWithRunOf);
  }

  async lastSignalSeq(): Promise<number> {
    return (this.stmts().lastSignalSeq.get() as { seq: number }).seq;
  }

  async requestCancel(runId: string, reason: string): Promise<RunRecord | undefined> {
    const s = this.stmts();
    const row = this.writing(() => s.requestCancel.get(reason, Date.now(), runId)) as RunRow | undefined;
    return row && toRun(row);
  }

  async upsertExecutor(executor: ExecutorRecord): Promise<void> {
    const s = this.stmts();
    const { id, host, pid, startedAt, heartbeatAt, maxRuns } = executor;
    this.writing(() => s.upsertExecutor.run(id, host, pid, startedAt, heartbeatAt, maxRuns));
  }

  async listExecutors(): Promise<ExecutorRecord[]> {
    return (this.stmts().listExecutors.all() as ExecutorRow[]).map((row) => ({
      id: row.id,
      host: row.host,
      pid: row.pid,
      startedAt: row.started_at,
      heartbeatAt: row.heartbeat_at,
      maxRuns: row.max_runs,
    }));
  }

  async removeExecutor(id: string): Promise<void> {
    const s = this.stmts();
    this.writing(() => s.removeExecutor.run(id));
  }

  /**
   * Runs a write. SQLite rolls a write that hit a full disk back whole (SQLITE_FULL); it is thrown
   * as a `disk_full` error naming the database, so the request or step that hit it says why.
   */
  private writing<T>(write: () => T): T {
    try {
      return write();
    } catch (error) {
      throw diskFullError(error, `the database ${this.path}`);
    }
  }

  /**
   * A batched write, answered once durable: in "full" mode on a file, committed without SQLite's
   * fsync, then flushed off the main thread with every write of the moment (wal-sync.ts): the event
   * loop keeps turning (accepting connections) while the disk flushes. Readers may see the rows before
   * the writer is answered: a run's end before its events are published (a follower that reads the
   * end from the history ends there), rows that a power cut (not a crash of this process) could
   * still take back. Claims keep SQLite's own fsync.
   */
  private async durably<T>(write: () => T): Promise<T> {
    if (!this.walSync) return this.writing(write);
    this.syncNormal!.run();
    let result: T;
    try {
      result = this.writing(write);
    } finally {
      this.syncFull!.run();
    }
    try {
      await this.walSync.durable();
    } catch (error) {
      throw diskFullError(error, `the database ${this.path}`);
    }
    return result;
  }

  async addAudit(records: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
    this.stmts();
    if (records.length === 0) return [];
    // Serialized before the transaction: a record JSON cannot hold fails the batch, nothing written.
    const replays = records.map((r) => (r.replay === null ? null : toJsonText(r.replay, "audit replay")));
    return this.durably(() => this.addAuditTx(records, replays));
  }

  async listAudit(query: AuditQuery): Promise<AuditRecord[]> {
    const s = this.stmts();
    const before = query.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    const limit = Math.max(0, query.limit);
    const rows = (
      query.key === undefined
        ? s.listAudit.all(before, limit)
        : s.listAuditByKey.all(query.key, before, limit)
    ) as AuditRow[];
    return rows.map((row) => ({
      seq: row.seq,
      at: row.at,
      actor: row.actor,
      method: row.method,
      route: row.route,
      path: row.path,
      runId: row.run_id,
      status: row.status,
      key: row.idempotency_key,
      replay: row.replay === null ? null : (JSON.parse(row.replay) as AuditRecord["replay"]),
    }));
  }

  private stmts(): Statements {
    if (!this.statements) {
      throw new SlipwayError("storage", `SqliteStorage(${this.path}): call init() before using it`);
    }
    if (!this.db.open) throw new SlipwayError("storage", `SqliteStorage(${this.path}) is closed`);
    return this.statements;
  }

  private snapshot(runId: string): RunSnapshot | undefined {
    const s = this.stmts();
    const row = s.getRun.get(runId) as unknown[] | undefined;
    if (!row) return undefined;
    return {
      run: runOf(row),
      steps: (s.stepsOf.all(runId) as unknown[][]).map(stepOf),
      signals: (s.pendingSignalsOf.all(runId) as unknown[][]).map(signalOf),
      nextEventSeq: (s.nextEventSeq.get(runId) as { next: number }).next,
    };
  }

  /** Snapshots of many runs from four statements; call inside a transaction. */
  private snapshots(runIds: readonly string[]): (RunSnapshot | undefined)[] {
    const s = this.stmts();
    const ids = JSON.stringify(runIds);
    const byId = new Map<string, RunSnapshot>();
    for (const row of s.runsIn.all(ids) as unknown[][]) {
      byId.set(row[0] as string, { run: runOf(row), steps: [], signals: [], nextEventSeq: 1 });
    }
    if (byId.size > 0) {
      // Column 0 of steps is run_id, column 1 of signals too.
      for (const row of s.stepsIn.all(ids) as unknown[][])
        byId.get(row[0] as string)?.steps.push(stepOf(row));
      for (const row of s.pendingSignalsIn.all(ids) as unknown[][])
        byId.get(row[1] as string)?.signals.push(signalOf(row));
      for (const row of s.nextEventSeqIn.all(ids) as [string, number][]) {
        const snapshot = byId.get(row[0]);
        if (snapshot) snapshot.nextEventSeq = row[1];
      }
    }
    // A repeated id gets its own copy, so no two results share objects.
    const seen = new Set<string>();
    return runIds.map((id) => {
      const snapshot = byId.get(id);
      if (!snapshot || !seen.has(id)) {
        seen.add(id);
        return snapshot;
      }
      return structuredClone(snapshot);
    });
  }

  /** The conditional UPDATE of {@link updateSql} for `mask`, prepared once. */
  private updateStatement(mask: number): Statement {
    let statement = this.updates.get(mask);
    if (!statement) {
      statement = this.db.prepare(updateSql(mask));
      this.updates.set(mask, statement);
    }
    return statement;
  }
}

/** Factory form of the constructor, for callers that name an export (e.g. the crash conformance test). */
export function openSqliteStorage(options: SqliteStorageOptions): SqliteStorage {
  return new SqliteStorage(options);
}

/** A LIMIT for SQLite, where -1 means none. */
function sqliteLimit(limit: number | undefined): number {
  return limit === undefined ? -1 : Math.max(0, limit);
}
