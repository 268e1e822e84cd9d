/** SQLite storage backend: one WAL-mode file, versioned migrations, group commit of transitions. */
import { mkdirSync, readdirSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import Database from "better-sqlite3";
import { type ErrorInfo, NotFoundError, SlipwayError } from "../../errors.js";
import type { Json, JsonObject } from "../../json.js";
import { parseNullable, toJsonText, toNullableJsonText } from "../json-text.js";
import type {
  ClaimRequest,
  CommitResult,
  CompensationCause,
  EventRecord,
  ExecutionPatch,
  ExecutionQuery,
  ExecutionRecord,
  ExecutionSnapshot,
  ExecutionStatus,
  ExecutorRecord,
  NewSignal,
  PeakStore,
  SignalRecord,
  StepRecord,
  StepStatus,
  Storage,
  Transition,
} from "../types.js";

/** Resolves to <package>/sql/sqlite/ both from src/storage/sqlite/ (tsx) and dist/storage/sqlite/ (tsc). */
const MIGRATIONS_DIR = new URL("../../../sql/sqlite/", import.meta.url);
const MIGRATION_FILE = /^(\d+)_[\w-]+\.sql$/;
/** How long a statement waits for another connection's lock before failing with SQLITE_BUSY. */
const BUSY_TIMEOUT_MS = 5_000;

export interface SqliteStorageOptions {
  /** Database file; created (with its folder's WAL/SHM companions) when missing. */
  path: string;
  /**
   * "full" (default): every commit is fsync'd before `commit` resolves, so a power loss never loses
   * an acknowledged transition. "normal": WAL is fsync'd at checkpoints only; a crash of the process
   * still loses nothing, a power loss may lose the last commits.
   */
  synchronous?: "full" | "normal";
}

export interface Migration {
  version: number;
  name: string;
  sql: string;
}

/** The numbered migrations shipped in sql/sqlite/, in order. */
export function readMigrations(dir: URL = MIGRATIONS_DIR): Migration[] {
  const folder = fileURLToPath(dir);
  const migrations: Migration[] = [];
  for (const name of readdirSync(folder)) {
    const match = MIGRATION_FILE.exec(name);
    if (!match) continue;
    migrations.push({ version: Number(match[1]), name, sql: readFileSync(new URL(name, dir), "utf8") });
  }
  migrations.sort((a, b) => a.version - b.version);
  for (let i = 1; i < migrations.length; i++) {
    if (migrations[i]!.version === migrations[i - 1]!.version) {
      throw new SlipwayError(
        "storage",
        `two migrations share version ${migrations[i]!.version} in ${folder}`,
      );
    }
  }
  return migrations;
}

/**
 * Applies the migrations `db` lacks, each in its own `BEGIN IMMEDIATE` transaction: the write lock is
 * taken before the "already applied?" check, so two processes migrating the same file at once
 * serialize (the second waits on busy_timeout, then finds the work done).
 */
export function migrate(db: Database.Database, migrations: readonly Migration[] = readMigrations()): void {
  db.transaction(() => {
    db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
    );
  }).immediate();
  const latest = migrations.at(-1)?.version ?? 0;
  const newest = (db.prepare("SELECT MAX(version) AS v FROM schema_migrations").get() as { v: number | null })
    .v;
  if (newest !== null && newest > latest) {
    // Running old code against a newer schema would silently misread it.
    throw new SlipwayError(
      "storage",
      `database schema is at version ${newest}, newer than this slipway knows (${latest}); upgrade slipway`,
    );
  }
  const isApplied = db.prepare("SELECT 1 FROM schema_migrations WHERE version = ?");
  const record = db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)");
  const apply = db.transaction((migration: Migration) => {
    if (isApplied.get(migration.version)) return;
    db.exec(migration.sql);
    record.run(migration.version, migration.name, Date.now());
  });
  for (const migration of migrations) apply.immediate(migration);
}

/**
 * The schema all migrations produce, as committed in sql/sqlite/schema.sql: every object's SQL from
 * sqlite_master, tables first, then by name, with trailing blanks and blank lines dropped.
 */
export function sqliteSchemaSql(migrations: readonly Migration[] = readMigrations()): string {
  const db = new Database(":memory:");
  try {
    migrate(db, migrations);
    const rows = db
      .prepare(
        `SELECT type, name, sql FROM sqlite_master
         WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'
         ORDER BY CASE type WHEN 'table' THEN 0 WHEN 'index' THEN 1 ELSE 2 END, name`,
      )
      .all() as { type: string; name: string; sql: string }[];
    const statements = rows.map(
      (row) =>
        `${row.sql
          .split(/\r?\n/)
          .map((line) => line.trimEnd())
          .filter((line) => line.length > 0)
          .join("\n")};`,
    );
    return `-- Generated from sql/sqlite/*.sql by \`npx tsx scripts/sqlite-schema.ts --write\`; do not edit.\n\n${statements.join("\n\n")}\n`;
  } finally {
    db.close();
  }
}

type Statement = Database.Statement<unknown[]>;

interface ExecutionRow {
  id: string;
  saga: string;
  version: number;
  status: string;
  input: string;
  run_name: string | null;
  owner: string | null;
  revision: number;
  wake_at: number | null;
  cancel_requested: string | null;
  cause: string | null;
  error: string | null;
  created_at: number;
  updated_at: number;
  ended_at: number | null;
}

interface EventRow {
  execution_id: string;
  seq: number;
  type: string;
  action: string | null;
  at: number;
  data: string | null;
}

interface SignalRow {
  seq: number;
  execution_id: string;
  name: string;
  payload: string;
  created_at: number;
  consumed_by: string | null;
}

interface ExecutorRow {
  id: string;
  host: string;
  pid: number;
  started_at: number;
  heartbeat_at: number;
}

/** A transition with every value already bound-ready, so nothing can fail to serialize mid-write. */
interface EncodedTransition {
  executionId: string;
  /** Insert arguments when the transition creates the execution. */
  insert: unknown[] | null;
  /** Conditional UPDATE (ownership check + patch) when it does not. */
  update: Statement | null;
  updateArgs: unknown[];
  steps: unknown[][];
  events: unknown[][];
  consume: unknown[][];
}

/** Patchable columns, in the bit order of the UPDATE statement cache key. */
const PATCH_COLUMNS = [
  ["status", "status"],
  ["wakeAt", "wake_at"],
  ["cause", "cause"],
  ["error", "error"],
  ["endedAt", "ended_at"],
  ["cancelRequested", "cancel_requested"],
] as const satisfies readonly (readonly [keyof ExecutionPatch, string])[];
const RELEASE_BIT = 1 << PATCH_COLUMNS.length;
/** The transition claims the execution: revision check instead of ownership check (`Transition.claim`). */
const CLAIM_BIT = RELEASE_BIT << 1;

const EXECUTION_COLUMNS =
  "id, saga, version, status, input, run_name, owner, revision, wake_at, cancel_requested, cause, error, created_at, updated_at, ended_at";
const STEP_COLUMNS =
  "execution_id, action, status, attempt, failures, output, error, state, undo_attempt, undo_error, started_at, ended_at, updated_at";

const SIGNAL_COLUMNS = "seq, execution_id, name, payload, created_at, consumed_by";

function prepareStatements(db: Database.Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  /** Rows as arrays in column order: no object with named keys per row (hot reads). */
  const raw = (sql: string): Statement => db.prepare(sql).raw(true);
  return {
    insertExecution: p(
      `INSERT INTO executions (${EXECUTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    ),
    upsertStep: p(
      `INSERT INTO steps (${STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (execution_id, action) DO UPDATE SET
         status = excluded.status, attempt = excluded.attempt, failures = excluded.failures,
         output = excluded.output, error = excluded.error, state = excluded.state,
         undo_attempt = excluded.undo_attempt, undo_error = excluded.undo_error,
         started_at = excluded.started_at, ended_at = excluded.ended_at, updated_at = excluded.updated_at`,
    ),
    insertEvent: p(
      "INSERT INTO events (execution_id, seq, type, action, at, data) VALUES (?, ?, ?, ?, ?, ?)",
    ),
    consumeSignal: p(
      "UPDATE signals SET consumed_by = ? WHERE seq = ? AND execution_id = ? AND consumed_by IS NULL",
    ),
    claim: p(
      `UPDATE executions SET owner = ?, revision = revision + 1, updated_at = ?
       WHERE id = ? AND (owner IS NULL OR owner = ? OR owner IN (SELECT value FROM json_each(?)))`,
    ),
    getExecution: raw(`SELECT ${EXECUTION_COLUMNS} FROM executions WHERE id = ?`),
    // rowid order = order of first write, which upserts keep.
    stepsOf: raw(`SELECT ${STEP_COLUMNS} FROM steps WHERE execution_id = ? ORDER BY rowid`),
    pendingSignalsOf: raw(
      `SELECT ${SIGNAL_COLUMNS} FROM signals WHERE execution_id = ? AND consumed_by IS NULL ORDER BY seq`,
    ),
    nextEventSeq: p("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM events WHERE execution_id = ?"),
    // The same four reads for a JSON array of ids (loadMany): four statements, whatever the count.
    executionsIn: raw(
      `SELECT ${EXECUTION_COLUMNS} FROM executions WHERE id IN (SELECT value FROM json_each(?))`,
    ),
    stepsIn: raw(
      `SELECT ${STEP_COLUMNS} FROM steps WHERE execution_id IN (SELECT value FROM json_each(?)) ORDER BY rowid`,
    ),
    pendingSignalsIn: raw(
      `SELECT ${SIGNAL_COLUMNS} FROM signals
       WHERE execution_id IN (SELECT value FROM json_each(?)) AND consumed_by IS NULL ORDER BY seq`,
    ),
    nextEventSeqIn: raw(
      `SELECT execution_id, MAX(seq) + 1 AS next FROM events
       WHERE execution_id IN (SELECT value FROM json_each(?)) GROUP BY execution_id`,
    ),
    // The literal status/owner terms match the partial index executions_unowned_waiting.
    nextWakeAt: p(
      `SELECT MIN(wake_at) AS wake FROM executions
       WHERE status = 'waiting' AND owner IS NULL AND saga IN (SELECT value FROM json_each(?))`,
    ),
    history: p("SELECT * FROM events WHERE execution_id = ? AND seq > ? ORDER BY seq"),
    addSignal: p("INSERT INTO signals (execution_id, name, payload, created_at) VALUES (?, ?, ?, ?)"),
    signalsAfter: p("SELECT * FROM signals WHERE seq > ? ORDER BY seq LIMIT ?"),
    // sqlite_sequence holds the highest seq AUTOINCREMENT ever handed out, deleted rows included.
    lastSignalSeq: p("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'signals'), 0) AS seq"),
    requestCancel: p(
      `UPDATE executions SET cancel_requested = ?, updated_at = ? WHERE id = ? RETURNING ${EXECUTION_COLUMNS}`,
    ),
    upsertExecutor: p(
      `INSERT INTO executors (id, host, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at`,
    ),
    listExecutors: p("SELECT * FROM executors ORDER BY id"),
    removeExecutor: p("DELETE FROM executors WHERE id = ?"),
  };
}

type Statements = ReturnType<typeof prepareStatements>;

/** Measured peaks kept per job: plenty for a p95, bounded so the table doesn't grow forever. */
const KEPT_PEAKS = 100;

export class SqliteStorage implements Storage {
  readonly path: string;
  private readonly db: Database.Database;
  private statements: Statements | undefined;
  /** Conditional UPDATEs keyed by which patch fields they set: at most 2^8, each prepared once. */
  private readonly updates = new Map<number, Statement>();
  /** listExecutions statements keyed by their SQL (one per filter shape). */
  private readonly queries = new Map<string, Statement>();
  private readonly commitBatch: (batch: EncodedTransition[]) => CommitResult[];
  private readonly claimTx: (
    requests: readonly ClaimRequest[],
    now: number,
  ) => (ExecutionSnapshot | undefined)[];
  private readonly addSignalsTx: (signals: readonly NewSignal[], payloads: string[]) => SignalRecord[];
  private readonly loadTx: (executionId: string) => ExecutionSnapshot | undefined;
  private readonly loadManyTx: (executionIds: readonly string[]) => (ExecutionSnapshot | undefined)[];

  constructor(options: SqliteStorageOptions) {
    this.path = options.path;
    if (options.path !== ":memory:" && !options.path.startsWith("file:"))
      mkdirSync(dirname(options.path), { recursive: true });
    this.db = new Database(options.path);
    this.db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
    enableWal(this.db, options.path);
    this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
    this.db.pragma("foreign_keys = ON");

    const commitBatch = this.db.transaction((batch: EncodedTransition[]): CommitResult[] => {
      const s = this.stmts();
      const results: CommitResult[] = [];
      for (const t of batch) {
        // The ownership check (or the insert) comes first; on failure nothing else of t is written.
        if (t.insert) {
          if (s.insertExecution.run(...t.insert).changes === 0) {
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
                `event ${String(args[1])} of execution ${t.executionId} already exists`,
                { cause: error },
              );
            }
            throw error;
          }
        }
        for (const args of t.consume) s.consumeSignal.run(...args);
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
          request.executionId,
          request.owner,
          JSON.stringify(request.takeOverFrom ?? []),
        );
        return taken.changes === 0 ? undefined : this.snapshot(request.executionId);
      });
    });
    this.claimTx = claimTx.immediate;
    const addSignalsTx = this.db.transaction((signals: readonly NewSignal[], payloads: string[]) => {
      const s = this.stmts();
      return signals.map((signal, i): SignalRecord => {
        const { lastInsertRowid } = s.addSignal.run(
          signal.executionId,
          signal.name,
          payloads[i],
          signal.createdAt,
        );
        return {
          seq: Number(lastInsertRowid),
          executionId: signal.executionId,
          name: signal.name,
          payload: JSON.parse(payloads[i]!) as Json,
          createdAt: signal.createdAt,
          consumedBy: null,
        };
      });
    });
    this.addSignalsTx = addSignalsTx.immediate;
    // A read transaction, so the snapshot's parts all come from the same committed state.
    this.loadTx = this.db.transaction((executionId: string) => this.snapshot(executionId)).deferred;
    this.loadManyTx = this.db.transaction((executionIds: readonly string[]) =>
      this.snapshots(executionIds),
    ).deferred;
  }

  async init(): Promise<void> {
    if (!this.db.open) throw new SlipwayError("storage", `SqliteStorage(${this.path}) is closed`);
    if (this.statements) return;
    migrate(this.db);
    this.statements = prepareStatements(this.db);
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
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
    const record = this.db.transaction((pipeline: string, job: string, bytes: number, at: number) => {
      insert.run(pipeline, job, at, bytes);
      prune.run(pipeline, job, pipeline, job);
    });
    return {
      recordPeak: (pipeline, job, bytes, at) => record(pipeline, job, Math.round(bytes), at),
      recentPeaks: (pipeline, job, limit) =>
        (recent.all(pipeline, job, limit) as { b: number }[]).map((row) => row.b),
    };
  }

  async commit(transitions: readonly Transition[]): Promise<CommitResult[]> {
    this.stmts();
    if (transitions.length === 0) return [];
    // Serialize everything before the first write: a value JSON cannot hold fails the batch up front.
    const now = Date.now();
    const batch = transitions.map((t) => this.encode(t, now));
    return this.commitBatch(batch);
  }

  async claim(request: ClaimRequest): Promise<ExecutionSnapshot | undefined> {
    return (await this.claimMany([request]))[0];
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<(ExecutionSnapshot | undefined)[]> {
    this.stmts();
    if (requests.length === 0) return [];
    return this.claimTx(requests, Date.now());
  }

  async load(executionId: string): Promise<ExecutionSnapshot | undefined> {
    this.stmts();
    return this.loadTx(executionId);
  }

  async loadMany(executionIds: readonly string[]): Promise<(ExecutionSnapshot | undefined)[]> {
    this.stmts();
    if (executionIds.length === 0) return [];
    return this.loadManyTx(executionIds);
  }

  async getExecution(executionId: string): Promise<ExecutionRecord | undefined> {
    const row = this.stmts().getExecution.get(executionId) as unknown[] | undefined;
    return row && executionOf(row);
  }

  async getExecutions(executionIds: readonly string[]): Promise<(ExecutionRecord | undefined)[]> {
    const s = this.stmts();
    if (executionIds.length === 0) return [];
    if (executionIds.length === 1) return [await this.getExecution(executionIds[0]!)];
    const byId = new Map<string, unknown[]>();
    for (const row of s.executionsIn.all(JSON.stringify(executionIds)) as unknown[][])
      byId.set(row[0] as string, row);
    return executionIds.map((id) => {
      const row = byId.get(id);
      return row && executionOf(row);
    });
  }

  async listExecutions(query: ExecutionQuery): Promise<ExecutionRecord[]> {
    this.stmts();
    const where: string[] = [];
    const args: unknown[] = [];
    if (query.sagas !== undefined) {
      where.push("e.saga IN (SELECT value FROM json_each(?))");
      args.push(JSON.stringify(query.sagas));
    }
    if (query.statuses !== undefined) {
      where.push("e.status IN (SELECT value FROM json_each(?))");
      args.push(JSON.stringify(query.statuses));
    }
    if (query.owner === null) {
      where.push("e.owner IS NULL");
    } else if (query.owner !== undefined) {
      where.push("e.owner = ?");
      args.push(query.owner);
    }
    if (query.wakeAtOrBefore !== undefined) {
      where.push("e.wake_at <= ?");
      args.push(query.wakeAtOrBefore);
    }
    if (query.cancelRequested !== undefined) {
      where.push(`e.cancel_requested IS ${query.cancelRequested ? "NOT NULL" : "NULL"}`);
    }
    if (query.withPendingSignals !== undefined) {
      where.push(
        `${query.withPendingSignals ? "" : "NOT "}EXISTS (SELECT 1 FROM signals s WHERE s.execution_id = e.id AND s.consumed_by IS NULL)`,
      );
    }
    let sql = `SELECT ${EXECUTION_COLUMNS} FROM executions e`;
    if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
    sql += " ORDER BY e.created_at, e.id";
    if (query.limit !== undefined) {
      sql += " LIMIT ?";
      args.push(Math.max(0, query.limit));
    }
    let statement = this.queries.get(sql);
    if (!statement) {
      statement = this.db.prepare(sql);
      this.queries.set(sql, statement);
    }
    return (statement.all(...args) as ExecutionRow[]).map(toExecution);
  }

  async nextWakeAt(sagas: readonly string[]): Promise<number | undefined> {
    const row = this.stmts().nextWakeAt.get(JSON.stringify(sagas)) as { wake: number | null };
    return row.wake ?? undefined;
  }

  async history(executionId: string, afterSeq?: number): Promise<EventRecord[]> {
    const rows = this.stmts().history.all(executionId, afterSeq ?? Number.MIN_SAFE_INTEGER) as EventRow[];
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
      return this.addSignalsTx(signals, payloads);
    } catch (error) {
      if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_FOREIGNKEY") {
        const ids = [...new Set(signals.map((s) => s.executionId))].join(", ");
        throw new NotFoundError(`cannot signal: one of the executions ${ids} does not exist`);
      }
      throw error;
    }
  }

  async signalsAfter(afterSeq: number, limit?: number): Promise<SignalRecord[]> {
    // LIMIT -1 means no limit in SQLite.
    const rows = this.stmts().signalsAfter.all(
      afterSeq,
      limit === undefined ? -1 : Math.max(0, limit),
    ) as SignalRow[];
    return rows.map(toSignal);
  }

  async lastSignalSeq(): Promise<number> {
    return (this.stmts().lastSignalSeq.get() as { seq: number }).seq;
  }

  async requestCancel(executionId: string, reason: string): Promise<ExecutionRecord | undefined> {
    const row = this.stmts().requestCancel.get(reason, Date.now(), executionId) as ExecutionRow | undefined;
    return row && toExecution(row);
  }

  async upsertExecutor(executor: ExecutorRecord): Promise<void> {
    this.stmts().upsertExecutor.run(
      executor.id,
      executor.host,
      executor.pid,
      executor.startedAt,
      executor.heartbeatAt,
    );
  }

  async listExecutors(): Promise<ExecutorRecord[]> {
    return (this.stmts().listExecutors.all() as ExecutorRow[]).map((row) => ({
      id: row.id,
      host: row.host,
      pid: row.pid,
      startedAt: row.started_at,
      heartbeatAt: row.heartbeat_at,
    }));
  }

  async removeExecutor(id: string): Promise<void> {
    this.stmts().removeExecutor.run(id);
  }

  private stmts(): Statements {
    if (!this.statements) {
      throw new SlipwayError("storage", `SqliteStorage(${this.path}): call init() before using it`);
    }
    if (!this.db.open) throw new SlipwayError("storage", `SqliteStorage(${this.path}) is closed`);
    return this.statements;
  }

  private snapshot(executionId: string): ExecutionSnapshot | undefined {
    const s = this.stmts();
    const row = s.getExecution.get(executionId) as unknown[] | undefined;
    if (!row) return undefined;
    return {
      execution: executionOf(row),
      steps: (s.stepsOf.all(executionId) as unknown[][]).map(stepOf),
      signals: (s.pendingSignalsOf.all(executionId) as unknown[][]).map(signalOf),
      nextEventSeq: (s.nextEventSeq.get(executionId) as { next: number }).next,
    };
  }

  /** Snapshots of many executions from four statements; call inside a transaction. */
  private snapshots(executionIds: readonly string[]): (ExecutionSnapshot | undefined)[] {
    const s = this.stmts();
    const ids = JSON.stringify(executionIds);
    const byId = new Map<string, ExecutionSnapshot>();
    for (const row of s.executionsIn.all(ids) as unknown[][]) {
      byId.set(row[0] as string, { execution: executionOf(row), steps: [], signals: [], nextEventSeq: 1 });
    }
    if (byId.size > 0) {
      // Column 0 of steps is execution_id, column 1 of signals too.
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
    return executionIds.map((id) => {
      const snapshot = byId.get(id);
      if (!snapshot || !seen.has(id)) {
        seen.add(id);
        return snapshot;
      }
      return structuredClone(snapshot);
    });
  }

  private encode(t: Transition, now: number): EncodedTransition {
    const encoded: EncodedTransition = {
      executionId: t.executionId,
      insert: null,
      update: null,
      updateArgs: [],
      steps: [],
      events: [],
      consume: [],
    };
    const patch = t.execution;
    if (t.create) {
      const c = t.create;
      if (c.id !== t.executionId) {
        throw new SlipwayError(
          "storage",
          `transition for ${t.executionId} creates a different execution ${c.id}`,
        );
      }
      // The patch of a creating transition is folded into the inserted row.
      const merged: ExecutionRecord = { ...c, owner: t.owner };
      if (patch) {
        for (const [field] of PATCH_COLUMNS) {
          if (patch[field] !== undefined)
            (merged as unknown as Record<string, unknown>)[field] = patch[field];
        }
        if (patch.release) merged.owner = null;
      }
      encoded.insert = [
        merged.id,
        merged.saga,
        merged.version,
        merged.status,
        toJsonText(merged.input, `input of ${merged.id}`),
        merged.runName ?? null,
        merged.owner,
        merged.revision,
        merged.wakeAt ?? null,
        merged.cancelRequested ?? null,
        toNullableJsonText(merged.cause, `cause of ${merged.id}`),
        toNullableJsonText(merged.error, `error of ${merged.id}`),
        merged.createdAt,
        merged.updatedAt,
        merged.endedAt ?? null,
      ];
    } else {
      let mask = 0;
      const args: unknown[] = [now];
      if (patch) {
        for (let bit = 0; bit < PATCH_COLUMNS.length; bit++) {
          const field = PATCH_COLUMNS[bit]![0];
          const value = patch[field];
          if (value === undefined) continue;
          mask |= 1 << bit;
          args.push(
            field === "cause" || field === "error"
              ? toNullableJsonText(value, `${field} of ${t.executionId}`)
              : value,
          );
        }
        if (patch.release) mask |= RELEASE_BIT;
      }
      if (t.claim) {
        mask |= CLAIM_BIT;
        if (!(mask & RELEASE_BIT)) args.push(t.owner);
        args.push(t.executionId, t.claim.revision);
      } else args.push(t.executionId, t.owner);
      encoded.update = this.updateStatement(mask);
      encoded.updateArgs = args;
    }
    for (const step of t.steps ?? []) {
      if (step.executionId !== t.executionId) {
        throw new SlipwayError(
          "storage",
          `transition for ${t.executionId} carries a step of ${step.executionId}`,
        );
      }
      const where = `step ${step.action} of ${step.executionId}`;
      encoded.steps.push([
        step.executionId,
        step.action,
        step.status,
        step.attempt,
        step.failures,
        toNullableJsonText(step.output, `output of ${where}`),
        toNullableJsonText(step.error, `error of ${where}`),
        toNullableJsonText(step.state, `state of ${where}`),
        step.undoAttempt,
        toNullableJsonText(step.undoError, `undoError of ${where}`),
        step.startedAt ?? null,
        step.endedAt ?? null,
        step.updatedAt,
      ]);
    }
    for (const event of t.events ?? []) {
      if (event.executionId !== t.executionId) {
        throw new SlipwayError(
          "storage",
          `transition for ${t.executionId} carries an event of ${event.executionId}`,
        );
      }
      encoded.events.push([
        event.executionId,
        event.seq,
        event.type,
        event.action ?? null,
        event.at,
        toNullableJsonText(event.data, `data of event ${event.seq} of ${event.executionId}`),
      ]);
    }
    for (const consumed of t.consumeSignals ?? []) {
      encoded.consume.push([consumed.action, consumed.seq, t.executionId]);
    }
    return encoded;
  }

  /**
   * `UPDATE ... WHERE id = ? AND owner = ?` setting exactly the patch fields in `mask`; with CLAIM_BIT,
   * `WHERE id = ? AND revision = ?` setting the owner too.
   */
  private updateStatement(mask: number): Statement {
    let statement = this.updates.get(mask);
    if (!statement) {
      let sets = "revision = revision + 1, updated_at = ?";
      PATCH_COLUMNS.forEach(([, column], bit) => {
        if (mask & (1 << bit)) sets += `, ${column} = ?`;
      });
      if (mask & RELEASE_BIT) sets += ", owner = NULL";
      else if (mask & CLAIM_BIT) sets += ", owner = ?";
      const where = mask & CLAIM_BIT ? "id = ? AND revision = ?" : "id = ? AND owner = ?";
      statement = this.db.prepare(`UPDATE executions SET ${sets} WHERE ${where}`);
      this.updates.set(mask, statement);
    }
    return statement;
  }
}

/**
 * Switches the file to WAL (a persistent setting). This needs an exclusive lock, and when several
 * processes open a new file at once SQLite reports SQLITE_BUSY at once instead of waiting on
 * busy_timeout (it would be a deadlock otherwise), so retry for as long as busy_timeout would wait.
 */
function enableWal(db: Database.Database, path: string): void {
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      const mode = db.pragma("journal_mode = WAL", { simple: true });
      // In-memory and temporary databases cannot use WAL; anything else must.
      if (mode === "wal" || path === ":memory:" || path === "") return;
      throw new SlipwayError(
        "storage",
        `${path}: cannot switch to WAL (journal_mode stays "${String(mode)}")`,
      );
    } catch (error) {
      if ((error as { code?: unknown }).code !== "SQLITE_BUSY" || Date.now() >= deadline) throw error;
      Atomics.wait(pause, 0, 0, 5 + Math.random() * 20);
    }
  }
}

/** Factory form of the constructor, for callers that name an export (e.g. the crash conformance test). */
export function openSqliteStorage(options: SqliteStorageOptions): SqliteStorage {
  return new SqliteStorage(options);
}

/** An execution from a raw row in EXECUTION_COLUMNS order. */
function executionOf(r: unknown[]): ExecutionRecord {
  return {
    id: r[0] as string,
    saga: r[1] as string,
    version: r[2] as number,
    status: r[3] as ExecutionStatus,
    input: JSON.parse(r[4] as string) as JsonObject,
    runName: r[5] as string | null,
    owner: r[6] as string | null,
    revision: r[7] as number,
    wakeAt: r[8] as number | null,
    cancelRequested: r[9] as string | null,
    cause: parseNullable<CompensationCause>(r[10] as string | null),
    error: parseNullable<ErrorInfo>(r[11] as string | null),
    createdAt: r[12] as number,
    updatedAt: r[13] as number,
    endedAt: r[14] as number | null,
  };
}

/** A step from a raw row in STEP_COLUMNS order. */
function stepOf(r: unknown[]): StepRecord {
  return {
    executionId: r[0] as string,
    action: r[1] as string,
    status: r[2] as StepStatus,
    attempt: r[3] as number,
    failures: r[4] as number,
    output: parseNullable<JsonObject>(r[5] as string | null),
    error: parseNullable<ErrorInfo>(r[6] as string | null),
    state: parseNullable<JsonObject>(r[7] as string | null),
    undoAttempt: r[8] as number,
    undoError: parseNullable<ErrorInfo>(r[9] as string | null),
    startedAt: r[10] as number | null,
    endedAt: r[11] as number | null,
    updatedAt: r[12] as number,
  };
}

/** A signal from a raw row in SIGNAL_COLUMNS order. */
function signalOf(r: unknown[]): SignalRecord {
  return {
    seq: r[0] as number,
    executionId: r[1] as string,
    name: r[2] as string,
    payload: JSON.parse(r[3] as string) as Json,
    createdAt: r[4] as number,
    consumedBy: r[5] as string | null,
  };
}

function toExecution(row: ExecutionRow): ExecutionRecord {
  return {
    id: row.id,
    saga: row.saga,
    version: row.version,
    status: row.status as ExecutionStatus,
    input: JSON.parse(row.input) as JsonObject,
    runName: row.run_name,
    owner: row.owner,
    revision: row.revision,
    wakeAt: row.wake_at,
    cancelRequested: row.cancel_requested,
    cause: parseNullable<CompensationCause>(row.cause),
    error: parseNullable<ErrorInfo>(row.error),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    endedAt: row.ended_at,
  };
}

function toEvent(row: EventRow): EventRecord {
  return {
    executionId: row.execution_id,
    seq: row.seq,
    type: row.type,
    action: row.action,
    at: row.at,
    data: parseNullable<JsonObject>(row.data),
  };
}

function toSignal(row: SignalRow): SignalRecord {
  return {
    seq: row.seq,
    executionId: row.execution_id,
    name: row.name,
    payload: JSON.parse(row.payload) as Json,
    createdAt: row.created_at,
    consumedBy: row.consumed_by,
  };
}
