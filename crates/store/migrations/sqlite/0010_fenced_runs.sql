-- A job's attempts are its claims (the fencing token of each lease, takeovers after a
-- crash included); only attempts that failed count against its limit.
ALTER TABLE jobs ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;

-- What a run wrote over all its attempts, so the sync that completes it reports the whole
-- run, not only its own last attempt.
ALTER TABLE sync_state ADD COLUMN run_added INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN run_updated INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN run_deleted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN run_unchanged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sync_state ADD COLUMN run_skipped INTEGER NOT NULL DEFAULT 0;

-- The job whose attempt completed the entity's last run: a job taken over or retried goes
-- on with the entities it has not finished, instead of reading the finished ones again.
ALTER TABLE sync_state ADD COLUMN completed_by_job TEXT;

-- The keys a complete pass saw, one row per committed page (a JSON array of record ids),
-- instead of a stamp on every record row: an idle full sync no longer rewrites every
-- record (a new row version each, and its WAL, on PostgreSQL). The sweep is one anti-join.
CREATE TABLE seen_pages (
    connection_id TEXT NOT NULL,
    entity TEXT NOT NULL,
    run_id TEXT NOT NULL,
    ids TEXT NOT NULL
);
CREATE INDEX seen_pages_run ON seen_pages(connection_id, entity, run_id);

-- A pass in progress keeps what it saw so far.
INSERT INTO seen_pages (connection_id, entity, run_id, ids)
    SELECT r.connection_id, r.entity, r.seen_run, json_group_array(r.id)
    FROM records r JOIN sync_state s
      ON s.connection_id = r.connection_id AND s.entity = r.entity AND s.run_id = r.seen_run
    GROUP BY r.connection_id, r.entity, r.seen_run;
ALTER TABLE records DROP COLUMN seen_run;
