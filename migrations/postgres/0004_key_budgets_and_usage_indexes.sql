-- Per-API-key budgets, and indexes for usage analytics.

-- What one key spent (and gateway instances have leased of its budget) in
-- one budget period. `period_start` is the period's first instant (Unix ms,
-- UTC; 0 for a `total` budget), so a new period starts from a new, empty row.
-- A lease succeeds only while spent + reserved + lease <= the key's budget.
CREATE TABLE api_key_budget_periods (
    api_key_id      TEXT NOT NULL REFERENCES api_keys(id),
    period_start    BIGINT NOT NULL,
    spent           BIGINT NOT NULL DEFAULT 0 CHECK (spent >= 0),
    reserved        BIGINT NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (api_key_id, period_start)
);

-- Budget leases: the part of a key's budget for one period that one gateway
-- instance has set aside, like `credit_leases`. The sum over instances is
-- the period's `reserved`; a dead instance's leases are returned by the
-- others (or by the next start on SQLite).
CREATE TABLE api_key_budget_leases (
    instance_id     TEXT NOT NULL,
    api_key_id      TEXT NOT NULL,
    period_start    BIGINT NOT NULL,
    amount          BIGINT NOT NULL CHECK (amount >= 0),
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (instance_id, api_key_id, period_start)
);

-- Usage analytics: a time range per organization (usage_records_by_org),
-- newest-first pages, and the filters.
CREATE INDEX usage_records_by_org_id ON usage_records (organization_id, id);
CREATE INDEX usage_records_by_org_key ON usage_records (organization_id, api_key_id, created_at);
CREATE INDEX usage_records_by_org_model ON usage_records (organization_id, model, created_at);
CREATE INDEX usage_records_by_org_provider ON usage_records (organization_id, provider, created_at);
