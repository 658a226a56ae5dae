-- When the connection's last full sync (a pass over everything, which marks what the source
-- no longer has) succeeded: the scheduler runs one again every reconciliation interval.
ALTER TABLE connections ADD COLUMN last_full_sync_at BIGINT;
