-- Slipway schema, version 3: the audit log of mutating API requests (who, what, when, the answer).
-- Not tied to executions: pruning a run keeps the record of who acted on it.

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

-- A repeated request is found by its Idempotency-Key.
CREATE INDEX audit_key ON audit (idempotency_key) WHERE idempotency_key IS NOT NULL;
