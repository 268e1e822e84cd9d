-- Slipway schema, version 8: child runs. A run started by a step of another run names that run and
-- step; its parent's `show` lists it (the partial index holds child runs only).

ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN parent_step TEXT;

CREATE INDEX runs_parent ON runs (parent_run_id, created_at, id) WHERE parent_run_id IS NOT NULL;
