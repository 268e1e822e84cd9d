-- Slipway schema, version 9: the runs list's text filter (`q=`: a run's id, name or pipeline
-- containing the text, in any case) without reading every run. A B-tree index cannot serve
-- "contains" (only "starts with"), so each of the three is indexed by its trigrams: FTS5's trigram
-- tokenizer, case-insensitive, answers a substring of 3 or more characters from the index (shorter
-- ones are matched by scanning, newest first, until a page is full). The text is stored here (not
-- read from `runs` by rowid, which VACUUM may renumber) and joined back by run id.
--
-- The triggers keep it in the transaction that writes the run: a run's id, name and pipeline never
-- change after its insert, so an insert and a delete are all there is to follow.

CREATE VIRTUAL TABLE runs_text USING fts5(id, run_name, saga, tokenize = 'trigram case_sensitive 0');

INSERT INTO runs_text (id, run_name, saga) SELECT id, run_name, saga FROM runs;

CREATE TRIGGER runs_text_insert AFTER INSERT ON runs BEGIN
  INSERT INTO runs_text (id, run_name, saga) VALUES (new.id, new.run_name, new.saga);
END;

-- Found through the index by the id's own trigrams (a phrase in the id column), then by equality;
-- an id shorter than 3 characters has no trigram and is found by a scan.
CREATE TRIGGER runs_text_delete AFTER DELETE ON runs BEGIN
  DELETE FROM runs_text
  WHERE runs_text MATCH ('id : "' || replace(old.id, '"', '""') || '"') AND id = old.id
    AND length(old.id) >= 3;
  DELETE FROM runs_text WHERE length(old.id) < 3 AND id = old.id;
END;
