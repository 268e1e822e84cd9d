/**
 * The SQL of the PostgreSQL backend. A batch of transitions is written set-wise: each kind of row
 * (new runs, run updates, steps, events, consumed signals, signals to other runs) goes in one
 * statement over a JSON array of rows, so a commit costs the same handful of round trips whether it
 * carries one transition or five hundred.
 */
import { RUN_COLUMNS, SIGNAL_COLUMNS, SIGNAL_RUN_COLUMNS, STEP_COLUMNS } from "../rows.js";
import type { RunQuery } from "../types.js";

export const INSERT_RUNS = `INSERT INTO runs (${RUN_COLUMNS})
  SELECT ${RUN_COLUMNS} FROM json_populate_recordset(NULL::runs, $1::json)
  ON CONFLICT (id) DO NOTHING RETURNING id`;

/** Bits of the patch mask `m`, in PATCH_FIELDS order. */
export const PATCH_FIELDS = ["status", "wakeAt", "cause", "error", "endedAt", "cancelRequested"] as const;

/**
 * Each row updates its run only while `owner` owns it (or, with `claim_revision`, while the run is at
 * that revision: an optimistic claim, which makes `owner` the owner), setting the fields of its mask.
 */
export const UPDATE_RUNS = `UPDATE runs r SET
    revision = r.revision + 1,
    updated_at = u.now,
    status = CASE WHEN u.m & 1 <> 0 THEN u.status ELSE r.status END,
    wake_at = CASE WHEN u.m & 2 <> 0 THEN u.wake_at ELSE r.wake_at END,
    cause = CASE WHEN u.m & 4 <> 0 THEN u.cause ELSE r.cause END,
    error = CASE WHEN u.m & 8 <> 0 THEN u.error ELSE r.error END,
    ended_at = CASE WHEN u.m & 16 <> 0 THEN u.ended_at ELSE r.ended_at END,
    cancel_requested = CASE WHEN u.m & 32 <> 0 THEN u.cancel_requested ELSE r.cancel_requested END,
    owner = CASE WHEN u.release THEN NULL WHEN u.claim_revision IS NOT NULL THEN u.owner ELSE r.owner END
  FROM json_to_recordset($1::json) AS u(id text, owner text, claim_revision bigint, release boolean,
    now bigint, m int, status text, wake_at bigint, cause text, error text, ended_at bigint,
    cancel_requested text)
  WHERE r.id = u.id
    AND CASE WHEN u.claim_revision IS NULL THEN r.owner = u.owner ELSE r.revision = u.claim_revision END
  RETURNING r.id`;

/** Step rows of the JSON array `rows` (a parameter), upserted; `where` may keep some runs' only. */
const upsertSteps = (rows: string, where = "") => `INSERT INTO steps (${STEP_COLUMNS})
  SELECT ${STEP_COLUMNS} FROM json_populate_recordset(NULL::steps, ${rows}::json) ${where}
  ON CONFLICT (run_id, action) DO UPDATE SET
    status = excluded.status, attempt = excluded.attempt, failures = excluded.failures,
    output = excluded.output, error = excluded.error, state = excluded.state,
    undo_attempt = excluded.undo_attempt, undo_error = excluded.undo_error,
    started_at = excluded.started_at, ended_at = excluded.ended_at, updated_at = excluded.updated_at`;

const insertEvents = (rows: string, where = "") => `INSERT INTO events (run_id, seq, type, action, at, data)
  SELECT run_id, seq, type, action, at, data FROM json_populate_recordset(NULL::events, ${rows}::json) ${where}`;

const consumeSignals = (rows: string, and = "") => `UPDATE signals s SET consumed_by = c.action
  FROM json_to_recordset(${rows}::json) AS c(seq bigint, action text, run_id text)
  WHERE s.seq = c.seq AND s.run_id = c.run_id AND s.consumed_by IS NULL ${and}`;

export const UPSERT_STEPS = upsertSteps("$1");
export const INSERT_EVENTS = insertEvents("$1");
export const CONSUME_SIGNALS = consumeSignals("$1");

/**
 * Updates of runs with their steps, events and consumed signals ($1..$4) as one statement, so one
 * round trip and its own transaction: a commit costs the writer's event loop one turn rather than
 * one per statement (and BEGIN, COMMIT), which counts when thousands of runs wake at once. Rows
 * are written only for the runs whose update went through (`written`); the ids of those are returned.
 */
export const COMMIT_UPDATES = `WITH written AS (${UPDATE_RUNS}),
  written_steps AS (${upsertSteps("$2", "WHERE run_id IN (SELECT id FROM written)")}),
  written_events AS (${insertEvents("$3", "WHERE run_id IN (SELECT id FROM written)")}),
  consumed AS (${consumeSignals("$4", "AND c.run_id IN (SELECT id FROM written)")})
  SELECT id FROM written`;

/**
 * Signals in the given order (`i`), with seqs from the counter row signal_seq; with `$2`, one to a run
 * that is gone is dropped. The counter's row lock, held until commit, serializes signal writers, so
 * seqs become visible in the order they were handed out.
 */
const SIGNAL_ROWS = `n AS (
    SELECT * FROM json_to_recordset($1::json)
      AS n(i int, run_id text, name text, payload text, created_at bigint)
    WHERE NOT $2::boolean OR EXISTS (SELECT 1 FROM runs WHERE id = n.run_id)
  ), c AS (UPDATE signal_seq SET last = last + (SELECT count(*) FROM n) RETURNING last)`;

const SIGNAL_INSERT = `INSERT INTO signals (seq, run_id, name, payload, created_at)
  SELECT (SELECT last FROM c) - (SELECT count(*) FROM n) + row_number() OVER (ORDER BY n.i),
    n.run_id, n.name, n.payload, n.created_at
  FROM n
  RETURNING seq`;

export const INSERT_SIGNALS = `WITH ${SIGNAL_ROWS}
  ${SIGNAL_INSERT}`;

/**
 * INSERT_SIGNALS and a notice on channel $3 with payload $4 (sent if it commits), as one statement in
 * its own transaction: one round trip for a batch of signals sent (see COMMIT_UPDATES).
 */
export const ADD_SIGNALS = `WITH ${SIGNAL_ROWS},
  added AS (${SIGNAL_INSERT}),
  told AS MATERIALIZED (SELECT pg_notify($3, $4))
  SELECT added.seq FROM added CROSS JOIN told`;

/**
 * Runs with their steps, pending signals and next event seq, in one statement (so from one snapshot
 * of the database); steps and signals as JSON arrays in STEP_COLUMNS and SIGNAL_COLUMNS order.
 */
export const SNAPSHOTS = `SELECT ${RUN_COLUMNS},
    (SELECT COALESCE(json_agg(json_build_array(${STEP_COLUMNS}) ORDER BY s.ord), '[]')
       FROM steps s WHERE s.run_id = r.id) AS steps,
    (SELECT COALESCE(json_agg(json_build_array(${SIGNAL_COLUMNS}) ORDER BY g.seq), '[]')
       FROM signals g WHERE g.run_id = r.id AND g.consumed_by IS NULL) AS signals,
    (SELECT COALESCE(MAX(e.seq), 0) + 1 FROM events e WHERE e.run_id = r.id) AS next_seq
  FROM runs r WHERE r.id = ANY($1::text[])`;

export const CLAIM = `UPDATE runs SET owner = $1, revision = revision + 1, updated_at = $2
  WHERE id = $3 AND (owner IS NULL OR owner = $1 OR owner = ANY($4::text[]))`;

export const GET_RUNS = `SELECT ${RUN_COLUMNS} FROM runs WHERE id = ANY($1::text[])`;

/** The literal status/owner terms match the partial index runs_unowned_waiting. */
export const NEXT_WAKE_AT = `SELECT MIN(wake_at) AS wake FROM runs
  WHERE status = 'waiting' AND owner IS NULL AND saga = ANY($1::text[])`;

export const HISTORY =
  "SELECT run_id, seq, type, action, at, data FROM events WHERE run_id = $1 AND seq > $2::bigint ORDER BY seq";

export const SIGNALS_AFTER = `SELECT ${SIGNAL_COLUMNS} FROM signals WHERE seq > $1 ORDER BY seq LIMIT $2`;

export const SIGNALS_WITH_RUNS_AFTER = `SELECT ${SIGNAL_RUN_COLUMNS}
  FROM signals s LEFT JOIN runs r ON r.id = s.run_id WHERE s.seq > $1 ORDER BY s.seq LIMIT $2`;

/** The highest signal seq committed, deleted ones included. */
export const LAST_SIGNAL_SEQ = "SELECT last AS seq FROM signal_seq";

export const REQUEST_CANCEL = `UPDATE runs SET cancel_requested = $1, updated_at = $2 WHERE id = $3
  RETURNING ${RUN_COLUMNS}`;

export const UPSERT_EXECUTOR = `INSERT INTO executors (id, host, pid, started_at, heartbeat_at, max_runs)
  VALUES ($1, $2, $3, $4, $5, $6)
  ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid,
    started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, max_runs = excluded.max_runs`;

export const INSERT_AUDIT = `INSERT INTO audit (at, actor, method, route, path, run_id, status, idempotency_key, replay)
  SELECT at, actor, method, route, path, run_id, status, idempotency_key, replay
  FROM json_to_recordset($1::json) AS a(i int, at bigint, actor text, method text, route text, path text,
    run_id text, status int, idempotency_key text, replay text)
  ORDER BY a.i
  RETURNING seq`;

/** The SELECT of runs a query asks for, and its parameters. */
export function runQuerySql(query: RunQuery): { text: string; values: unknown[] } {
  const where: string[] = [];
  const values: unknown[] = [];
  const param = (value: unknown) => {
    values.push(value);
    return `$${values.length}`;
  };
  if (query.sagas !== undefined) where.push(`e.saga = ANY(${param(query.sagas)}::text[])`);
  if (query.statuses !== undefined) where.push(`e.status = ANY(${param(query.statuses)}::text[])`);
  if (query.owner === null) where.push("e.owner IS NULL");
  else if (query.owner !== undefined) where.push(`e.owner = ${param(query.owner)}`);
  if (query.wakeAtOrBefore !== undefined) where.push(`e.wake_at <= ${param(query.wakeAtOrBefore)}`);
  if (query.cancelRequested !== undefined)
    where.push(`e.cancel_requested IS ${query.cancelRequested ? "NOT NULL" : "NULL"}`);
  if (query.withPendingSignals !== undefined) {
    // A probe of signals_pending per run the other terms leave (OFFSET 0 keeps it a subplan): as a
    // join, on tables filled faster than autovacuum analyzes them (a burst of runs and signals),
    // the planner rescanned every pending signal for each run (~0.5 s for 2,000 each).
    where.push(
      `${query.withPendingSignals ? "" : "NOT "}EXISTS (SELECT 1 FROM signals s WHERE s.run_id = e.id AND s.consumed_by IS NULL OFFSET 0)`,
    );
  }
  if (query.parent !== undefined) where.push(`e.parent_run_id = ${param(query.parent)}`);
  if (query.text) {
    // A scan of the runs the other terms leave (no index yet: pg_trgm would serve it); the needle
    // lowered as JavaScript lowers it, the columns by lower() in the database's ctype.
    const needle = param(query.text.toLowerCase());
    where.push(
      `(strpos(lower(e.id), ${needle}) > 0 OR strpos(lower(coalesce(e.run_name, '')), ${needle}) > 0 OR strpos(lower(e.saga), ${needle}) > 0)`,
    );
  }
  if (query.before !== undefined) {
    const createdAt = param(query.before.createdAt);
    where.push(`(e.created_at, e.id) < (${createdAt}, ${param(query.before.id)})`);
  }
  let text = `SELECT ${RUN_COLUMNS} FROM runs e`;
  if (where.length > 0) text += ` WHERE ${where.join(" AND ")}`;
  text += query.newestFirst ? " ORDER BY e.created_at DESC, e.id DESC" : " ORDER BY e.created_at, e.id";
  if (query.limit !== undefined) text += ` LIMIT ${param(Math.max(0, query.limit))}`;
  return { text, values };
}
