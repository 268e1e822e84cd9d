/**
 * PostgreSQL storage backend (the `pg` driver): numbered migrations in sql/postgres/, group commit of
 * transitions written set-wise (statements.ts), one-statement snapshots, and signal seqs that become
 * visible in the order they were handed out, so several processes can share one database.
 */
import { NotFoundError, SlipwayError } from "../../errors.js";
import type { Json } from "../../json.js";
import { toJsonText } from "../json-text.js";
import type { LockStore } from "../locks.js";
import {
  type AuditRow,
  type EventRow,
  type ExecutorRow,
  runOf,
  signalOf,
  signalWithRunOf,
  stepOf,
  toEvent,
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
  StorageHealth,
  Transition,
} from "../types.js";
import { FINAL_STATUSES } from "../types.js";
import { CHANGES_CHANNEL, ChangeListener, NOTIFY_CHANGE } from "./changes.js";
import { type Client, Connection } from "./connection.js";
import { type EncodedTransition, encodeTransition, partsWithDistinctRuns } from "./encode.js";
import { postgresLockStore } from "./lock-store.js";
import { migrate } from "./migrations.js";
import { PostgresPeaks } from "./peaks.js";
import {
  ADD_SIGNALS,
  CLAIM,
  COMMIT_UPDATES,
  CONSUME_SIGNALS,
  GET_RUNS,
  HISTORY,
  INSERT_AUDIT,
  INSERT_EVENTS,
  INSERT_RUNS,
  INSERT_SIGNALS,
  LAST_SIGNAL_SEQ,
  NEXT_WAKE_AT,
  REQUEST_CANCEL,
  runQuerySql,
  SIGNALS_AFTER,
  SIGNALS_WITH_RUNS_AFTER,
  SNAPSHOTS,
  UPDATE_RUNS,
  UPSERT_EXECUTOR,
  UPSERT_STEPS,
} from "./statements.js";
import { postgresTriggerStore } from "./trigger-store.js";

export interface PostgresStorageOptions {
  /**
   * A connection string: `postgres://user:password@host:port/database` (`?host=/socket/dir` for a
   * Unix socket). `?schema=name` keeps Slipway's tables in that schema of the database, created if
   * missing (the default is the user's search path, normally `public`).
   */
  url: string;
  /** Connections kept open at most (default 10): commits take one, reads share the rest. */
  maxConnections?: number;
}

export class PostgresStorage implements Storage {
  readonly #db: Connection;
  private ready = false;
  private closed = false;
  /** Told how long each commit of transitions took, in ms (metrics set it); absent: not timed. */
  onCommit: ((ms: number) => void) | undefined;
  readonly #peaks: PostgresPeaks;
  private triggerStore: TriggerStore | undefined;
  private lockStore: (LockStore & { close(): void }) | undefined;
  private readonly changes: ChangeListener;

  constructor(options: PostgresStorageOptions) {
    this.#db = new Connection(options.url, options.maxConnections ?? 10);
    this.#peaks = new PostgresPeaks(this.#db);
    this.changes = new ChangeListener(this.#db.config, this.#db.schema);
  }

  get url(): string {
    return this.#db.url;
  }

  /** The schema of `?schema=`, if the URL names one. */
  get schema(): string | undefined {
    return this.#db.schema;
  }

  /** The database it points at, without a password. */
  get where(): string {
    return this.#db.where;
  }

  async init(): Promise<void> {
    if (this.closed) throw new SlipwayError("storage", `PostgresStorage(${this.where}) is closed`);
    if (this.ready) return;
    await this.#db.transaction((client) => migrate(client, this.schema));
    await this.#peaks.load();
    this.ready = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.changes.close();
    this.lockStore?.close();
    await this.#peaks.flushed();
    await this.#db.end();
  }

  async commit(transitions: readonly Transition[]): Promise<CommitResult[]> {
    this.check();
    if (transitions.length === 0) return [];
    // Serialize everything before the first write: a value JSON cannot hold fails the batch up front.
    const now = Date.now();
    const batch = transitions.map((t, i) => encodeTransition(t, now, i));
    const started = performance.now();
    const parts = partsWithDistinctRuns(batch);
    const results =
      parts.length === 1 && batch.every((t) => t.update !== null && t.notify.length === 0)
        ? await this.commitUpdates(batch)
        : await this.#db.transaction(async (client) => {
            const out: CommitResult[] = new Array(batch.length);
            for (const part of parts) await this.commitPart(client, part, out);
            return out;
          });
    const observe = this.onCommit;
    if (observe) {
      try {
        observe(performance.now() - started);
      } catch {
        // Committed whatever the observer does.
      }
    }
    return results;
  }

  /** Updates of distinct runs, nothing created or sent to other runs: one statement (COMMIT_UPDATES). */
  private async commitUpdates(part: EncodedTransition[]): Promise<CommitResult[]> {
    let rows: unknown[][];
    try {
      rows = await this.#db.arrays(COMMIT_UPDATES, [
        JSON.stringify(part.map((t) => t.update)),
        JSON.stringify(part.flatMap((t) => t.steps)),
        JSON.stringify(part.flatMap((t) => t.events)),
        JSON.stringify(part.flatMap((t) => t.consume)),
      ]);
    } catch (error) {
      throw eventConflict(error);
    }
    const written = new Set(rows.map((row) => row[0] as string));
    return part.map((t) => (written.has(t.runId) ? "ok" : "not_owner"));
  }

  /** Writes transitions of distinct runs, setting each one's result at its index in `out`. */
  private async commitPart(client: Client, part: EncodedTransition[], out: CommitResult[]): Promise<void> {
    const written = new Set<string>();
    const inserts = part.filter((t) => t.insert !== null);
    if (inserts.length > 0) {
      const rows = inserts.map((t) => t.insert);
      const inserted = await client.query<{ id: string }>(INSERT_RUNS, [JSON.stringify(rows)]);
      for (const row of inserted.rows) written.add(row.id);
    }
    const updates = part.filter((t) => t.update !== null);
    if (updates.length > 0) {
      const rows = updates.map((t) => t.update);
      const updated = await client.query<{ id: string }>(UPDATE_RUNS, [JSON.stringify(rows)]);
      for (const row of updated.rows) written.add(row.id);
    }
    const ok = part.filter((t) => written.has(t.runId));
    for (const t of part) out[t.index] = written.has(t.runId) ? "ok" : t.insert ? "exists" : "not_owner";
    const steps = ok.flatMap((t) => t.steps);
    if (steps.length > 0) await client.query(UPSERT_STEPS, [JSON.stringify(steps)]);
    const events = ok.flatMap((t) => t.events);
    if (events.length > 0) {
      try {
        await client.query(INSERT_EVENTS, [JSON.stringify(events)]);
      } catch (error) {
        throw eventConflict(error);
      }
    }
    const consume = ok.flatMap((t) => t.consume);
    if (consume.length > 0) await client.query(CONSUME_SIGNALS, [JSON.stringify(consume)]);
    const notify = ok.flatMap((t) => t.notify).map((n, i) => ({ ...n, i }));
    if (notify.length > 0) await client.query(INSERT_SIGNALS, [JSON.stringify(notify), true]);
    // A signal to another run, or a run created for any executor to take (queued): others look at once.
    if (notify.length > 0 || ok.some((t) => t.insert !== null && t.insert.owner === null))
      await this.notifyChange(client);
  }

  async claim(request: ClaimRequest): Promise<RunSnapshot | undefined> {
    return (await this.claimMany([request]))[0];
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<(RunSnapshot | undefined)[]> {
    this.check();
    if (requests.length === 0) return [];
    const now = Date.now();
    return this.#db.transaction(async (client) => {
      const taken: boolean[] = [];
      for (const r of requests) {
        const result = await client.query(CLAIM, [r.owner, now, r.runId, r.takeOverFrom ?? []]);
        taken.push(result.rowCount === 1);
      }
      const snapshots = await this.snapshots(
        client,
        requests.filter((_, i) => taken[i]).map((r) => r.runId),
      );
      let next = 0;
      return taken.map((won) => (won ? snapshots[next++] : undefined));
    });
  }

  async load(runId: string): Promise<RunSnapshot | undefined> {
    return (await this.loadMany([runId]))[0];
  }

  async loadMany(runIds: readonly string[]): Promise<(RunSnapshot | undefined)[]> {
    this.check();
    if (runIds.length === 0) return [];
    return this.snapshots(this.#db, runIds);
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    return (await this.getRuns([runId]))[0];
  }

  async getRuns(runIds: readonly string[]): Promise<(RunRecord | undefined)[]> {
    this.check();
    if (runIds.length === 0) return [];
    const byId = new Map((await this.#db.arrays(GET_RUNS, [runIds])).map((row) => [row[0] as string, row]));
    return runIds.map((id) => {
      const row = byId.get(id);
      return row && runOf(row);
    });
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    this.check();
    const { text, values } = runQuerySql(query);
    return (await this.#db.arrays(text, values)).map(runOf);
  }

  async deleteRun(runId: string): Promise<boolean> {
    this.check();
    return this.#db.transaction(async (client) => {
      const deleted = await client.query("DELETE FROM runs WHERE id = $1 AND status = ANY($2::text[])", [
        runId,
        FINAL_STATUSES,
      ]);
      if (deleted.rowCount === 0) return false;
      // Its signals go with it (ON DELETE CASCADE).
      await client.query("DELETE FROM steps WHERE run_id = $1", [runId]);
      await client.query("DELETE FROM events WHERE run_id = $1", [runId]);
      return true;
    });
  }

  async nextWakeAt(sagas: readonly string[]): Promise<number | undefined> {
    this.check();
    const result = await this.#db.query<{ wake: number | null }>(NEXT_WAKE_AT, [sagas]);
    return result.rows[0]?.wake ?? undefined;
  }

  async history(runId: string, afterSeq?: number): Promise<EventRecord[]> {
    this.check();
    const result = await this.#db.query<EventRow>(HISTORY, [runId, afterSeq ?? Number.MIN_SAFE_INTEGER]);
    return result.rows.map(toEvent);
  }

  async addSignal(signal: NewSignal): Promise<SignalRecord> {
    return (await this.addSignals([signal]))[0]!;
  }

  async addSignals(signals: readonly NewSignal[]): Promise<SignalRecord[]> {
    this.check();
    if (signals.length === 0) return [];
    const rows = signals.map((signal, i) => ({
      i,
      run_id: signal.runId,
      name: signal.name,
      payload: toJsonText(signal.payload, "signal payload"),
      created_at: signal.createdAt,
    }));
    let seqs: number[];
    try {
      const added = await this.#db.arrays(ADD_SIGNALS, [
        JSON.stringify(rows),
        false,
        CHANGES_CHANNEL,
        this.schema ?? "",
      ]);
      // Handed out in the order the rows were inserted (ORDER BY i).
      seqs = added.map((row) => Number(row[0])).sort((a, b) => a - b);
    } catch (error) {
      if ((error as { code?: unknown }).code === "23503") {
        const ids = [...new Set(signals.map((s) => s.runId))].join(", ");
        throw new NotFoundError(`cannot signal: one of the runs ${ids} does not exist`);
      }
      throw error;
    }
    return rows.map((row, i) => ({
      seq: seqs[i]!,
      runId: row.run_id,
      name: row.name,
      payload: JSON.parse(row.payload) as Json,
      createdAt: row.created_at,
      consumedBy: null,
    }));
  }

  async signalsAfter(afterSeq: number, limit?: number): Promise<SignalRecord[]> {
    this.check();
    const rows = await this.#db.arrays(SIGNALS_AFTER, [
      afterSeq,
      limit === undefined ? null : Math.max(0, limit),
    ]);
    return rows.map(signalOf);
  }

  async signalsWithRunsAfter(afterSeq: number, limit?: number): Promise<SignalWithRun[]> {
    this.check();
    const rows = await this.#db.arrays(SIGNALS_WITH_RUNS_AFTER, [
      afterSeq,
      limit === undefined ? null : Math.max(0, limit),
    ]);
    return rows.map(signalWithRunOf);
  }

  async lastSignalSeq(): Promise<number> {
    this.check();
    // Seqs still in flight are above it: they become visible later, after a cursor set to it.
    return (await this.#db.query<{ seq: number }>(LAST_SIGNAL_SEQ)).rows[0]!.seq;
  }

  async requestCancel(runId: string, reason: string): Promise<RunRecord | undefined> {
    this.check();
    const [row] = await this.#db.transaction(async (client) => {
      const updated = await client.query<unknown[]>({
        text: REQUEST_CANCEL,
        values: [reason, Date.now(), runId],
        rowMode: "array",
      });
      if (updated.rows.length > 0) await this.notifyChange(client);
      return updated.rows;
    });
    return row && runOf(row);
  }

  async upsertExecutor(executor: ExecutorRecord): Promise<void> {
    this.check();
    await this.#db.query(UPSERT_EXECUTOR, [
      executor.id,
      executor.host,
      executor.pid,
      executor.startedAt,
      executor.heartbeatAt,
      executor.maxRuns,
    ]);
  }

  async listExecutors(): Promise<ExecutorRecord[]> {
    this.check();
    const result = await this.#db.query<ExecutorRow>("SELECT * FROM executors ORDER BY id");
    return result.rows.map((row) => ({
      id: row.id,
      host: row.host,
      pid: row.pid,
      startedAt: row.started_at,
      heartbeatAt: row.heartbeat_at,
      maxRuns: row.max_runs,
    }));
  }

  async removeExecutor(id: string): Promise<void> {
    this.check();
    await this.#db.query("DELETE FROM executors WHERE id = $1", [id]);
  }

  async addAudit(records: readonly NewAuditRecord[]): Promise<AuditRecord[]> {
    this.check();
    if (records.length === 0) return [];
    // Serialized before the transaction: a record JSON cannot hold fails the batch, nothing written.
    const replays = records.map((r) => (r.replay === null ? null : toJsonText(r.replay, "audit replay")));
    const rows = records.map((r, i) => ({
      i,
      at: r.at,
      actor: r.actor,
      method: r.method,
      route: r.route,
      path: r.path,
      run_id: r.runId,
      status: r.status,
      idempotency_key: r.key,
      replay: replays[i],
    }));
    const result = await this.#db.query<{ seq: number }>(INSERT_AUDIT, [JSON.stringify(rows)]);
    const seqs = result.rows.map((row) => row.seq).sort((a, b) => a - b);
    return records.map((record, i) => ({
      ...record,
      seq: seqs[i]!,
      replay: replays[i] === null ? null : (JSON.parse(replays[i]!) as AuditRecord["replay"]),
    }));
  }

  async listAudit(query: AuditQuery): Promise<AuditRecord[]> {
    this.check();
    const before = query.beforeSeq ?? Number.MAX_SAFE_INTEGER;
    const limit = Math.max(0, query.limit);
    const result =
      query.key === undefined
        ? await this.#db.query<AuditRow>("SELECT * FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2", [
            before,
            limit,
          ])
        : await this.#db.query<AuditRow>(
            "SELECT * FROM audit WHERE idempotency_key = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3",
            [query.key, before, limit],
          );
    return result.rows.map((row) => ({
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

  /**
   * Calls `listener` soon after another process writes a signal or a cancel request, or creates a run
   * for any executor to take (LISTEN/NOTIFY).
   */
  onChange(listener: () => void): () => void {
    return this.changes.subscribe(listener);
  }

  /** Whether the last statement reached the database: /healthz reports it, liveness heeds it. */
  health(): StorageHealth {
    return this.#db.health();
  }

  /** Tells the processes listening (at commit, if the transaction commits). */
  private async notifyChange(client: Client): Promise<void> {
    await client.query(NOTIFY_CHANGE, [CHANGES_CHANNEL, this.schema ?? ""]);
  }

  /** What triggers remember (see {@link TriggerStore}), in this database's trigger tables. */
  triggers(): TriggerStore {
    this.check();
    this.triggerStore ??= postgresTriggerStore((text, values) => this.#db.query(text, values));
    return this.triggerStore;
  }

  /** Named locks held in this database, for every worker sharing it (see {@link LockStore}). */
  locks(): LockStore {
    this.check();
    this.lockStore ??= postgresLockStore(this.#db, this.schema);
    return this.lockStore;
  }

  /**
   * Measured job peaks (see {@link PeakStore}), the newest 100 per job, answered from memory
   * (admission asks while it decides); written behind.
   */
  peaks(): PeakStore {
    this.check();
    return this.#peaks;
  }

  /** How many runs there are per saga and status: what metrics show at a scrape. */
  async countRuns(): Promise<{ saga: string; status: RunRecord["status"]; count: number }[]> {
    this.check();
    const result = await this.#db.query<{ saga: string; status: RunRecord["status"]; count: number }>(
      "SELECT saga, status, COUNT(*)::int AS count FROM runs GROUP BY status, saga",
    );
    return result.rows;
  }

  /** Snapshots of runs from one statement, one per id in order; a repeated id gets its own copy. */
  private async snapshots(
    on: Client | Connection,
    runIds: readonly string[],
  ): Promise<(RunSnapshot | undefined)[]> {
    if (runIds.length === 0) return [];
    const rows =
      on instanceof Connection
        ? await on.arrays(SNAPSHOTS, [runIds])
        : (await on.query<unknown[]>({ text: SNAPSHOTS, values: [runIds], rowMode: "array" })).rows;
    const byId = new Map<string, unknown[]>();
    for (const row of rows) byId.set(row[0] as string, row);
    return runIds.map((id) => {
      const row = byId.get(id);
      if (!row) return undefined;
      const n = row.length;
      return {
        run: runOf(row),
        steps: (row[n - 3] as unknown[][]).map(stepOf),
        signals: (row[n - 2] as unknown[][]).map(signalOf),
        nextEventSeq: row[n - 1] as number,
      };
    });
  }

  private check(): void {
    if (this.closed) throw new SlipwayError("storage", `PostgresStorage(${this.where}) is closed`);
    if (!this.ready)
      throw new SlipwayError("storage", `PostgresStorage(${this.where}): call init() before using it`);
  }
}

/** Factory form of the constructor, for callers that name an export (e.g. the crash conformance test). */
export function openPostgresStorage(options: PostgresStorageOptions): PostgresStorage {
  return new PostgresStorage(options);
}

/** An event of the batch that exists already (a unique violation) is a conflict; else as thrown. */
function eventConflict(error: unknown): unknown {
  if ((error as { code?: unknown }).code !== "23505") return error;
  return new SlipwayError("conflict", `an event of this batch already exists (${(error as Error).message})`, {
    cause: error,
  });
}
