-- Generated from sql/sqlite/*.sql by `npx tsx scripts/sqlite-schema.ts --write`; do not edit.

CREATE TABLE audit (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  at INTEGER NOT NULL,
  actor TEXT NOT NULL,
  method TEXT NOT NULL,
  route TEXT NOT NULL,
  path TEXT NOT NULL,
  run_id TEXT,
  status INTEGER NOT NULL,
  idempotency_key TEXT,
  replay TEXT
);

CREATE TABLE concurrency_slots (
  key TEXT NOT NULL,
  slot INTEGER NOT NULL CHECK (slot >= 0),
  run_id TEXT NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (key, slot)
);

CREATE TABLE events (
  run_id TEXT NOT NULL,
  seq INTEGER NOT NULL,
  type TEXT NOT NULL,
  action TEXT,
  at INTEGER NOT NULL,
  data TEXT,
  PRIMARY KEY (run_id, seq)
);

CREATE TABLE executors (
  id TEXT PRIMARY KEY NOT NULL,
  host TEXT NOT NULL,
  pid INTEGER NOT NULL,
  started_at INTEGER NOT NULL,
  heartbeat_at INTEGER NOT NULL
, max_runs INTEGER);

CREATE TABLE job_peaks (
  pipeline TEXT NOT NULL,
  job TEXT NOT NULL,
  at INTEGER NOT NULL,
  peak_bytes INTEGER NOT NULL
);

CREATE TABLE lock_slots (
  lock TEXT NOT NULL,
  slot INTEGER NOT NULL CHECK (slot >= 0),
  holder TEXT NOT NULL,
  run_id TEXT NOT NULL,
  run_name TEXT,
  pipeline TEXT NOT NULL,
  action TEXT NOT NULL,
  job TEXT NOT NULL,
  owner TEXT NOT NULL,
  key TEXT NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (lock, slot)
);

CREATE TABLE lock_waiters (
  lock TEXT NOT NULL,
  holder TEXT NOT NULL,
  run_id TEXT NOT NULL,
  run_name TEXT,
  pipeline TEXT NOT NULL,
  action TEXT NOT NULL,
  job TEXT NOT NULL,
  owner TEXT NOT NULL,
  key TEXT NOT NULL,
  weight REAL NOT NULL,
  priority REAL NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (holder, lock)
);

CREATE TABLE "runs" (
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
, parent_run_id TEXT, parent_step TEXT);

CREATE VIRTUAL TABLE runs_text USING fts5(id, run_name, saga, tokenize = 'trigram case_sensitive 0');

CREATE TABLE 'runs_text_config'(k PRIMARY KEY, v) WITHOUT ROWID;

CREATE TABLE 'runs_text_content'(id INTEGER PRIMARY KEY, c0, c1, c2);

CREATE TABLE 'runs_text_data'(id INTEGER PRIMARY KEY, block BLOB);

CREATE TABLE 'runs_text_docsize'(id INTEGER PRIMARY KEY, sz BLOB);

CREATE TABLE 'runs_text_idx'(segid, term, pgno, PRIMARY KEY(segid, term)) WITHOUT ROWID;

CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL);

CREATE TABLE signals (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id TEXT NOT NULL REFERENCES "runs" (id) ON DELETE CASCADE,
  name TEXT NOT NULL,
  payload TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  consumed_by TEXT
);

CREATE TABLE steps (
  run_id TEXT NOT NULL,
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
  PRIMARY KEY (run_id, action)
);

CREATE TABLE trigger_approvals (
  source TEXT NOT NULL,
  number INTEGER NOT NULL,
  sha TEXT NOT NULL,
  by TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (source, number, sha)
);

CREATE TABLE trigger_deliveries (
  source TEXT NOT NULL,
  delivery TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (source, delivery)
);

CREATE TABLE trigger_events (
  key TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  kind TEXT NOT NULL,
  event TEXT NOT NULL,
  seen_at INTEGER NOT NULL
);

CREATE TABLE trigger_leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at INTEGER NOT NULL
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
  done INTEGER NOT NULL,
  failures INTEGER NOT NULL,
  error TEXT,
  next_at INTEGER NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (key, pipeline)
);

CREATE TABLE trigger_schedules (
  schedule TEXT PRIMARY KEY,
  last_minute INTEGER NOT NULL
);

CREATE TABLE trigger_sources (
  source TEXT PRIMARY KEY,
  refs TEXT NOT NULL,
  last_poll_at INTEGER,
  outcome TEXT,
  failures INTEGER NOT NULL,
  next_poll_at INTEGER,
  extra TEXT NOT NULL
);

CREATE TABLE trigger_verdicts (
  key TEXT NOT NULL,
  pipeline TEXT NOT NULL,
  verdict TEXT NOT NULL,
  reason TEXT,
  run_id TEXT,
  workspace TEXT,
  at INTEGER NOT NULL,
  PRIMARY KEY (key, pipeline)
);

CREATE INDEX audit_key ON audit (idempotency_key) WHERE idempotency_key IS NOT NULL;

CREATE INDEX job_peaks_recent ON job_peaks (pipeline, job, at);

CREATE UNIQUE INDEX lock_slots_holder ON lock_slots (holder, lock);

CREATE INDEX lock_slots_owner ON lock_slots (owner);

CREATE INDEX lock_waiters_owner ON lock_waiters (owner);

CREATE INDEX runs_cancel_requested ON runs (created_at, id)
  WHERE cancel_requested IS NOT NULL;

CREATE INDEX runs_created ON runs (created_at, id);

CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;

CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id) WHERE parent_run_id IS NOT NULL;

CREATE INDEX runs_status_saga ON runs (status, saga, created_at, id);

CREATE INDEX runs_unowned_waiting ON runs (saga, wake_at)
  WHERE status = 'waiting' AND owner IS NULL;

CREATE INDEX signals_pending ON signals (run_id, name, seq) WHERE consumed_by IS NULL;

CREATE INDEX trigger_events_recent ON trigger_events (seen_at);

CREATE INDEX trigger_events_source ON trigger_events (source, seen_at);

CREATE INDEX trigger_reports_open ON trigger_reports (next_at) WHERE done = 0;

CREATE INDEX trigger_reports_recent ON trigger_reports (at);

CREATE INDEX trigger_verdicts_workspace ON trigger_verdicts (workspace) WHERE workspace IS NOT NULL;

CREATE TRIGGER runs_text_delete AFTER DELETE ON runs BEGIN
  DELETE FROM runs_text
  WHERE runs_text MATCH ('id : "' || replace(old.id, '"', '""') || '"') AND id = old.id
    AND length(old.id) >= 3;
  DELETE FROM runs_text WHERE length(old.id) < 3 AND id = old.id;
END;
