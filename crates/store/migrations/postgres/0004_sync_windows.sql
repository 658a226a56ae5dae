-- Incremental syncs: the window a run reads (kept while it resumes), the high-water mark of
-- the last complete run, and the run that last saw each record (to sweep deletions after a
-- complete pass over a source that does not report them).
ALTER TABLE sync_state ADD COLUMN window_since BIGINT;
ALTER TABLE sync_state ADD COLUMN window_until BIGINT;
ALTER TABLE sync_state ADD COLUMN high_water BIGINT;
ALTER TABLE sync_state ADD COLUMN run_id TEXT;
ALTER TABLE sync_state ADD COLUMN full_run BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE records ADD COLUMN seen_run TEXT;
