-- Per-connection field mappings: each change saves the whole override set as a new version,
-- with who made it and what changed, so any version can be restored. `mapping_version` on the
-- connection row is the current one: every API process reads it with the connection and
-- recompiles its cached mapping when it moved.
ALTER TABLE connections ADD COLUMN mapping_version INTEGER NOT NULL DEFAULT 0;
CREATE TABLE field_mapping_versions (
    connection_id TEXT NOT NULL REFERENCES connections(id),
    version INTEGER NOT NULL,
    org_id TEXT NOT NULL,
    overrides TEXT NOT NULL,
    change TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (connection_id, version)
);
