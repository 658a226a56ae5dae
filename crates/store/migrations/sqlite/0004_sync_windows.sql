-- Incremental syncs: the window a run reads (kept while it resumes), the high-water mark of
-- the last complete run, and the run that last saw each record (to sweep deletions after a
-- complete pass over a source that does not report them).
ALTER TABLE sync_state ADD COLUMN window_since INTEGER;
ALTER TABLE sync_state ADD COLUMN window_until INTEGER;
ALTER TABLE sync_state ADD COLUMN high_water INTEGER;
ALTER TABLE sync_state ADD COLUMN run_id TEXT;
ALTER TABLE sync_state ADD COLUMN full_run INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN seen_run TEXT;
