-- Slipway schema, version 2: measured peak memory of pipeline jobs, for `memory: auto` and `slipway show`.

CREATE TABLE job_peaks (
  pipeline TEXT NOT NULL,
  job TEXT NOT NULL,
  at INTEGER NOT NULL,
  peak_bytes INTEGER NOT NULL
);

-- The recent peaks of one job, newest first.
CREATE INDEX job_peaks_recent ON job_peaks (pipeline, job, at);
