-- Slipway's PostgreSQL schema, version 1: the tables of the SQLite schema at its version 8, in
-- PostgreSQL's types. JSON values are stored as TEXT, not jsonb, so they read back byte for byte
-- (jsonb reorders keys and drops duplicates); times are epoch milliseconds.

CREATE TABLE runs (
  id TEXT PRIMARY KEY,
  saga TEXT NOT NULL,
  version INTEGER NOT NULL,
  status TEXT NOT NULL,
  input TEXT NOT NULL,
  run_name TEXT,
  owner TEXT,
  revision BIGINT NOT NULL,
  wake_at BIGINT,
  cancel_requested TEXT,
  cause TEXT,
  error TEXT,
  created_at BIGINT NOT NULL,
  updated_at BIGINT NOT NULL,
  ended_at BIGINT,
  parent_run_id TEXT,
  parent_step TEXT
) WITH (fillfactor = 80);
-- Room left on each page (fillfactor) lets an update that changes no indexed column stay on its page
-- without touching any index (a HOT update): most transitions of a run change only its revision and
-- times. The same for steps, which are written again as they run and end.

-- Listing by status and saga (recovery, dashboards), oldest first.
CREATE INDEX runs_status_saga ON runs (status, saga, created_at, id);
-- A page of the newest runs, whatever their status.
CREATE INDEX runs_created ON runs (created_at, id);
-- The wake-up scan: unowned waiting runs by saga, earliest wake first. Partial, so it holds only
-- parked runs; queries repeat the literal WHERE terms to use it.
CREATE INDEX runs_unowned_waiting ON runs (saga, wake_at) WHERE status = 'waiting' AND owner IS NULL;
-- Pending cancel requests are rare: a partial index keeps their scan cheap.
CREATE INDEX runs_cancel_requested ON runs (created_at, id) WHERE cancel_requested IS NOT NULL;
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id) WHERE parent_run_id IS NOT NULL;

CREATE TABLE steps (
  run_id TEXT NOT NULL,
  action TEXT NOT NULL,
  -- The order of first write (SQLite's rowid order), which an upsert keeps.
  ord BIGINT GENERATED ALWAYS AS IDENTITY,
  status TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  output TEXT,
  error TEXT,
  state TEXT,
  undo_attempt INTEGER NOT NULL,
  undo_error TEXT,
  started_at BIGINT,
  ended_at BIGINT,
  updated_at BIGINT NOT NULL,
  PRIMARY KEY (run_id, action)
) WITH (fillfactor = 80);

CREATE TABLE events (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  action TEXT,
  at BIGINT NOT NULL,
  data TEXT,
  PRIMARY KEY (run_id, seq)
);

-- The last signal seq handed out. A counter row rather than a sequence: its update commits or rolls
-- back with the signals, and holding its row lock until commit makes seqs become visible in order (a
-- reader that sees seq 11 can never later find a 10 committed after it).
CREATE TABLE signal_seq (last BIGINT NOT NULL);
INSERT INTO signal_seq VALUES (0);

CREATE TABLE signals (
  seq BIGINT PRIMARY KEY,
  run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at BIGINT NOT NULL,
  consumed_by TEXT
);
CREATE INDEX signals_pending ON signals (run_id, name, seq) WHERE consumed_by IS NULL;

CREATE TABLE executors (
  id TEXT PRIMARY KEY,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at BIGINT NOT NULL,
  heartbeat_at BIGINT NOT NULL
);

CREATE TABLE job_peaks (
  pipeline TEXT NOT NULL,
  job TEXT NOT NULL,
  at BIGINT NOT NULL,
  peak_bytes BIGINT NOT NULL
);
CREATE INDEX job_peaks_recent ON job_peaks (pipeline, job, at);

CREATE TABLE audit (
  seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  at BIGINT NOT NULL,
  actor TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  path TEXT NOT NULL,
  run_id TEXT,
  status INTEGER NOT NULL,
  idempotency_key TEXT,
  replay TEXT
);
CREATE INDEX audit_key ON audit (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE TABLE trigger_events (
  key TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  kind TEXT NOT NULL,
  event TEXT NOT NULL,
  seen_at BIGINT NOT NULL
);
CREATE INDEX trigger_events_recent ON trigger_events (seen_at);
CREATE INDEX trigger_events_source ON trigger_events (source, seen_at);

CREATE TABLE trigger_verdicts (
  key TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  verdict TEXT NOT NULL,
  reason TEXT,
  run_id TEXT,
  workspace TEXT,
  at BIGINT NOT NULL,
  PRIMARY KEY (key, pipeline)
);
CREATE INDEX trigger_verdicts_workspace ON trigger_verdicts (workspace) WHERE workspace IS NOT NULL;

CREATE TABLE trigger_deliveries (
  source TEXT NOT NULL,
  delivery TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (source, delivery)
);

CREATE TABLE trigger_sources (
  source TEXT PRIMARY KEY,
  refs TEXT NOT NULL,
  last_poll_at BIGINT,
  outcome TEXT,
  failures INTEGER NOT NULL,
  next_poll_at BIGINT,
  extra TEXT NOT NULL
);

CREATE TABLE trigger_approvals (
  source TEXT NOT NULL,
  number INTEGER NOT NULL,
  sha TEXT NOT NULL,
  by TEXT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (source, number, sha)
);

CREATE TABLE trigger_schedules (
  schedule TEXT PRIMARY KEY,
  last_minute BIGINT NOT NULL
);

CREATE TABLE trigger_reports (
  key TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  source TEXT NOT NULL,
  run_id TEXT,
  sha TEXT,
  number INTEGER,
  reply TEXT,
  state TEXT,
  done BOOLEAN NOT NULL,
  failures INTEGER NOT NULL,
  error TEXT,
  next_at BIGINT NOT NULL,
  at BIGINT NOT NULL,
  PRIMARY KEY (key, pipeline)
);
CREATE INDEX trigger_reports_open ON trigger_reports (next_at) WHERE NOT done;
CREATE INDEX trigger_reports_recent ON trigger_reports (at);
