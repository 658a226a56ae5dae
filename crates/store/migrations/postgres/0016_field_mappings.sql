-- Per-connection field mappings: each change saves the whole override set as a new version,
-- with who made it and what changed, so any version can be restored. `mapping_version` on the
-- connection row is the current one: every API process reads it with the connection and
-- recompiles its cached mapping when it moved.
ALTER TABLE connections ADD COLUMN mapping_version BIGINT NOT NULL DEFAULT 0;
CREATE TABLE field_mapping_versions (
    connection_id TEXT COLLATE "C" NOT NULL REFERENCES connections(id),
    version BIGINT NOT NULL,
    org_id TEXT COLLATE "C" NOT NULL,
    overrides TEXT NOT NULL,
    change TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (connection_id, version)
);
