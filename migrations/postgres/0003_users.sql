-- Management users: people who sign in with an email and a password and get
-- a short-lived JWT. Instants are integer milliseconds since the Unix epoch.

CREATE TABLE users (
    id              TEXT PRIMARY KEY,
    -- Lower-cased and trimmed.
    email           TEXT NOT NULL UNIQUE,
    -- Argon2id, PHC string format (parameters and salt included).
    password_hash   TEXT NOT NULL,
    role            TEXT NOT NULL CHECK (role IN ('platform_admin', 'org_admin', 'org_member')),
    -- NULL for a platform admin; the organization of an org_admin or org_member.
    organization_id TEXT REFERENCES organizations(id),
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
CREATE INDEX users_by_org ON users (organization_id, created_at);

-- Failed sign-ins per email (known or not), for brute-force protection:
-- past a few failures, sign-ins for that email wait until locked_until.
CREATE TABLE login_failures (
    email           TEXT PRIMARY KEY,
    failures        BIGINT NOT NULL,
    locked_until    BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

-- Organization administration: a suspended organization's calls answer 403
-- (its keys' updated_at is bumped so that every replica's key cache drops
-- them), and the power level `"model": "auto"` uses when a call names none.
ALTER TABLE organizations ADD COLUMN suspended_at BIGINT;
ALTER TABLE organizations ADD COLUMN default_power_level TEXT;
