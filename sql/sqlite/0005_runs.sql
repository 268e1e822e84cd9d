-- Slipway schema, version 5: one name for one thing. What the engine called an execution is a run,
-- as everywhere else: the table, its id column in the others, its indexes and the lifecycle event types.
-- (ALTER TABLE ... RENAME also rewrites the foreign key in signals and the columns in each index.)

ALTER TABLE executions RENAME TO runs;
ALTER TABLE steps RENAME COLUMN execution_id TO run_id;
ALTER TABLE events RENAME COLUMN execution_id TO run_id;
ALTER TABLE signals RENAME COLUMN execution_id TO run_id;

DROP INDEX executions_status_saga;
CREATE INDEX runs_status_saga ON runs (status, saga, created_at, id);

-- The wake-up scan: unowned waiting runs by saga, earliest wake first. Partial, so it only holds runs
-- that are actually parked; queries must repeat the literal WHERE terms to use it.
DROP INDEX executions_unowned_waiting;
CREATE INDEX runs_unowned_waiting ON runs (saga, wake_at)
  WHERE status = 'waiting' AND owner IS NULL;

DROP INDEX executions_cancel_requested;
CREATE INDEX runs_cancel_requested ON runs (created_at, id)
  WHERE cancel_requested IS NOT NULL;

DROP INDEX executions_owner;
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;

-- 'execution:started' -> 'run:started' ('execution:' is 10 characters).
UPDATE events SET type = 'run:' || substr(type, 11) WHERE type LIKE 'execution:%';
