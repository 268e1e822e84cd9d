-- Slipway schema, version 4: what triggers remember (events and verdicts, webhook deliveries, poll
-- state, schedules fired, approvals), so that a restart or a second server acts on each event once.

CREATE TABLE trigger_events (
  key TEXT PRIMARY KEY,
  source TEXT NOT NULL,
  kind TEXT NOT NULL,
  event TEXT NOT NULL,
  seen_at INTEGER NOT NULL
);

-- The newest events, of one source or of all.
CREATE INDEX trigger_events_recent ON trigger_events (seen_at);
CREATE INDEX trigger_events_source ON trigger_events (source, seen_at);

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

-- Workspaces not removed yet (few at a time).
CREATE INDEX trigger_verdicts_workspace ON trigger_verdicts (workspace) WHERE workspace IS NOT NULL;

CREATE TABLE trigger_deliveries (
  source TEXT NOT NULL,
  delivery TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (source, delivery)
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

CREATE TABLE trigger_schedules (
  schedule TEXT PRIMARY KEY,
  last_minute INTEGER NOT NULL
);

-- Head commits of forks' pull requests a writer approved (`!approve`): runs of exactly that commit may start.
CREATE TABLE trigger_approvals (
  source TEXT NOT NULL,
  number INTEGER NOT NULL,
  sha TEXT NOT NULL,
  by TEXT NOT NULL,
  at INTEGER NOT NULL,
  PRIMARY KEY (source, number, sha)
);
