-- Generated from sql/postgres/*.sql by `npx tsx scripts/postgres-schema.ts --write`; do not edit.

CREATE TABLE audit (
  seq bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  at bigint NOT NULL,
  actor text NOT NULL,
  method text NOT NULL,
  route text NOT NULL,
  path text NOT NULL,
  run_id text,
  status integer NOT NULL,
  idempotency_key text,
  replay text,
  CONSTRAINT audit_pkey PRIMARY KEY (seq)
);

CREATE TABLE concurrency_slots (
  key text NOT NULL,
  slot integer NOT NULL,
  run_id text NOT NULL,
  since bigint NOT NULL,
  CONSTRAINT concurrency_slots_pkey PRIMARY KEY (key, slot),
  CONSTRAINT concurrency_slots_slot_check CHECK ((slot >= 0))
);

CREATE TABLE events (
  run_id text NOT NULL,
  seq integer NOT NULL,
  type text NOT NULL,
  action text,
  at bigint NOT NULL,
  data text,
  CONSTRAINT events_pkey PRIMARY KEY (run_id, seq)
);

CREATE TABLE executors (
  id text NOT NULL,
  host text NOT NULL,
  pid integer NOT NULL,
  started_at bigint NOT NULL,
  heartbeat_at bigint NOT NULL,
  max_runs integer,
  CONSTRAINT executors_pkey PRIMARY KEY (id)
);

CREATE TABLE job_peaks (
  pipeline text NOT NULL,
  job text NOT NULL,
  at bigint NOT NULL,
  peak_bytes bigint NOT NULL
);

CREATE TABLE lock_slots (
  lock text NOT NULL,
  slot integer NOT NULL,
  holder text NOT NULL,
  run_id text NOT NULL,
  run_name text,
  pipeline text NOT NULL,
  action text NOT NULL,
  job text NOT NULL,
  owner text NOT NULL,
  key text NOT NULL,
  since bigint NOT NULL,
  CONSTRAINT lock_slots_pkey PRIMARY KEY (lock, slot),
  CONSTRAINT lock_slots_slot_check CHECK ((slot >= 0))
);

CREATE TABLE lock_waiters (
  lock text NOT NULL,
  holder text NOT NULL,
  run_id text NOT NULL,
  run_name text,
  pipeline text NOT NULL,
  action text NOT NULL,
  job text NOT NULL,
  owner text NOT NULL,
  key text NOT NULL,
  weight double precision NOT NULL,
  priority double precision NOT NULL,
  since bigint NOT NULL,
  CONSTRAINT lock_waiters_pkey PRIMARY KEY (holder, lock)
);

CREATE TABLE runs (
  id text NOT NULL,
  saga text NOT NULL,
  version integer NOT NULL,
  status text NOT NULL,
  input text NOT NULL,
  run_name text,
  owner text,
  revision bigint NOT NULL,
  wake_at bigint,
  cancel_requested text,
  cause text,
  error text,
  created_at bigint NOT NULL,
  updated_at bigint NOT NULL,
  ended_at bigint,
  parent_run_id text,
  parent_step text,
  CONSTRAINT runs_pkey PRIMARY KEY (id)
) WITH (fillfactor=80);

CREATE TABLE schema_migrations (
  version integer NOT NULL,
  name text NOT NULL,
  applied_at bigint NOT NULL,
  CONSTRAINT schema_migrations_pkey PRIMARY KEY (version)
);

CREATE TABLE signal_seq (
  last bigint NOT NULL
);

CREATE TABLE signals (
  seq bigint NOT NULL,
  run_id text NOT NULL,
  name text NOT NULL,
  payload text NOT NULL,
  created_at bigint NOT NULL,
  consumed_by text,
  CONSTRAINT signals_pkey PRIMARY KEY (seq),
  CONSTRAINT signals_run_id_fkey FOREIGN KEY (run_id) REFERENCES runs(id) ON DELETE CASCADE
);

CREATE TABLE steps (
  run_id text NOT NULL,
  action text NOT NULL,
  ord bigint GENERATED ALWAYS AS IDENTITY NOT NULL,
  status text NOT NULL,
  attempt integer NOT NULL,
  failures integer NOT NULL,
  output text,
  error text,
  state text,
  undo_attempt integer NOT NULL,
  undo_error text,
  started_at bigint,
  ended_at bigint,
  updated_at bigint NOT NULL,
  CONSTRAINT steps_pkey PRIMARY KEY (run_id, action)
) WITH (fillfactor=80);

CREATE TABLE trigger_approvals (
  source text NOT NULL,
  number integer NOT NULL,
  sha text NOT NULL,
  by text NOT NULL,
  at bigint NOT NULL,
  CONSTRAINT trigger_approvals_pkey PRIMARY KEY (source, number, sha)
);

CREATE TABLE trigger_deliveries (
  source text NOT NULL,
  delivery text NOT NULL,
  at bigint NOT NULL,
  CONSTRAINT trigger_deliveries_pkey PRIMARY KEY (source, delivery)
);

CREATE TABLE trigger_events (
  key text NOT NULL,
  source text NOT NULL,
  kind text NOT NULL,
  event text NOT NULL,
  seen_at bigint NOT NULL,
  CONSTRAINT trigger_events_pkey PRIMARY KEY (key)
);

CREATE TABLE trigger_leases (
  name text NOT NULL,
  owner text NOT NULL,
  expires_at bigint NOT NULL,
  CONSTRAINT trigger_leases_pkey PRIMARY KEY (name)
);

CREATE TABLE trigger_reports (
  key text NOT NULL,
  pipeline text NOT NULL,
  source text NOT NULL,
  run_id text,
  sha text,
  number integer,
  reply text,
  state text,
  done boolean NOT NULL,
  failures integer NOT NULL,
  error text,
  next_at bigint NOT NULL,
  at bigint NOT NULL,
  CONSTRAINT trigger_reports_pkey PRIMARY KEY (key, pipeline)
);

CREATE TABLE trigger_schedules (
  schedule text NOT NULL,
  last_minute bigint NOT NULL,
  CONSTRAINT trigger_schedules_pkey PRIMARY KEY (schedule)
);

CREATE TABLE trigger_sources (
  source text NOT NULL,
  refs text NOT NULL,
  last_poll_at bigint,
  outcome text,
  failures integer NOT NULL,
  next_poll_at bigint,
  extra text NOT NULL,
  CONSTRAINT trigger_sources_pkey PRIMARY KEY (source)
);

CREATE TABLE trigger_verdicts (
  key text NOT NULL,
  pipeline text NOT NULL,
  verdict text NOT NULL,
  reason text,
  run_id text,
  workspace text,
  at bigint NOT NULL,
  CONSTRAINT trigger_verdicts_pkey PRIMARY KEY (key, pipeline)
);

CREATE INDEX audit_key ON audit USING btree (idempotency_key) WHERE (idempotency_key IS NOT NULL);

CREATE UNIQUE INDEX audit_pkey ON audit USING btree (seq);

CREATE UNIQUE INDEX concurrency_slots_pkey ON concurrency_slots USING btree (key, slot);

CREATE UNIQUE INDEX events_pkey ON events USING btree (run_id, seq);

CREATE UNIQUE INDEX executors_pkey ON executors USING btree (id);

CREATE INDEX job_peaks_recent ON job_peaks USING btree (pipeline, job, at);

CREATE UNIQUE INDEX lock_slots_holder ON lock_slots USING btree (holder, lock);

CREATE INDEX lock_slots_owner ON lock_slots USING btree (owner);

CREATE UNIQUE INDEX lock_slots_pkey ON lock_slots USING btree (lock, slot);

CREATE INDEX lock_waiters_owner ON lock_waiters USING btree (owner);

CREATE UNIQUE INDEX lock_waiters_pkey ON lock_waiters USING btree (holder, lock);

CREATE INDEX runs_cancel_requested ON runs USING btree (created_at, id) WHERE (cancel_requested IS NOT NULL);

CREATE INDEX runs_created ON runs USING btree (created_at, id);

CREATE INDEX runs_owner ON runs USING btree (owner) WHERE (owner IS NOT NULL);

CREATE INDEX runs_parent ON runs USING btree (parent_run_id, created_at, id) WHERE (parent_run_id IS NOT NULL);

CREATE UNIQUE INDEX runs_pkey ON runs USING btree (id);

CREATE INDEX runs_status_saga ON runs USING btree (status, saga, created_at, id);

CREATE INDEX runs_unowned_waiting ON runs USING btree (saga, wake_at) WHERE ((status = 'waiting'::text) AND (owner IS NULL));

CREATE UNIQUE INDEX schema_migrations_pkey ON schema_migrations USING btree (version);

CREATE INDEX signals_pending ON signals USING btree (run_id, name, seq) WHERE (consumed_by IS NULL);

CREATE UNIQUE INDEX signals_pkey ON signals USING btree (seq);

CREATE UNIQUE INDEX steps_pkey ON steps USING btree (run_id, action);

CREATE UNIQUE INDEX trigger_approvals_pkey ON trigger_approvals USING btree (source, number, sha);

CREATE UNIQUE INDEX trigger_deliveries_pkey ON trigger_deliveries USING btree (source, delivery);

CREATE UNIQUE INDEX trigger_events_pkey ON trigger_events USING btree (key);

CREATE INDEX trigger_events_recent ON trigger_events USING btree (seen_at);

CREATE INDEX trigger_events_source ON trigger_events USING btree (source, seen_at);

CREATE UNIQUE INDEX trigger_leases_pkey ON trigger_leases USING btree (name);

CREATE INDEX trigger_reports_open ON trigger_reports USING btree (next_at) WHERE (NOT done);

CREATE UNIQUE INDEX trigger_reports_pkey ON trigger_reports USING btree (key, pipeline);

CREATE INDEX trigger_reports_recent ON trigger_reports USING btree (at);

CREATE UNIQUE INDEX trigger_schedules_pkey ON trigger_schedules USING btree (schedule);

CREATE UNIQUE INDEX trigger_sources_pkey ON trigger_sources USING btree (source);

CREATE UNIQUE INDEX trigger_verdicts_pkey ON trigger_verdicts USING btree (key, pipeline);

CREATE INDEX trigger_verdicts_workspace ON trigger_verdicts USING btree (workspace) WHERE (workspace IS NOT NULL);
