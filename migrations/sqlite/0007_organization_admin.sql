-- Organization administration, SQLite flavour: per-organization settings
-- (markup, allowed models, rate limits), soft deletion, API key scopes,
-- invitations, and users as actors of the credential audit log.

-- Percent added to the USD list cost of calls paid with the platform's keys
-- (0..=1000). Not applied in `tokens` or `requests` mode, nor to BYOK fees.
ALTER TABLE organizations ADD COLUMN markup_percent BIGINT NOT NULL DEFAULT 0
    CHECK (markup_percent BETWEEN 0 AND 1000);
-- JSON array of catalog model ids the organization may call; NULL: all.
ALTER TABLE organizations ADD COLUMN allowed_models TEXT;
-- Per-organization rate limits; NULL: the platform default (TOLLGATE_ORG_*).
ALTER TABLE organizations ADD COLUMN rpm_limit BIGINT;
ALTER TABLE organizations ADD COLUMN tpm_limit BIGINT;
ALTER TABLE organizations ADD COLUMN max_concurrency BIGINT;
-- Soft deletion: the row, its ledger and its usage stay; it is hidden from
-- the management API, its keys are revoked and its users cannot sign in.
ALTER TABLE organizations ADD COLUMN deleted_at BIGINT;

-- Comma-separated scopes of the key (`chat`, `embeddings`, `admin`); NULL
-- (keys made before scopes existed): `chat,embeddings`, plus `admin` when
-- the key's `admin` flag is set.
ALTER TABLE api_keys ADD COLUMN scopes TEXT;

-- Invitations to join an organization: the token is shown once, only its
-- SHA-256 is stored; it expires and can be used once.
CREATE TABLE invitations (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    -- Lower-cased and trimmed.
    email           TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('org_admin', 'org_member')),
    token_hash      TEXT NOT NULL UNIQUE,
    expires_at      BIGINT NOT NULL,
    accepted_at     BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX invitations_by_org ON invitations (organization_id, created_at);

-- An org_admin user's credential changes are audited as `user` (actor_id is
-- the user's id), no longer as `api_key`. SQLite cannot change a CHECK
-- constraint: the table is rebuilt with its rows.
CREATE TABLE provider_credential_audit_new (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    credential_id   TEXT NOT NULL,
    provider        TEXT NOT NULL,
    action          TEXT NOT NULL
        CHECK (action IN ('create', 'update', 'activate', 'deactivate', 'delete')),
    -- 'platform_admin', 'api_key' or 'user' (actor_id is the key's or user's id).
    actor_type      TEXT NOT NULL CHECK (actor_type IN ('platform_admin', 'api_key', 'user')),
    actor_id        TEXT,
    credential_name TEXT NOT NULL,
    key_hint        TEXT NOT NULL,
    changes         TEXT,
    created_at      BIGINT NOT NULL
);
INSERT INTO provider_credential_audit_new
    (id, organization_id, credential_id, provider, action, actor_type, actor_id,
     credential_name, key_hint, changes, created_at)
    SELECT id, organization_id, credential_id, provider, action,
           CASE WHEN actor_type = 'api_key' AND actor_id LIKE 'usr%' THEN 'user' ELSE actor_type END,
           actor_id, credential_name, key_hint, changes, created_at
    FROM provider_credential_audit;
DROP TABLE provider_credential_audit;
ALTER TABLE provider_credential_audit_new RENAME TO provider_credential_audit;
CREATE INDEX provider_credential_audit_by_org ON provider_credential_audit (organization_id, id);
