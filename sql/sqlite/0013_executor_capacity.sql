-- Slipway schema, version 13: each executor's capacity (its `max_runs:`; NULL when it has no limit),
-- written with its heartbeat, so any worker can tell how much room every other one has.

ALTER TABLE executors ADD COLUMN max_runs INTEGER;
