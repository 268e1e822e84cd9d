-- Slipway schema, version 11: leases that make one worker of a cluster do what must happen once (poll
-- a trigger source, fire its schedules), taken over by another when the holder stops renewing.

CREATE TABLE trigger_leases (
  name TEXT PRIMARY KEY,
  owner TEXT NOT NULL,
  expires_at INTEGER NOT NULL
);
