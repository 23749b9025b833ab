-- The request log: one row per data-plane call and one per provider
-- attempt, written in batches off the answer path. Bodies are kept only
-- for organizations that opted in, and cleared after a retention period
-- (TOLLGATE_REQUEST_LOG_BODY_RETENTION_SECS); rows are deleted after
-- TOLLGATE_REQUEST_LOG_RETENTION_SECS.

-- Whether the organization's request log keeps prompt and completion bodies.
ALTER TABLE organizations ADD COLUMN log_bodies BOOLEAN NOT NULL DEFAULT FALSE;

CREATE TABLE requests (
    -- Time-ordered (UUIDv7): also the list's cursor.
    request_id        TEXT PRIMARY KEY,
    organization_id   TEXT NOT NULL,
    api_key_id        TEXT,
    -- chat, embeddings, messages, …
    operation         TEXT NOT NULL,
    requested_model   TEXT,
    -- The catalog model and provider that answered (NULL when none did).
    model             TEXT,
    provider          TEXT,
    -- The HTTP status answered.
    status            BIGINT NOT NULL,
    error_code        TEXT,
    error_message     TEXT,
    stream            BOOLEAN NOT NULL,
    byok              BOOLEAN NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    -- In the organization's unit.
    cost              BIGINT NOT NULL,
    duration_ms       BIGINT NOT NULL,
    ttft_ms           BIGINT,
    overhead_ms       BIGINT,
    attempt_count     BIGINT NOT NULL,
    trace_id          TEXT,
    request_body      TEXT,
    response_body     TEXT,
    has_body          BOOLEAN NOT NULL,
    -- Unix milliseconds.
    created_at        BIGINT NOT NULL
);
CREATE INDEX requests_by_org ON requests (organization_id, request_id);
CREATE INDEX requests_by_time ON requests (created_at);
CREATE INDEX requests_with_body ON requests (created_at) WHERE has_body;

CREATE TABLE request_attempts (
    request_id  TEXT NOT NULL,
    -- 1 for the first provider called.
    attempt     BIGINT NOT NULL,
    provider    TEXT NOT NULL,
    model       TEXT NOT NULL,
    -- ok or error
    outcome     TEXT NOT NULL,
    http_status BIGINT,
    error       TEXT,
    byok        BOOLEAN NOT NULL,
    duration_ms BIGINT NOT NULL,
    -- Unix milliseconds.
    started_at  BIGINT NOT NULL,
    PRIMARY KEY (request_id, attempt)
);
