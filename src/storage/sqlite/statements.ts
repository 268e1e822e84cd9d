/** The SQL of the SQLite backend: its column lists, the fixed prepared statements, and the SQL built per shape (updates, queries). */
import type Database from "better-sqlite3";
import { RUN_COLUMNS, SIGNAL_COLUMNS, SIGNAL_RUN_COLUMNS, STEP_COLUMNS } from "../rows.js";
import type { RunPatch, RunQuery } from "../types.js";

/** A prepared statement (an interface, so declarations can name it). */
export interface Statement extends Database.Statement<unknown[]> {}

/** Patchable columns, in the bit order of the UPDATE statement cache key. */
export const PATCH_COLUMNS = [
  ["status", "status"],
  ["wakeAt", "wake_at"],
  ["cause", "cause"],
  ["error", "error"],
  ["endedAt", "ended_at"],
  ["cancelRequested", "cancel_requested"],
] as const satisfies readonly (readonly [keyof RunPatch, string])[];
export const RELEASE_BIT = 1 << PATCH_COLUMNS.length;
/** The transition claims the run: revision check instead of ownership check (`Transition.claim`). */
export const CLAIM_BIT = RELEASE_BIT << 1;

/** The fixed statements, prepared once per connection (after the migrations). */
export function prepareStatements(db: Database.Database) {
  const p = (sql: string): Statement => db.prepare(sql);
  /** Rows as arrays in column order: no object with named keys per row (hot reads). */
  const raw = (sql: string): Statement => db.prepare(sql).raw(true);
  return {
    insertRun: p(
      `INSERT INTO runs (${RUN_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO NOTHING`,
    ),
    upsertStep: p(
      `INSERT INTO steps (${STEP_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (run_id, action) DO UPDATE SET
         status = excluded.status, attempt = excluded.attempt, failures = excluded.failures,
         output = excluded.output, error = excluded.error, state = excluded.state,
         undo_attempt = excluded.undo_attempt, undo_error = excluded.undo_error,
         started_at = excluded.started_at, ended_at = excluded.ended_at, updated_at = excluded.updated_at`,
    ),
    insertEvent: p("INSERT INTO events (run_id, seq, type, action, at, data) VALUES (?, ?, ?, ?, ?, ?)"),
    consumeSignal: p(
      "UPDATE signals SET consumed_by = ? WHERE seq = ? AND run_id = ? AND consumed_by IS NULL",
    ),
    claim: p(
      `UPDATE runs SET owner = ?, revision = revision + 1, updated_at = ?
       WHERE id = ? AND (owner IS NULL OR owner = ? OR owner IN (SELECT value FROM json_each(?)))`,
    ),
    getRun: raw(`SELECT ${RUN_COLUMNS} FROM runs WHERE id = ?`),
    // rowid order = order of first write, which upserts keep.
    stepsOf: raw(`SELECT ${STEP_COLUMNS} FROM steps WHERE run_id = ? ORDER BY rowid`),
    pendingSignalsOf: raw(
      `SELECT ${SIGNAL_COLUMNS} FROM signals WHERE run_id = ? AND consumed_by IS NULL ORDER BY seq`,
    ),
    nextEventSeq: p("SELECT COALESCE(MAX(seq), 0) + 1 AS next FROM events WHERE run_id = ?"),
    // The same four reads for a JSON array of ids (loadMany): four statements, whatever the count.
    runsIn: raw(`SELECT ${RUN_COLUMNS} FROM runs WHERE id IN (SELECT value FROM json_each(?))`),
    stepsIn: raw(
      `SELECT ${STEP_COLUMNS} FROM steps WHERE run_id IN (SELECT value FROM json_each(?)) ORDER BY rowid`,
    ),
    pendingSignalsIn: raw(
      `SELECT ${SIGNAL_COLUMNS} FROM signals
       WHERE run_id IN (SELECT value FROM json_each(?)) AND consumed_by IS NULL ORDER BY seq`,
    ),
    nextEventSeqIn: raw(
      `SELECT run_id, MAX(seq) + 1 AS next FROM events
       WHERE run_id IN (SELECT value FROM json_each(?)) GROUP BY run_id`,
    ),
    // The literal status/owner terms match the partial index runs_unowned_waiting.
    nextWakeAt: p(
      `SELECT MIN(wake_at) AS wake FROM runs
       WHERE status = 'waiting' AND owner IS NULL AND saga IN (SELECT value FROM json_each(?))`,
    ),
    history: p("SELECT * FROM events WHERE run_id = ? AND seq > ? ORDER BY seq"),
    addSignal: p("INSERT INTO signals (run_id, name, payload, created_at) VALUES (?, ?, ?, ?)"),
    // A transition's signal to another run (`Transition.notify`): dropped when that run is gone.
    notifySignal: p(
      `INSERT INTO signals (run_id, name, payload, created_at)
       SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM runs WHERE id = ?)`,
    ),
    signalsAfter: p("SELECT * FROM signals WHERE seq > ? ORDER BY seq LIMIT ?"),
    signalsWithRunsAfter: raw(
      `SELECT ${SIGNAL_RUN_COLUMNS} FROM signals s LEFT JOIN runs r ON r.id = s.run_id WHERE s.seq > ? ORDER BY s.seq LIMIT ?`,
    ),
    // sqlite_sequence holds the highest seq AUTOINCREMENT ever handed out, deleted rows included.
    lastSignalSeq: p("SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'signals'), 0) AS seq"),
    requestCancel: p(
      `UPDATE runs SET cancel_requested = ?, updated_at = ? WHERE id = ? RETURNING ${RUN_COLUMNS}`,
    ),
    upsertExecutor: p(
      `INSERT INTO executors (id, host, pid, started_at, heartbeat_at, max_runs) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
         started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, max_runs = excluded.max_runs`,
    ),
    listExecutors: p("SELECT * FROM executors ORDER BY id"),
    removeExecutor: p("DELETE FROM executors WHERE id = ?"),
    addAudit: p(
      `INSERT INTO audit (at, actor, method, route, path, run_id, status, idempotency_key, replay)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ),
    listAudit: p("SELECT * FROM audit WHERE seq < ? ORDER BY seq DESC LIMIT ?"),
    listAuditByKey: p("SELECT * FROM audit WHERE idempotency_key = ? AND seq < ? ORDER BY seq DESC LIMIT ?"),
  };
}

export type Statements = ReturnType<typeof prepareStatements>;

/**
 * `UPDATE ... WHERE id = ? AND owner = ?` setting exactly the patch fields in `mask`; with CLAIM_BIT,
 * `WHERE id = ? AND revision = ?` setting the owner too.
 */
export function updateSql(mask: number): string {
  let sets = "revision = revision + 1, updated_at = ?";
  PATCH_COLUMNS.forEach(([, column], bit) => {
    if (mask & (1 << bit)) sets += `, ${column} = ?`;
  });
  if (mask & RELEASE_BIT) sets += ", owner = NULL";
  else if (mask & CLAIM_BIT) sets += ", owner = ?";
  const where = mask & CLAIM_BIT ? "id = ? AND revision = ?" : "id = ? AND owner = ?";
  return `UPDATE runs SET ${sets} WHERE ${where}`;
}

/** A run's id, name or pipeline contains the needle (given three times), lowered as JavaScript lowers. */
const CONTAINS =
  "(instr(slipway_lower(e.id), ?) > 0 OR instr(slipway_lower(coalesce(e.run_name, '')), ?) > 0 OR instr(slipway_lower(e.saga), ?) > 0)";

/** Indexes the runs created since the text index was last filled (see migration 0010). */
export const INDEX_NEW_RUNS = `INSERT INTO runs_text (rowid, id, run_name, saga)
  SELECT rowid, id, run_name, saga FROM runs WHERE rowid > (SELECT coalesce(max(rowid), 0) FROM runs_text)`;

/** The SELECT of runs a query asks for, and its arguments: one SQL text per filter shape. */
export function runQuerySql(query: RunQuery): { sql: string; args: unknown[] } {
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
      `${query.withPendingSignals ? "" : "NOT "}EXISTS (SELECT 1 FROM signals s WHERE s.run_id = e.id AND s.consumed_by IS NULL)`,
    );
  }
  if (query.parent !== undefined) {
    where.push("e.parent_run_id = ?");
    args.push(query.parent);
  }
  if (query.text) {
    const needle = query.text.toLowerCase();
    if ([...needle].length >= 3) {
      // The trigram index (migrations 0009, 0010): the needle as one FTS5 phrase, a substring in any
      // column; runs created since the index was last filled (past its highest rowid) are scanned.
      where.push(
        `(e.id IN (SELECT id FROM runs_text WHERE runs_text MATCH ?) OR (e.rowid > (SELECT coalesce(max(rowid), 0) FROM runs_text) AND ${CONTAINS}))`,
      );
      args.push(`"${needle.replaceAll('"', '""')}"`, needle, needle, needle);
    } else {
      // Too short for a trigram: scanned newest first (most runs contain one or two given
      // characters, so a page fills fast), lowered as JavaScript lowers (slipway_lower).
      where.push(CONTAINS);
      args.push(needle, needle, needle);
    }
  }
  if (query.before !== undefined) {
    // A row value, so SQLite seeks the (created_at, id) index to the cursor instead of scanning to it.
    where.push("(e.created_at, e.id) < (?, ?)");
    args.push(query.before.createdAt, query.before.id);
  }
  let sql = `SELECT ${RUN_COLUMNS} FROM runs e`;
  if (where.length > 0) sql += ` WHERE ${where.join(" AND ")}`;
  sql += query.newestFirst ? " ORDER BY e.created_at DESC, e.id DESC" : " ORDER BY e.created_at, e.id";
  if (query.limit !== undefined) {
    sql += " LIMIT ?";
    args.push(Math.max(0, query.limit));
  }
  return { sql, args };
}
