-- BYOK, SQLite flavour: organizations' own provider keys (envelope-encrypted),
-- their audit log, and API keys flagged as organization admins.

-- An organization API key flagged admin may manage its own organization's
-- provider credentials (and nothing of any other organization).
ALTER TABLE api_keys ADD COLUMN admin BOOLEAN NOT NULL DEFAULT FALSE;

-- Each organization's data key, wrapped (AES-256-GCM) by the master key of
-- generation `master_key_version` and bound to (organization_id, version).
-- `tollgate keys rotate` adds the rows of the next generation and keeps
-- those of the one before, so gateways still running on the previous master
-- key keep reading; older generations are removed.
CREATE TABLE organization_data_keys (
    organization_id    TEXT NOT NULL REFERENCES organizations(id),
    -- Generation of the data key itself (provider_credentials.key_version).
    version            BIGINT NOT NULL,
    master_key_version BIGINT NOT NULL,
    wrapped_key        BLOB NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (organization_id, version, master_key_version)
);

CREATE TABLE provider_credentials (
    id              TEXT PRIMARY KEY,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    provider        TEXT NOT NULL,
    name            TEXT NOT NULL,
    -- The provider key sealed by the organization's data key: version byte,
    -- random nonce, ciphertext, tag; bound to (organization_id, provider).
    -- NULL once the credential is deleted: the key is destroyed, the row
    -- stays for the audit log and for other replicas to notice the change.
    encrypted_key   BLOB,
    -- Generation of the organization's data key that sealed encrypted_key.
    key_version     BIGINT NOT NULL,
    -- The key's last four characters, the only part ever shown again.
    key_hint        TEXT NOT NULL,
    active          BOOLEAN NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);
-- At most one active credential per organization and provider.
CREATE UNIQUE INDEX provider_credentials_one_active
    ON provider_credentials (organization_id, provider) WHERE active;
CREATE INDEX provider_credentials_by_org ON provider_credentials (organization_id, provider);
-- Replicas poll it to drop changed credentials from their caches.
CREATE INDEX provider_credentials_by_update ON provider_credentials (updated_at);

-- Append-only: who changed which credential, how, and when. Never the key.
CREATE TABLE provider_credential_audit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_id TEXT NOT NULL REFERENCES organizations(id),
    credential_id   TEXT NOT NULL,
    provider        TEXT NOT NULL,
    action          TEXT NOT NULL
        CHECK (action IN ('create', 'update', 'activate', 'deactivate', 'delete')),
    -- 'platform_admin' (TOLLGATE_ADMIN_TOKEN) or 'api_key' (actor_id is its id).
    actor_type      TEXT NOT NULL CHECK (actor_type IN ('platform_admin', 'api_key')),
    actor_id        TEXT,
    -- The credential's name and key hint after the change.
    credential_name TEXT NOT NULL,
    key_hint        TEXT NOT NULL,
    -- For an update: what changed, 'api_key' and/or 'credential_name', comma-separated.
    changes         TEXT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX provider_credential_audit_by_org ON provider_credential_audit (organization_id, id);
