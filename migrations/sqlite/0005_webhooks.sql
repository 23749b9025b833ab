-- Billing webhooks. Inbound (Stripe, Lago): one row per provider event, so
-- that an event grants at most once however often it is delivered.
-- Outbound (Standard Webhooks): subscriptions, the outbox of deliveries and
-- every attempt. Instants are integer milliseconds since the Unix epoch.

CREATE TABLE inbound_webhook_events (
    -- 'stripe' or 'lago'.
    source          TEXT NOT NULL,
    -- Stripe's event id, or Lago's X-Lago-Unique-Key.
    event_id        TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    organization_id TEXT,
    -- What was granted, in the organization's unit (0: nothing).
    amount          BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (source, event_id)
);

CREATE TABLE webhook_subscriptions (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    url             TEXT NOT NULL,
    -- Comma-separated event names.
    events          TEXT NOT NULL,
    -- The `whsec_` secret, sealed by the organization's data key.
    secret_sealed   TEXT NOT NULL,
    credits_low_threshold BIGINT,
    -- 1 while the balance is below the threshold (credits.low sent), so
    -- that one crossing sends one event.
    low_fired       BIGINT NOT NULL DEFAULT 0,
    -- 1 while the balance is at or below 0 (credits.depleted sent).
    depleted_fired  BIGINT NOT NULL DEFAULT 0,
    -- The last usage record id summarised by usage.batch.
    usage_cursor    BIGINT NOT NULL DEFAULT 0,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_subscriptions_by_org ON webhook_subscriptions (organization_id, created_at);

-- The outbox: one row per event and subscription, written in the same
-- transaction as the change that caused it where possible.
CREATE TABLE webhook_deliveries (
    -- The `webhook-id` header (`msg_…`), the same on every attempt.
    id              TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL REFERENCES webhook_subscriptions(id) ON DELETE CASCADE,
    organization_id TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- 'pending', 'delivered' or 'failed'.
    status          TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    -- A worker that claimed the row holds it until then (one replica delivers).
    lease_until     BIGINT NOT NULL DEFAULT 0,
    -- Suppresses repeats of one fact (a key's budget in one period).
    dedup_key       TEXT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_by_subscription ON webhook_deliveries (subscription_id, created_at);
CREATE UNIQUE INDEX webhook_deliveries_dedup ON webhook_deliveries (subscription_id, dedup_key);

CREATE TABLE webhook_attempts (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id     TEXT NOT NULL REFERENCES webhook_deliveries(id) ON DELETE CASCADE,
    subscription_id TEXT NOT NULL,
    attempt         BIGINT NOT NULL,
    -- The receiver's HTTP status; NULL when no answer came.
    status_code     BIGINT,
    error           TEXT,
    duration_ms     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL
);
CREATE INDEX webhook_attempts_by_subscription ON webhook_attempts (subscription_id, id);
