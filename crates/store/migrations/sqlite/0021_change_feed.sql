-- The change feed (`GET /v1/changes`): each record carries the number of its latest change
-- (`change_seq`) and of the change that first stored it (`created_seq`). Numbers come from
-- one counter per connection, taken in the transaction that changes the records, so a feed
-- read in (change_seq, entity, id) order sees changes in commit order. No row per change:
-- a record changed twice is found once, at its latest change.
ALTER TABLE records ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE records ADD COLUMN created_seq INTEGER NOT NULL DEFAULT 0;

-- Records stored before this migration are change 0 of their connection, in (entity, id)
-- order: no row is rewritten. The next change of a connection is number 1.
CREATE TABLE change_counters (
    connection_id TEXT PRIMARY KEY REFERENCES connections(id),
    last_seq INTEGER NOT NULL
);

-- The whole connection's feed, and one entity's.
CREATE INDEX records_feed ON records(connection_id, change_seq, entity, id);
CREATE INDEX records_entity_feed ON records(connection_id, entity, change_seq, id);
