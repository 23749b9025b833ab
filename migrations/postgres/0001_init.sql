-- Tollgate schema, PostgreSQL flavour. Instants are integer milliseconds since the
-- Unix epoch; money and credits are integers in the organization's unit.

CREATE TABLE organizations (
    id              TEXT PRIMARY KEY,
    name            TEXT NOT NULL,
    billing_mode    TEXT NOT NULL CHECK (billing_mode IN ('usd', 'tokens', 'requests')),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    name            TEXT NOT NULL,
    -- SHA-256 (hex) of the key's random secret part; the key itself is never stored.
    secret_hash     TEXT NOT NULL,
    rpm_limit       BIGINT,
    tpm_limit       BIGINT,
    max_concurrency BIGINT,
    budget_amount   BIGINT,
    budget_period   TEXT CHECK (budget_period IN ('daily', 'weekly', 'monthly', 'total')),
    expires_at      BIGINT,
    revoked_at      BIGINT,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX api_keys_by_org ON api_keys (organization_id, created_at);
CREATE INDEX api_keys_by_update ON api_keys (updated_at);

CREATE TABLE credit_accounts (
    organization_id TEXT PRIMARY KEY REFERENCES organizations(id),
    balance         BIGINT NOT NULL DEFAULT 0,
    -- Sum of the leases: spendable = balance - reserved + overdraft_limit.
    reserved        BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    overdraft_limit BIGINT NOT NULL DEFAULT 0 CHECK (overdraft_limit >= 0),
    updated_at      BIGINT NOT NULL
);

-- Running gateway processes. Each heartbeats; the leases of one that
-- stopped heartbeating are returned by the others (or by the next start).
CREATE TABLE gateway_instances (
    id              TEXT PRIMARY KEY,
    started_at      BIGINT NOT NULL,
    heartbeat_at    BIGINT NOT NULL
);

-- Credit leases: the part of an organization's balance that one gateway
-- instance has set aside, and from which it holds its calls' maximum costs
-- in memory. The sum of an organization's leases is its `reserved`.
CREATE TABLE credit_leases (
    instance_id     TEXT NOT NULL,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (instance_id, organization_id)
);

-- Append-only: every balance change is one row, written in the same
-- transaction as the change.
CREATE TABLE ledger_entries (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    kind            TEXT NOT NULL CHECK (kind IN ('grant', 'usage', 'adjustment')),
    amount          BIGINT NOT NULL,
    balance_after   BIGINT NOT NULL,
    request_id      TEXT,
    reason          TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX ledger_entries_by_org ON ledger_entries (organization_id, id);

CREATE TABLE idempotency_keys (
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    idempotency_key TEXT NOT NULL,
    -- SHA-256 of the request body, to tell a replay from a reuse with another body.
    request_hash    TEXT NOT NULL,
    response        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, idempotency_key)
);

CREATE TABLE usage_records (
    id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id        TEXT NOT NULL UNIQUE,
    organization_id   TEXT NOT NULL REFERENCES organizations(id),
    api_key_id        TEXT,
    model             TEXT NOT NULL,
    provider          TEXT NOT NULL,
    prompt_tokens     BIGINT NOT NULL,
    completion_tokens BIGINT NOT NULL,
    cached_tokens     BIGINT NOT NULL,
    -- What was deducted, in the organization's unit.
    cost              BIGINT NOT NULL,
    -- The call's list price in micro-dollars, whatever the billing mode.
    list_cost_usd_micros BIGINT NOT NULL,
    byok              BOOLEAN NOT NULL,
    stream            BOOLEAN NOT NULL,
    -- 'ok', or 'partial' when a stream ended early (cut or disconnected).
    status            TEXT NOT NULL,
    latency_ms        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);
CREATE INDEX usage_records_by_org ON usage_records (organization_id, created_at);

-- Small facts about this installation, e.g. the master key's passphrase salt
-- and its check value (so a wrong master key is refused at start).
CREATE TABLE system_settings (
    name            TEXT PRIMARY KEY,
    value           TEXT NOT NULL
);
