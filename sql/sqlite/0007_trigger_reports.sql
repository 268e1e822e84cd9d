-- Slipway schema, version 7: what a source that reports back to its forge has told it (opt-in,
-- docs/triggers.md "Reporting back"), so that a run's final status is reported once, after a restart
-- too, and a failing forge call is retried with backoff and stays visible.

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

-- What is left to report, soonest first.
CREATE INDEX trigger_reports_open ON trigger_reports (next_at) WHERE done = 0;
CREATE INDEX trigger_reports_recent ON trigger_reports (at);
