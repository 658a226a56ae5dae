-- Idempotency keys of POST and PATCH requests: the key, a hash of the request and the answer,
-- per credential and connection, kept 24 hours. A key is claimed (`in_flight`) before the
-- work starts and its answer stored (`done`) in the transaction of the work's effect; a key
-- whose write reached the source without an answer is `unknown` until a retry reconciles it.
CREATE TABLE idempotency_keys (
    credential_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    org_id TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT,
    locked_until INTEGER,
    response_status INTEGER,
    response_body TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (credential_id, connection_id, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Bulk write batches and their operations, processed in the background by a `batch` job.
CREATE TABLE batches (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_size INTEGER NOT NULL,
    delay_ms INTEGER NOT NULL,
    on_error TEXT NOT NULL,
    total INTEGER NOT NULL,
    succeeded INTEGER NOT NULL DEFAULT 0,
    failed INTEGER NOT NULL DEFAULT 0,
    cancelled INTEGER NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    job_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX batches_connection ON batches (org_id, connection_id, id);

CREATE TABLE batch_operations (
    batch_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    target_id TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    record_id TEXT,
    result TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX batch_operations_status ON batch_operations (batch_id, status, idx);
