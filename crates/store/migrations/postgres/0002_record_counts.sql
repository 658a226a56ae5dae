-- Counting a connection's records (total_count on every page) reads only this index, never
-- the records' payloads.
CREATE INDEX records_count ON records(connection_id, entity, remote_was_deleted, modified_at);
