-- Slipway's PostgreSQL schema, version 3 (version 2 is left to another change): named locks held in the
-- database, for every worker sharing it. A slot is a row keyed by (lock, slot): two holders of one
-- slot cannot both be written, whatever the interleaving of workers.

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
  since BIGINT NOT NULL,
  PRIMARY KEY (lock, slot)
);

-- A grant holds at most one slot of a lock; release and the sweep of dead owners find theirs.
CREATE UNIQUE INDEX lock_slots_holder ON lock_slots (holder, lock);
CREATE INDEX lock_slots_owner ON lock_slots (owner);

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
  weight DOUBLE PRECISION NOT NULL,
  priority DOUBLE PRECISION NOT NULL,
  since BIGINT NOT NULL,
  PRIMARY KEY (holder, lock)
);

CREATE INDEX lock_waiters_owner ON lock_waiters (owner);
