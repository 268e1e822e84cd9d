/**
 * PostgreSQL storage backend (the `pg` driver): numbered migrations in sql/postgres/, group commit of
 * transitions written set-wise (statements.ts), one-statement snapshots, and signal seqs that become
 * visible in the order they were handed out, so several processes can share one database.
 */
import pg from "pg";
import { diskFullError, NotFoundError, SlipwayError } from "../../errors.js";
import type { Json } from "../../json.js";
import { toJsonText } from "../json-text.js";
import { type EventRow, type ExecutorRow, runOf, signalOf, stepOf, toEvent } from "../rows.js";
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
  Storage,
  Transition,
} from "../types.js";
import { FINAL_STATUSES } from "../types.js";
import { CHANGES_CHANNEL, ChangeListener, NOTIFY_CHANGE } from "./changes.js";
import { type EncodedTransition, encodeTransition, partsWithDistinctRuns } from "./encode.js";
import { migrate, quoteIdentifier } from "./migrations.js";
import {
  CLAIM,
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

/** Measured peaks kept per job: plenty for a p95, bounded so the table doesn't grow forever. */
const KEPT_PEAKS = 100;

/** bigint (int8) columns read as numbers: every one of them holds epoch ms, a seq or a revision. */
const types = {
  getTypeParser: ((oid: number, format?: string) =>
    oid === pg.types.builtins.INT8
      ? (value: string) => Number(value)
      : pg.types.getTypeParser(oid, format as "text")) as typeof pg.types.getTypeParser,
};

type Client = pg.PoolClient;

export class PostgresStorage implements Storage {
  readonly url: string;
  /** The schema of `?schema=`, if the URL names one. */
  readonly schema: string | undefined;
  private readonly pool: pg.Pool;
  private ready = false;
  private closed = false;
  /** Told how long each commit of transitions took, in ms (metrics set it); absent: not timed. */
  onCommit: ((ms: number) => void) | undefined;
  /** The measured peaks, read at init and kept current here (admission asks synchronously). */
  private readonly peakCache = new Map<string, number[]>();
  private triggerStore: TriggerStore | undefined;
  private readonly changes: ChangeListener;
  /** Peak writes under way, awaited by close. */
  private peakWrites: Promise<void> = Promise.resolve();

  constructor(options: PostgresStorageOptions) {
    this.url = options.url;
    const { connectionString, schema } = splitSchema(options.url);
    this.schema = schema;
    const config: pg.ClientConfig = {
      connectionString,
      types,
      // Startup options split at spaces unless escaped with a backslash.
      ...(schema !== undefined && {
        options: `-c search_path=${quoteIdentifier(schema).replace(/[\\ ]/g, (c) => `\\${c}`)}`,
      }),
    };
    this.pool = new pg.Pool({ ...config, max: options.maxConnections ?? 10 });
    this.changes = new ChangeListener(config, schema);
    // An idle connection that drops (the server restarts) is replaced by the pool; without a listener
    // its error would be thrown as an uncaught exception.
    this.pool.on("error", () => {});
  }

  async init(): Promise<void> {
    if (this.closed) throw new SlipwayError("storage", `PostgresStorage(${this.where}) is closed`);
    if (this.ready) return;
    await this.transaction((client) => migrate(client, this.schema));
    const peaks = await this.query<{ pipeline: string; job: string; peak_bytes: number }>(
      "SELECT pipeline, job, peak_bytes FROM job_peaks ORDER BY at DESC",
    );
    for (const row of peaks.rows) {
      const key = peakKey(row.pipeline, row.job);
      const list = this.peakCache.get(key) ?? [];
      if (list.length < KEPT_PEAKS) list.push(row.peak_bytes);
      this.peakCache.set(key, list);
    }
    this.ready = true;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.changes.close();
    await this.peakWrites;
    await this.pool.end();
  }

  /** The database it points at, without a password. */
  get where(): string {
    try {
      const url = new URL(this.url);
      url.password = "";
      return url.toString();
    } catch {
      return "postgres";
    }
  }

  async commit(transitions: readonly Transition[]): Promise<CommitResult[]> {
    this.check();
    if (transitions.length === 0) return [];
    // Serialize everything before the first write: a value JSON cannot hold fails the batch up front.
    const now = Date.now();
    const batch = transitions.map((t, i) => encodeTransition(t, now, i));
    const started = performance.now();
    const results = await this.transaction(async (client) => {
      const out: CommitResult[] = new Array(batch.length);
      for (const part of partsWithDistinctRuns(batch)) await this.commitPart(client, part, out);
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
        if ((error as { code?: unknown }).code === "23505") {
          throw new SlipwayError(
            "conflict",
            `an event of this batch already exists (${(error as Error).message})`,
            {
              cause: error,
            },
          );
        }
        throw error;
      }
    }
    const consume = ok.flatMap((t) => t.consume);
    if (consume.length > 0) await client.query(CONSUME_SIGNALS, [JSON.stringify(consume)]);
    const notify = ok.flatMap((t) => t.notify).map((n, i) => ({ ...n, i }));
    if (notify.length > 0) {
      await client.query(INSERT_SIGNALS, [JSON.stringify(notify), true]);
      await this.notifyChange(client);
    }
  }

  async claim(request: ClaimRequest): Promise<RunSnapshot | undefined> {
    return (await this.claimMany([request]))[0];
  }

  async claimMany(requests: readonly ClaimRequest[]): Promise<(RunSnapshot | undefined)[]> {
    this.check();
    if (requests.length === 0) return [];
    const now = Date.now();
    return this.transaction(async (client) => {
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
    try {
      return await this.snapshots(this.pool, runIds);
    } catch (error) {
      throw this.failure(error);
    }
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    return (await this.getRuns([runId]))[0];
  }

  async getRuns(runIds: readonly string[]): Promise<(RunRecord | undefined)[]> {
    this.check();
    if (runIds.length === 0) return [];
    const byId = new Map((await this.arrays(GET_RUNS, [runIds])).map((row) => [row[0] as string, row]));
    return runIds.map((id) => {
      const row = byId.get(id);
      return row && runOf(row);
    });
  }

  async listRuns(query: RunQuery): Promise<RunRecord[]> {
    this.check();
    const { text, values } = runQuerySql(query);
    return (await this.arrays(text, values)).map(runOf);
  }

  async deleteRun(runId: string): Promise<boolean> {
    this.check();
    return this.transaction(async (client) => {
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
    const result = await this.query<{ wake: number | null }>(NEXT_WAKE_AT, [sagas]);
    return result.rows[0]?.wake ?? undefined;
  }

  async history(runId: string, afterSeq?: number): Promise<EventRecord[]> {
    this.check();
    const result = await this.query<EventRow>(HISTORY, [runId, afterSeq ?? Number.MIN_SAFE_INTEGER]);
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
      seqs = await this.transaction(async (client) => {
        const result = await client.query<{ seq: number }>(INSERT_SIGNALS, [JSON.stringify(rows), false]);
        await this.notifyChange(client);
        // Handed out in the order the rows were inserted (ORDER BY i).
        return result.rows.map((row) => row.seq).sort((a, b) => a - b);
      });
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
    const rows = await this.arrays(SIGNALS_AFTER, [
      afterSeq,
      limit === undefined ? null : Math.max(0, limit),
    ]);
    return rows.map(signalOf);
  }

  async lastSignalSeq(): Promise<number> {
    this.check();
    // Seqs still in flight are above it: they become visible later, after a cursor set to it.
    return (await this.query<{ seq: number }>(LAST_SIGNAL_SEQ)).rows[0]!.seq;
  }

  async requestCancel(runId: string, reason: string): Promise<RunRecord | undefined> {
    this.check();
    const [row] = await this.transaction(async (client) => {
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
    await this.query(UPSERT_EXECUTOR, [
      executor.id,
      executor.host,
      executor.pid,
      executor.startedAt,
      executor.heartbeatAt,
    ]);
  }

  async listExecutors(): Promise<ExecutorRecord[]> {
    this.check();
    const result = await this.query<ExecutorRow>("SELECT * FROM executors ORDER BY id");
    return result.rows.map((row) => ({
      id: row.id,
      host: row.host,
      pid: row.pid,
      startedAt: row.started_at,
      heartbeatAt: row.heartbeat_at,
    }));
  }

  async removeExecutor(id: string): Promise<void> {
    this.check();
    await this.query("DELETE FROM executors WHERE id = $1", [id]);
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
    const result = await this.query<{ seq: number }>(INSERT_AUDIT, [JSON.stringify(rows)]);
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
        ? await this.query<AuditRow>("SELECT * FROM audit WHERE seq < $1 ORDER BY seq DESC LIMIT $2", [
            before,
            limit,
          ])
        : await this.query<AuditRow>(
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

  /** Calls `listener` soon after another process writes a signal or a cancel request (LISTEN/NOTIFY). */
  onChange(listener: () => void): () => void {
    return this.changes.subscribe(listener);
  }

  /** Tells the processes listening (at commit, if the transaction commits). */
  private async notifyChange(client: Client): Promise<void> {
    await client.query(NOTIFY_CHANGE, [CHANGES_CHANNEL, this.schema ?? ""]);
  }

  /** What triggers remember (see {@link TriggerStore}), in this database's trigger tables. */
  triggers(): TriggerStore {
    this.check();
    this.triggerStore ??= postgresTriggerStore((text, values) => this.query(text, values));
    return this.triggerStore;
  }

  /**
   * Measured job peaks (see {@link PeakStore}), the newest 100 per job. Read from memory, as admission
   * asks while it decides; each new peak is written behind (close waits for the writes).
   */
  peaks(): PeakStore {
    this.check();
    return {
      recordPeak: (pipeline, job, bytes, at) => {
        const key = peakKey(pipeline, job);
        const list = this.peakCache.get(key) ?? [];
        list.unshift(Math.round(bytes));
        if (list.length > KEPT_PEAKS) list.length = KEPT_PEAKS;
        this.peakCache.set(key, list);
        this.peakWrites = this.peakWrites.then(() => this.writePeak(pipeline, job, Math.round(bytes), at));
      },
      recentPeaks: (pipeline, job, limit) =>
        (this.peakCache.get(peakKey(pipeline, job)) ?? []).slice(0, limit),
      measuredJobs: () =>
        [...this.peakCache.entries()]
          .filter(([, list]) => list.length > 0)
          .map(([key]) => {
            const [pipeline, job] = JSON.parse(key) as [string, string];
            return { pipeline, job };
          })
          // By pipeline then job, in code-unit order, as SQLite's ORDER BY sorts them.
          .sort((a, b) => byText(a.pipeline, b.pipeline) || byText(a.job, b.job)),
    };
  }

  private async writePeak(pipeline: string, job: string, bytes: number, at: number): Promise<void> {
    try {
      await this.transaction(async (client) => {
        await client.query("INSERT INTO job_peaks (pipeline, job, at, peak_bytes) VALUES ($1, $2, $3, $4)", [
          pipeline,
          job,
          at,
          bytes,
        ]);
        await client.query(
          `DELETE FROM job_peaks WHERE pipeline = $1 AND job = $2 AND ctid NOT IN
            (SELECT ctid FROM job_peaks WHERE pipeline = $1 AND job = $2 ORDER BY at DESC LIMIT ${KEPT_PEAKS})`,
          [pipeline, job],
        );
      });
    } catch {
      // A lost peak only makes `memory: auto` estimate from fewer samples.
    }
  }

  /** How many runs there are per saga and status: what metrics show at a scrape. */
  async countRuns(): Promise<{ saga: string; status: RunRecord["status"]; count: number }[]> {
    this.check();
    const result = await this.query<{ saga: string; status: RunRecord["status"]; count: number }>(
      "SELECT saga, status, COUNT(*)::int AS count FROM runs GROUP BY status, saga",
    );
    return result.rows;
  }

  /** Snapshots of runs from one statement, one per id in order; a repeated id gets its own copy. */
  private async snapshots(
    client: Client | pg.Pool,
    runIds: readonly string[],
  ): Promise<(RunSnapshot | undefined)[]> {
    if (runIds.length === 0) return [];
    const result = await client.query({ text: SNAPSHOTS, values: [runIds], rowMode: "array" });
    const byId = new Map<string, unknown[]>();
    for (const row of result.rows as unknown[][]) byId.set(row[0] as string, row);
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

  /** Runs `work` in one transaction on one connection: committed if it resolves, rolled back if not. */
  private async transaction<T>(work: (client: Client) => Promise<T>): Promise<T> {
    let client: Client;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.failure(error);
    }
    let broken = false;
    try {
      await client.query("BEGIN");
      const result = await work(client);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      try {
        await client.query("ROLLBACK");
      } catch {
        broken = true;
      }
      throw this.failure(error);
    } finally {
      client.release(broken);
    }
  }

  /** Rows as arrays in column order (the mappers of ../rows.ts read them so). */
  private async arrays(text: string, values: unknown[]): Promise<unknown[][]> {
    try {
      return (await this.pool.query<unknown[]>({ text, values, rowMode: "array" })).rows;
    } catch (error) {
      throw this.failure(error);
    }
  }

  /** One statement on a connection of the pool. */
  private async query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    text: string,
    values?: unknown[],
  ): Promise<pg.QueryResult<R>> {
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * What a failed statement is reported as: the database unreachable (down, restarting, a dropped
   * connection) is a `storage` error saying so (the API answers 503), a full disk a `disk_full` one;
   * anything else as it was thrown.
   */
  private failure(error: unknown): unknown {
    if (error instanceof SlipwayError) return error;
    const full = diskFullError(error, `the database ${this.where}`);
    if (full !== error) return full;
    if (!unreachable(error)) return error;
    return new SlipwayError(
      "storage",
      `the database ${this.where} is unavailable: ${(error as Error).message || (error as { code?: string }).code}`,
      { cause: error },
    );
  }

  private check(): void {
    if (this.closed) throw new SlipwayError("storage", `PostgresStorage(${this.where}) is closed`);
    if (!this.ready)
      throw new SlipwayError("storage", `PostgresStorage(${this.where}): call init() before using it`);
  }
}

interface AuditRow {
  seq: number;
  at: number;
  actor: string;
  method: string;
  route: string;
  path: string;
  run_id: string | null;
  status: number;
  idempotency_key: string | null;
  replay: string | null;
}

const peakKey = (pipeline: string, job: string) => JSON.stringify([pipeline, job]);
const byText = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Socket errors, and PostgreSQL's connection exceptions (08...) and shutdowns (57P01-57P03). */
const UNREACHABLE = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ETIMEDOUT",
  "EPIPE",
  "ENOENT",
]);

/** Whether an error means the database could not be reached, rather than that a statement failed. */
function unreachable(error: unknown): boolean {
  const code = (error as { code?: unknown }).code;
  if (
    typeof code === "string" &&
    (UNREACHABLE.has(code) || code.startsWith("08") || /^57P0[123]$/.test(code))
  )
    return true;
  const message = error instanceof Error ? error.message : "";
  return /Connection terminated|connection error|timeout exceeded when trying to connect/i.test(message);
}

/** The URL without Slipway's own `schema` parameter (the driver would pass it on), and that schema. */
function splitSchema(url: string): { connectionString: string; schema: string | undefined } {
  const match = /[?&]schema=([^&]*)/.exec(url);
  if (!match) return { connectionString: url, schema: undefined };
  const rest = url.replace(/([?&])schema=[^&]*(&?)/, (_, lead: string, tail: string) => (tail ? lead : ""));
  return { connectionString: rest, schema: decodeURIComponent(match[1]!) };
}

/** Factory form of the constructor, for callers that name an export (e.g. the crash conformance test). */
export function openPostgresStorage(options: PostgresStorageOptions): PostgresStorage {
  return new PostgresStorage(options);
}
