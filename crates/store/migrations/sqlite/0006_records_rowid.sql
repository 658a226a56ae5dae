-- Records move from a WITHOUT ROWID table to an ordinary one. Record ids are hashes, so a
-- sync inserts at random keys; clustering multi-kilobyte rows on that key made every page
-- write reshuffle large b-tree cells and overflow chains (about 1 ms per record). Rows now
-- append in rowid order, and only the small key index takes the random inserts. The key
-- stays unique, so upserts still conflict on (connection_id, entity, id).
CREATE TABLE records_by_rowid (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    entity TEXT NOT NULL,
    id TEXT NOT NULL,
    remote_id TEXT NOT NULL,
    data TEXT NOT NULL,
    raw TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    remote_created_at INTEGER,
    remote_updated_at INTEGER,
    remote_was_deleted INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    modified_at INTEGER NOT NULL,
    seen_run TEXT
);
INSERT INTO records_by_rowid (connection_id, entity, id, remote_id, data, raw, content_hash, remote_created_at, remote_updated_at, remote_was_deleted, created_at, modified_at, seen_run)
    SELECT connection_id, entity, id, remote_id, data, raw, content_hash, remote_created_at, remote_updated_at, remote_was_deleted, created_at, modified_at, seen_run FROM records;
DROP TABLE records;
ALTER TABLE records_by_rowid RENAME TO records;
CREATE UNIQUE INDEX records_key ON records(connection_id, entity, id);
CREATE UNIQUE INDEX records_remote ON records(connection_id, entity, remote_id);
CREATE INDEX records_modified ON records(connection_id, entity, modified_at);
CREATE INDEX records_count ON records(connection_id, entity, remote_was_deleted, modified_at);
