-- Slipway's PostgreSQL schema, version 5: the slots of `concurrency:` keys. A run takes one before its jobs and
-- holds it while it is active; a slot is a row keyed by (key, slot), taken over only from a run that
-- is no longer active, so two active runs never hold one slot whatever the interleaving of workers.

CREATE TABLE concurrency_slots (
  key TEXT NOT NULL,
  slot INTEGER NOT NULL CHECK (slot >= 0),
  run_id TEXT NOT NULL,
  since BIGINT NOT NULL,
  PRIMARY KEY (key, slot)
);
