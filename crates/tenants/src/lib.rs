//! Organizations (the tenants), their API keys, the management users and
//! invitations to join an organization.
//!
//! An API key looks like `tg-<32 hex id>_<40 alphanumeric secret>`. Only the
//! SHA-256 of the secret is stored; the id finds the row and the hashes are
//! compared in constant time. Authenticated keys are cached in memory, and a
//! poller drops changed keys from the cache so that a revocation takes effect
//! on every replica within a second.

mod keys;
mod members;
mod orgs;
mod users;

pub use keys::{
    ApiKeyChange, ApiKeyInfo, AuthError, Budget, BudgetPeriod, CreatedApiKey, KeyCache, KeyScope,
    NewApiKey, Principal,
};
pub use members::{CreatedInvitation, INVITATION_TTL_SECS, Invitation};
pub use orgs::{MAX_MARKUP_PERCENT, Organization, OrganizationChange};
pub use users::{LoginError, NewUser, Role, User, hash_password, verify_password};

use tollgate_core::Db;

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("organization not found")]
    OrganizationNotFound,
    #[error("api key not found")]
    ApiKeyNotFound,
    /// A revoked key cannot be changed (it is kept only for the record).
    #[error("api key revoked")]
    ApiKeyRevoked,
    #[error("user not found")]
    UserNotFound,
    #[error("invitation not found")]
    InvitationNotFound,
    #[error("{0}")]
    Conflict(&'static str),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Organizations and API keys on one database, with the key cache.
#[derive(Clone)]
pub struct Tenants {
    db: Db,
    cache: KeyCache,
}

impl Tenants {
    pub fn new(db: Db) -> Tenants {
        Tenants {
            cache: KeyCache::default(),
            db,
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn cache(&self) -> &KeyCache {
        &self.cache
    }
}
