-- Slipway schema, version 10: the runs text index (version 9) is filled after the commits that
-- create runs, not by a trigger inside them. The trigger's ~25 µs per run sat on every run creation's
-- commit (12 ms on one that creates 500), delaying each first action. The index rows now carry
-- their run's rowid, so "indexed up to" is the index's highest rowid; a writer indexes the runs
-- past it after its commits, and a search scans the few not indexed yet. Deletes are still followed
-- by the trigger of version 9.

DROP TRIGGER runs_text_insert;

DELETE FROM runs_text;

INSERT INTO runs_text (rowid, id, run_name, saga) SELECT rowid, id, run_name, saga FROM runs;
