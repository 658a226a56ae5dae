-- The source system's clock as the last sync measured it (from its HTTP `Date` headers):
-- how far it runs ahead of ours in milliseconds (negative: behind), and when that was seen.
-- Stored because the process that measures it (a worker) is not the one that shows it (an
-- API process serving the connection's health). Null until a sync has seen a `Date`.
ALTER TABLE connections ADD COLUMN source_clock_offset_ms BIGINT;
ALTER TABLE connections ADD COLUMN source_clock_measured_at BIGINT;
