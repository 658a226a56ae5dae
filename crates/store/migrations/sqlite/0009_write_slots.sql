-- A connection's write slots across processes: a write holds one while it calls the source,
-- until `lease_until` (so a crashed holder's slot frees itself). Syncs leave this many calls
-- of the connection's limit free, so writes and syncs together stay within it.
CREATE TABLE write_slots (
    connection_id TEXT NOT NULL,
    slot INTEGER NOT NULL,
    holder TEXT NOT NULL,
    lease_until INTEGER NOT NULL,
    PRIMARY KEY (connection_id, slot)
);
