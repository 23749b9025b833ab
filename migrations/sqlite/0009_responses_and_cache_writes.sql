-- OpenAI Responses storage and prompt-cache writes, SQLite flavour.

-- Prompt tokens the provider wrote to its cache (Anthropic's
-- `cache_creation_input_tokens`), part of `prompt_tokens`, priced at the
-- model's cache-write price.
ALTER TABLE usage_records ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;

-- Responses kept for `GET /v1/responses/{id}` and `previous_response_id`,
-- visible only to their organization, dropped after the retention period.
CREATE TABLE stored_responses (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    -- The Responses object as answered (JSON).
    response        TEXT NOT NULL,
    -- The conversation up to and including this answer, as Chat messages
    -- (JSON array): what a follow-up with `previous_response_id` continues.
    messages        TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL
);
CREATE INDEX stored_responses_org ON stored_responses (organization_id, id);
CREATE INDEX stored_responses_expiry ON stored_responses (expires_at);
