-- Slipway schema, version 6: the newest runs first without a sort of every run. `GET /runs?limit=`
-- (and `slipway ls`) read one page by (created_at, id) descending; without this index each page
-- scanned and sorted the whole table, a cost that grew with every run ever kept.

CREATE INDEX runs_created ON runs (created_at, id);
