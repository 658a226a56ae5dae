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
    locked_until BIGINT,
    response_status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (credential_id, connection_id, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- Bulk write batches and their operations, processed in the background by a `batch` job.
CREATE TABLE batches (
    id TEXT COLLATE "C" PRIMARY KEY,
    org_id TEXT NOT NULL,
    connection_id TEXT NOT NULL,
    status TEXT NOT NULL,
    batch_size BIGINT NOT NULL,
    delay_ms BIGINT NOT NULL,
    on_error TEXT NOT NULL,
    total BIGINT NOT NULL,
    succeeded BIGINT NOT NULL DEFAULT 0,
    failed BIGINT NOT NULL DEFAULT 0,
    cancelled BIGINT NOT NULL DEFAULT 0,
    cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
    job_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    finished_at BIGINT
);
CREATE INDEX batches_connection ON batches (org_id, connection_id, id);

CREATE TABLE batch_operations (
    batch_id TEXT NOT NULL,
    idx BIGINT NOT NULL,
    action TEXT NOT NULL,
    entity TEXT NOT NULL,
    target_id TEXT,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    record_id TEXT,
    result TEXT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (batch_id, idx)
);
CREATE INDEX batch_operations_status ON batch_operations (batch_id, status, idx);
