-- Slipway schema, version 1. JSON values are stored as TEXT; times are epoch milliseconds.

CREATE TABLE executions (
  id TEXT PRIMARY KEY NOT NULL,
  saga TEXT NOT NULL,
  version INTEGER NOT NULL,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  run_name TEXT,
  owner TEXT,
  revision INTEGER NOT NULL,
  wake_at INTEGER,
  cancel_requested TEXT,
  cause TEXT,
  error TEXT,
  created_at INTEGER NOT NULL,
  updated_at INTEGER NOT NULL,
  ended_at INTEGER
);

-- Listing by status and saga (recovery, dashboards), oldest first.
CREATE INDEX executions_status_saga ON executions (status, saga, created_at, id);

-- The wake-up scan: unowned waiting executions by saga, earliest wake first. Partial, so it only holds
-- executions that are actually parked; queries must repeat the literal WHERE terms to use it.
CREATE INDEX executions_unowned_waiting ON executions (saga, wake_at)
  WHERE status = 'waiting' AND owner IS NULL;

-- Pending cancel requests are rare: a partial index keeps the scan for them cheap.
CREATE INDEX executions_cancel_requested ON executions (created_at, id)
  WHERE cancel_requested IS NOT NULL;

-- Executions held by an executor (recovery after that executor died).
CREATE INDEX executions_owner ON executions (owner) WHERE owner IS NOT NULL;

-- Steps and events carry no foreign key: they are only written by a transition that has just
-- checked (or created) their execution, and the per-row parent lookup is a measurable share of a commit.
CREATE TABLE steps (
  execution_id TEXT NOT NULL,
  action TEXT NOT NULL,
  status TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  output TEXT,
  error TEXT,
  state TEXT,
  undo_attempt INTEGER NOT NULL,
  undo_error TEXT,
  started_at INTEGER,
  ended_at INTEGER,
  updated_at INTEGER NOT NULL,
  PRIMARY KEY (execution_id, action)
);

CREATE TABLE events (
  execution_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  action TEXT,
  at INTEGER NOT NULL,
  data TEXT,
  PRIMARY KEY (execution_id, seq)
);

-- AUTOINCREMENT: a seq is never reused, even after the newest signal is deleted.
CREATE TABLE signals (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  execution_id TEXT NOT NULL REFERENCES executions (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  consumed_by TEXT
);

-- Signals by execution and name; consumed ones drop out of the index, which keeps it small and makes
-- "pending signals of this execution, oldest first" an index range scan.
CREATE INDEX signals_pending ON signals (execution_id, name, seq) WHERE consumed_by IS NULL;

CREATE TABLE executors (
  id TEXT PRIMARY KEY NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
);
