//! API keys: creation, listing, change, revocation and authentication.

use crate::{TenantError, Tenants};
use rand::Rng;
use rand::distr::Alphanumeric;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::any::AnyRow;
use std::sync::Arc;
use std::time::Duration;
use subtle::ConstantTimeEq;
pub use tollgate_core::BudgetPeriod;
use tollgate_core::bump_updated_at;
use tollgate_core::changes::ChangePoll;
use tollgate_core::load_once::LoadOnce;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::{BillingMode, time};

/// Every replica polls each second: a database outage is logged once, then
/// as a periodic summary.
static POLL_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "polling api key changes failed: revocations reach this replica when the database is back",
);

const KEY_PREFIX: &str = "tg-";
const ID_HEX_LEN: usize = 32;
const SECRET_LEN: usize = 40;

/// What a key may call. A key without `chat` is refused (403) on
/// `/v1/chat/completions` and `/v1/messages`, without `embeddings` on
/// `/v1/embeddings`; `admin` is the organization admin key of before scopes
/// (the `admin` flag): it may manage its organization's provider credentials.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyScope {
    Chat,
    Embeddings,
    Admin,
}

impl KeyScope {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyScope::Chat => "chat",
            KeyScope::Embeddings => "embeddings",
            KeyScope::Admin => "admin",
        }
    }

    fn parse(s: &str) -> Option<KeyScope> {
        match s {
            "chat" => Some(KeyScope::Chat),
            "embeddings" => Some(KeyScope::Embeddings),
            "admin" => Some(KeyScope::Admin),
            _ => None,
        }
    }

    /// The scopes of a key created without any: `chat` and `embeddings`,
    /// plus `admin` for a key flagged admin.
    pub fn defaults(admin: bool) -> Vec<KeyScope> {
        let mut scopes = vec![KeyScope::Chat, KeyScope::Embeddings];
        if admin {
            scopes.push(KeyScope::Admin);
        }
        scopes
    }
}

/// The scopes a new key gets: those asked for (or the defaults), plus
/// `admin` when the `admin` flag is set, each once; at least one.
fn resolve_scopes(asked: Option<Vec<KeyScope>>, admin: bool) -> Result<Vec<KeyScope>, TenantError> {
    let mut scopes = Vec::new();
    let extra = admin.then_some(KeyScope::Admin);
    for scope in asked
        .unwrap_or_else(|| KeyScope::defaults(admin))
        .into_iter()
        .chain(extra)
    {
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(TenantError::Invalid {
            field: "scopes",
            message: "must name at least one of chat, embeddings, admin".into(),
        });
    }
    Ok(scopes)
}

/// The scopes as stored: comma-separated.
fn scopes_column(scopes: &[KeyScope]) -> String {
    scopes
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

/// The stored scopes (comma-separated), or the defaults for a key made
/// before scopes existed (`NULL`).
fn scopes_from_column(stored: Option<&str>, admin: bool) -> Vec<KeyScope> {
    match stored {
        Some(list) => list.split(',').filter_map(KeyScope::parse).collect(),
        None => KeyScope::defaults(admin),
    }
}

/// A spending cap on one key, in the organization's unit.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub amount: i64,
    pub period: BudgetPeriod,
}

/// What an admin asks for when creating a key.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    pub name: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_concurrency: Option<i64>,
    pub budget: Option<Budget>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// An organization admin key: it may also manage its own organization's
    /// provider credentials. The same as the `admin` scope.
    pub admin: bool,
    /// `None`: [`KeyScope::defaults`]. `admin` is added when the flag is set.
    pub scopes: Option<Vec<KeyScope>>,
}

/// A key as listed: everything but the secret.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKeyInfo {
    pub id: String,
    pub organization_id: String,
    pub name: String,
    /// The key's first characters, enough to recognise it (`tg-0192f0c1…`).
    pub key_prefix: String,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_concurrency: Option<i64>,
    /// Not serialized: the management API answers it with what the key
    /// spent of it in the current period, which billing knows.
    #[serde(skip)]
    pub budget: Option<Budget>,
    /// Unix seconds.
    pub expires_at: Option<i64>,
    /// Whether this is an organization admin key (it has the `admin` scope).
    pub admin: bool,
    /// What it may call.
    pub scopes: Vec<KeyScope>,
    /// Unix seconds.
    pub revoked_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A freshly created key: the only time the full key exists outside the caller.
pub struct CreatedApiKey {
    pub info: ApiKeyInfo,
    pub key: SecretString,
}

/// An authenticated caller, as the request hot path needs it.
#[derive(Debug, Clone)]
pub struct Principal {
    pub key_id: String,
    pub organization_id: String,
    pub billing_mode: BillingMode,
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_concurrency: Option<i64>,
    pub budget: Option<Budget>,
    /// What the key may call; `admin` is the organization admin key of
    /// before scopes (see [`NewApiKey::admin`]).
    pub scopes: Vec<KeyScope>,
    /// The organization's power level for `"model": "auto"` calls that name
    /// none (`None`: `balanced`).
    pub default_power_level: Option<tollgate_core::PowerLevel>,
    /// The organization's settings, cached with the key (a change to the
    /// organization bumps its keys, so every replica reloads them).
    pub markup_percent: u32,
    /// `None`: every catalog model.
    pub allowed_models: Option<Arc<[String]>>,
    /// The organization's own limits (`None`: the platform default).
    pub org_rpm_limit: Option<i64>,
    pub org_tpm_limit: Option<i64>,
    pub org_max_concurrency: Option<i64>,
    /// Whether the organization's request log keeps bodies.
    pub log_bodies: bool,
}

impl Principal {
    pub fn has_scope(&self, scope: KeyScope) -> bool {
        self.scopes.contains(&scope)
    }

    /// Whether the organization may call this catalog model.
    pub fn may_use_model(&self, model_id: &str) -> bool {
        self.allowed_models
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|m| m == model_id))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("invalid api key")]
    Invalid,
    #[error("api key revoked")]
    Revoked,
    #[error("api key expired")]
    Expired,
    #[error("organization suspended")]
    Suspended,
    /// Shared by the requests that waited for the same read of the key.
    #[error(transparent)]
    Db(Arc<sqlx::Error>),
}

impl From<Arc<sqlx::Error>> for AuthError {
    fn from(e: Arc<sqlx::Error>) -> Self {
        AuthError::Db(e)
    }
}

struct CachedKey {
    secret_hash: [u8; 32],
    revoked: bool,
    /// The organization is suspended.
    suspended: bool,
    /// Unix milliseconds.
    expires_at: Option<i64>,
    principal: Arc<Principal>,
}

/// Keys authenticated recently, by key id. Entries are dropped when the key
/// changes (locally at once, on other replicas by [`Tenants::watch_key_changes`]).
/// A key missed by many requests at once is read once for all of them.
#[derive(Clone, Default)]
pub struct KeyCache {
    entries: Arc<LoadOnce<Arc<CachedKey>>>,
}

impl KeyCache {
    pub(crate) fn remove(&self, id: &str) {
        self.entries.remove(id);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys read from the database since the start (the cache's misses).
    pub fn loads(&self) -> u64 {
        self.entries.loads()
    }
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Splits `tg-<hex id>_<secret>` into the key id and the secret.
fn parse_key(presented: &str) -> Option<(String, &str)> {
    let rest = presented.strip_prefix(KEY_PREFIX)?;
    if rest.len() != ID_HEX_LEN + 1 + SECRET_LEN || !rest.is_char_boundary(ID_HEX_LEN) {
        return None;
    }
    let (hex_id, tail) = rest.split_at(ID_HEX_LEN);
    let secret = tail.strip_prefix('_')?;
    if !hex_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((["key_", hex_id].concat(), secret))
}

// `admin` is read as an integer: sqlx's Any driver cannot decode SQLite booleans.
const KEY_COLUMNS: &str = "k.id, k.organization_id, k.name, k.secret_hash, k.rpm_limit, \
     k.tpm_limit, k.max_concurrency, k.budget_amount, k.budget_period, k.expires_at, \
     CAST(CASE WHEN k.admin THEN 1 ELSE 0 END AS BIGINT) AS admin, k.scopes, k.revoked_at, k.created_at";

fn info_from_row(row: &AnyRow) -> Result<ApiKeyInfo, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let budget_amount: Option<i64> = row.try_get("budget_amount")?;
    let budget_period: Option<String> = row.try_get("budget_period")?;
    let budget = match (
        budget_amount,
        budget_period.as_deref().and_then(BudgetPeriod::parse),
    ) {
        (Some(amount), Some(period)) => Some(Budget { amount, period }),
        _ => None,
    };
    let hex_id = id.strip_prefix("key_").unwrap_or(&id);
    let admin = row.try_get::<i64, _>("admin")? != 0;
    let scopes: Option<String> = row.try_get("scopes")?;
    Ok(ApiKeyInfo {
        key_prefix: format!("{KEY_PREFIX}{}…", &hex_id[..hex_id.len().min(8)]),
        organization_id: row.try_get("organization_id")?,
        name: row.try_get("name")?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_concurrency: row.try_get("max_concurrency")?,
        budget,
        expires_at: row
            .try_get::<Option<i64>, _>("expires_at")?
            .map(|ms| ms / 1000),
        admin,
        scopes: scopes_from_column(scopes.as_deref(), admin),
        revoked_at: row
            .try_get::<Option<i64>, _>("revoked_at")?
            .map(|ms| ms / 1000),
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
        id,
    })
}

fn positive(field: &'static str, v: Option<i64>) -> Result<(), TenantError> {
    match v {
        Some(n) if n <= 0 => Err(TenantError::Invalid {
            field,
            message: "must be a positive integer".into(),
        }),
        _ => Ok(()),
    }
}

/// A key's name, trimmed: 1 to 200 characters, without NUL.
fn valid_name(name: &str) -> Result<&str, TenantError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
        return Err(TenantError::Invalid {
            field: "name",
            message: "must be 1 to 200 characters, without NUL".into(),
        });
    }
    Ok(name)
}

/// The limits and budget a key is created or changed with: each positive.
fn valid_limits(
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    max_concurrency: Option<i64>,
    budget: Option<Budget>,
) -> Result<(), TenantError> {
    positive("rpm_limit", rpm_limit)?;
    positive("tpm_limit", tpm_limit)?;
    positive("max_concurrency", max_concurrency)?;
    positive("budget.amount", budget.map(|b| b.amount))
}

/// Whether an expiry (unix seconds) is in the future, as a new key's must be.
fn valid_future_expiry(expires_at: i64, now_ms: i64) -> Result<(), TenantError> {
    if expires_at.saturating_mul(1000) <= now_ms {
        return Err(TenantError::Invalid {
            field: "expires_at",
            message: "must be in the future (unix seconds)".into(),
        });
    }
    Ok(())
}

/// A change to a key; `None` leaves a field as it is, `Some(None)` removes
/// the limit, budget or expiry.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyChange {
    pub name: Option<String>,
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub max_concurrency: Option<Option<i64>>,
    pub budget: Option<Option<Budget>>,
    /// Unix seconds. Unlike at creation, a past instant is accepted: it
    /// expires the key at once (401 `expired`, as for a key that ran out).
    pub expires_at: Option<Option<i64>>,
    /// The key's new scopes, in place of the old (at least one); the
    /// `admin` flag follows the `admin` scope.
    pub scopes: Option<Vec<KeyScope>>,
}

impl Tenants {
    /// Creates a key for an organization; the returned secret is never stored.
    pub async fn create_api_key(
        &self,
        organization_id: &str,
        new: NewApiKey,
    ) -> Result<CreatedApiKey, TenantError> {
        let name = valid_name(&new.name)?;
        valid_limits(
            new.rpm_limit,
            new.tpm_limit,
            new.max_concurrency,
            new.budget,
        )?;
        let now = time::now_millis();
        if let Some(exp) = new.expires_at {
            valid_future_expiry(exp, now)?;
        }
        let scopes = resolve_scopes(new.scopes, new.admin)?;
        let admin = scopes.contains(&KeyScope::Admin);
        let scopes_column = scopes_column(&scopes);
        // Fails with OrganizationNotFound before anything is written.
        self.organization(organization_id).await?;

        let hex_id = uuid_hex();
        let secret: String = rand::rng()
            .sample_iter(&Alphanumeric)
            .take(SECRET_LEN)
            .map(char::from)
            .collect();
        let id = format!("key_{hex_id}");
        sqlx::query(
            "INSERT INTO api_keys (id, organization_id, name, secret_hash, rpm_limit, tpm_limit, \
             max_concurrency, budget_amount, budget_period, expires_at, admin, scopes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(&id)
        .bind(organization_id)
        .bind(name)
        .bind(hex::encode(hash_secret(&secret)))
        .bind(new.rpm_limit)
        .bind(new.tpm_limit)
        .bind(new.max_concurrency)
        .bind(new.budget.map(|b| b.amount))
        .bind(new.budget.map(|b| b.period.as_str()))
        .bind(new.expires_at.map(|s| s.saturating_mul(1000)))
        .bind(admin)
        .bind(&scopes_column)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        let info = ApiKeyInfo {
            key_prefix: format!("{KEY_PREFIX}{}…", &hex_id[..8]),
            organization_id: organization_id.to_owned(),
            name: name.to_owned(),
            rpm_limit: new.rpm_limit,
            tpm_limit: new.tpm_limit,
            max_concurrency: new.max_concurrency,
            budget: new.budget,
            expires_at: new.expires_at,
            admin,
            scopes,
            revoked_at: None,
            created_at: now / 1000,
            id,
        };
        Ok(CreatedApiKey {
            info,
            key: SecretString::from(format!("{KEY_PREFIX}{hex_id}_{secret}")),
        })
    }

    /// The organization's keys, newest first, without secrets: up to
    /// `limit`, only those after the key `before` when given.
    pub async fn list_api_keys(
        &self,
        organization_id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<ApiKeyInfo>, TenantError> {
        // Key ids are random (they must not tell when a key was made), so
        // the order is by creation time, and `before` (a key id) stands for
        // that key's place in it.
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.organization_id = $1 \
             AND ($2 IS NULL OR EXISTS (SELECT 1 FROM api_keys b WHERE b.id = $2 \
               AND b.organization_id = k.organization_id \
               AND (k.created_at < b.created_at OR (k.created_at = b.created_at AND k.id < b.id)))) \
             ORDER BY k.created_at DESC, k.id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql)
            .bind(organization_id)
            .bind(before)
            .bind(limit)
            .fetch_all(self.db.pool())
            .await?;
        rows.iter()
            .map(|r| info_from_row(r).map_err(Into::into))
            .collect()
    }

    /// Revokes a key of this organization. Revoking twice is not an error.
    pub async fn revoke_api_key(
        &self,
        organization_id: &str,
        key_id: &str,
    ) -> Result<(), TenantError> {
        // A deleted organization is gone for every path, this one too (its
        // keys were revoked when it was deleted).
        self.organization(organization_id).await?;
        let now = time::now_millis();
        let done = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1), ",
            bump_updated_at!("$1"),
            " WHERE id = $2 AND organization_id = $3"
        ))
        .bind(now)
        .bind(key_id)
        .bind(organization_id)
        .execute(self.db.pool())
        .await?;
        self.cache.remove(key_id);
        if done.rows_affected() == 0 {
            return Err(TenantError::ApiKeyNotFound);
        }
        Ok(())
    }

    /// One key of this organization, without its secret.
    pub async fn api_key(
        &self,
        organization_id: &str,
        key_id: &str,
    ) -> Result<ApiKeyInfo, TenantError> {
        let sql = format!(
            "SELECT {KEY_COLUMNS} FROM api_keys k WHERE k.id = $1 AND k.organization_id = $2"
        );
        let row = sqlx::query(&sql)
            .bind(key_id)
            .bind(organization_id)
            .fetch_optional(self.db.pool())
            .await?
            .ok_or(TenantError::ApiKeyNotFound)?;
        Ok(info_from_row(&row)?)
    }

    /// Changes a key of this organization: its name, limits, budget or
    /// expiry, validated as at creation (but an expiry may be in the past:
    /// it expires the key). The change reaches this replica's calls at
    /// once and the others' within their poll (`updated_at` is bumped, as a
    /// revocation does). A revoked key cannot be changed:
    /// [`TenantError::ApiKeyRevoked`]; nothing changes on any error.
    pub async fn update_api_key(
        &self,
        organization_id: &str,
        key_id: &str,
        change: ApiKeyChange,
    ) -> Result<ApiKeyInfo, TenantError> {
        let name = change.name.as_deref().map(valid_name).transpose()?;
        let scopes = change
            .scopes
            .map(|asked| resolve_scopes(Some(asked), false))
            .transpose()?;
        valid_limits(
            change.rpm_limit.flatten(),
            change.tpm_limit.flatten(),
            change.max_concurrency.flatten(),
            change.budget.flatten(),
        )?;
        if change.expires_at.flatten().is_some_and(|exp| exp < 0) {
            return Err(TenantError::Invalid {
                field: "expires_at",
                message: "must be a non-negative unix time in seconds".into(),
            });
        }
        // A deleted organization is gone for every path, this one too.
        self.organization(organization_id).await?;
        let now = time::now_millis();
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(concat!(
            "UPDATE api_keys SET ",
            bump_updated_at!("$1"),
            " WHERE id = $2 AND organization_id = $3 AND revoked_at IS NULL"
        ))
        .bind(now)
        .bind(key_id)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            // Unknown, another organization's (hidden as unknown) or revoked.
            let key = self.api_key(organization_id, key_id).await?;
            return Err(if key.revoked_at.is_some() {
                TenantError::ApiKeyRevoked
            } else {
                TenantError::ApiKeyNotFound
            });
        }
        // Static SQL per column: no column name is ever formatted in.
        if let Some(name) = name {
            sqlx::query("UPDATE api_keys SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        let limits = [
            (
                "UPDATE api_keys SET rpm_limit = $1 WHERE id = $2",
                change.rpm_limit,
            ),
            (
                "UPDATE api_keys SET tpm_limit = $1 WHERE id = $2",
                change.tpm_limit,
            ),
            (
                "UPDATE api_keys SET max_concurrency = $1 WHERE id = $2",
                change.max_concurrency,
            ),
            (
                "UPDATE api_keys SET expires_at = $1 WHERE id = $2",
                change
                    .expires_at
                    .map(|exp| exp.map(|s| s.saturating_mul(1000))),
            ),
        ];
        for (sql, value) in limits {
            if let Some(value) = value {
                sqlx::query(sql)
                    .bind(value)
                    .bind(key_id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        if let Some(budget) = change.budget {
            sqlx::query("UPDATE api_keys SET budget_amount = $1, budget_period = $2 WHERE id = $3")
                .bind(budget.map(|b| b.amount))
                .bind(budget.map(|b| b.period.as_str()))
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(scopes) = scopes {
            sqlx::query("UPDATE api_keys SET scopes = $1, admin = $2 WHERE id = $3")
                .bind(scopes_column(&scopes))
                .bind(scopes.contains(&KeyScope::Admin))
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.cache.remove(key_id);
        self.api_key(organization_id, key_id).await
    }

    /// Checks a presented key. Cached keys cost no database round trip.
    pub async fn authenticate(&self, presented: &str) -> Result<Arc<Principal>, AuthError> {
        let (id, secret) = parse_key(presented.trim()).ok_or(AuthError::Invalid)?;
        let entry = self
            .cache
            .entries
            .get_or_load(&id, || {
                let (tenants, id) = (self.clone(), id.clone());
                async move { tenants.load_key(&id).await }
            })
            .await?
            .ok_or(AuthError::Invalid)?;
        let presented_hash = hash_secret(secret);
        if !bool::from(presented_hash.ct_eq(&entry.secret_hash)) {
            return Err(AuthError::Invalid);
        }
        if entry.revoked {
            return Err(AuthError::Revoked);
        }
        if entry
            .expires_at
            .is_some_and(|exp| exp <= time::now_millis())
        {
            return Err(AuthError::Expired);
        }
        if entry.suspended {
            return Err(AuthError::Suspended);
        }
        Ok(entry.principal.clone())
    }

    async fn load_key(&self, id: &str) -> Result<Option<Arc<CachedKey>>, sqlx::Error> {
        let sql = format!(
            "SELECT {KEY_COLUMNS}, o.billing_mode, o.default_power_level, \
             CAST(CASE WHEN o.suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS org_suspended, \
             CAST(CASE WHEN o.deleted_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS org_deleted, \
             o.markup_percent, o.allowed_models, o.rpm_limit AS org_rpm_limit, \
             o.tpm_limit AS org_tpm_limit, o.max_concurrency AS org_max_concurrency, \
             CAST(CASE WHEN o.log_bodies THEN 1 ELSE 0 END AS BIGINT) AS org_log_bodies \
             FROM api_keys k \
             JOIN organizations o ON o.id = k.organization_id WHERE k.id = $1"
        );
        let Some(row) = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.db.pool())
            .await?
        else {
            return Ok(None);
        };
        let info = info_from_row(&row)?;
        let hash_hex: String = row.try_get("secret_hash")?;
        let mut secret_hash = [0u8; 32];
        hex::decode_to_slice(&hash_hex, &mut secret_hash)
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let mode: String = row.try_get("billing_mode")?;
        let billing_mode = mode.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let level: Option<String> = row.try_get("default_power_level")?;
        let default_power_level = level
            .map(|l| l.parse())
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
        let allowed_models = crate::orgs::parse_allowed_models(row.try_get("allowed_models")?)?;
        let org_deleted = row.try_get::<i64, _>("org_deleted")? != 0;
        Ok(Some(Arc::new(CachedKey {
            secret_hash,
            // A deleted organization's keys are revoked with it.
            revoked: info.revoked_at.is_some() || org_deleted,
            suspended: row.try_get::<i64, _>("org_suspended")? != 0,
            expires_at: row.try_get("expires_at")?,
            principal: Arc::new(Principal {
                key_id: info.id,
                organization_id: info.organization_id,
                billing_mode,
                rpm_limit: info.rpm_limit,
                tpm_limit: info.tpm_limit,
                max_concurrency: info.max_concurrency,
                budget: info.budget,
                scopes: info.scopes,
                default_power_level,
                markup_percent: u32::try_from(row.try_get::<i64, _>("markup_percent")?)
                    .unwrap_or(0),
                allowed_models: allowed_models.map(Arc::from),
                org_rpm_limit: row.try_get("org_rpm_limit")?,
                org_tpm_limit: row.try_get("org_tpm_limit")?,
                org_max_concurrency: row.try_get("org_max_concurrency")?,
                log_bodies: row.try_get::<i64, _>("org_log_bodies")? != 0,
            }),
        })))
    }

    /// Drops keys changed by any replica from this replica's cache, polling
    /// every `interval`: each change once (see [`ChangePoll`]).
    pub async fn watch_key_changes(self, interval: Duration) {
        let mut poll = ChangePoll::new(time::now_millis());
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.poll_key_changes(&mut poll).await {
                Ok(()) => POLL_FAILED.recovered(),
                Err(e) => POLL_FAILED.failed(&e),
            }
        }
    }

    /// One poll of [`Tenants::watch_key_changes`].
    async fn poll_key_changes(&self, poll: &mut ChangePoll) -> Result<(), sqlx::Error> {
        let started = time::now_millis();
        let rows = sqlx::query("SELECT id, updated_at FROM api_keys WHERE updated_at >= $1")
            .bind(poll.from())
            .fetch_all(self.db.pool())
            .await?
            .iter()
            .map(|row| {
                let id: String = row.try_get("id")?;
                Ok((id.clone(), row.try_get("updated_at")?, id))
            })
            .collect::<Result<_, sqlx::Error>>()?;
        for id in poll.changed(started, rows) {
            self.cache.remove(&id);
        }
        Ok(())
    }
}

fn uuid_hex() -> String {
    let bytes: [u8; 16] = rand::rng().random();
    // Time-ordered like the other ids would be nice, but a key id must not
    // reveal when it was made; random is the safer choice here.
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_default_to_chat_and_embeddings_and_the_admin_flag_adds_admin() {
        use KeyScope::{Admin, Chat, Embeddings};
        assert_eq!(resolve_scopes(None, false).unwrap(), [Chat, Embeddings]);
        assert_eq!(
            resolve_scopes(None, true).unwrap(),
            [Chat, Embeddings, Admin]
        );
        assert_eq!(
            resolve_scopes(Some(vec![Chat]), true).unwrap(),
            [Chat, Admin]
        );
        assert_eq!(
            resolve_scopes(Some(vec![Admin, Chat, Admin]), false).unwrap(),
            [Admin, Chat]
        );
        assert_eq!(resolve_scopes(Some(vec![]), true).unwrap(), [Admin]);
        assert!(resolve_scopes(Some(vec![]), false).is_err());
        assert_eq!(
            scopes_from_column(None, true),
            [Chat, Embeddings, Admin],
            "keys from before scopes"
        );
        assert_eq!(scopes_from_column(Some("embeddings"), false), [Embeddings]);
    }

    #[test]
    fn parses_well_formed_keys_only() {
        let hex = "0123456789abcdef0123456789abcdef";
        let secret = "A".repeat(SECRET_LEN);
        let key = format!("tg-{hex}_{secret}");
        let (id, s) = parse_key(&key).unwrap();
        assert_eq!(id, format!("key_{hex}"));
        assert_eq!(s, secret);
        assert!(parse_key(&key[1..]).is_none());
        assert!(parse_key(&format!("tg-{hex}-{secret}")).is_none());
        assert!(parse_key(&format!("tg-{}_{secret}", "z".repeat(32))).is_none());
        assert!(parse_key(&format!("{key}x")).is_none());
        assert!(parse_key("tg-é").is_none());
    }

    /// A fresh migrated database (SQLite in a fresh directory, or
    /// PostgreSQL as `TOLLGATE_TEST_DATABASE` says) with `connections`
    /// connections; the directory is removed on drop.
    struct TestDb {
        db: tollgate_core::Db,
        dir: std::path::PathBuf,
        _database: tollgate_core::testing::TestDatabase,
    }

    impl TestDb {
        async fn new(connections: u32) -> TestDb {
            let dir = std::env::temp_dir().join(format!("tollgate-keys-{}", uuid_hex()));
            std::fs::create_dir_all(&dir).unwrap();
            let database = tollgate_core::testing::TestDatabase::create(&dir).await;
            let db = tollgate_core::Db::connect(&database.url, connections)
                .await
                .unwrap();
            db.migrate().await.unwrap();
            TestDb {
                db,
                dir,
                _database: database,
            }
        }
    }

    impl Drop for TestDb {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// An organization "acme" with one key: its id and the key itself.
    async fn acme_key(tenants: &Tenants) -> (String, CreatedApiKey) {
        let org = tenants
            .create_organization("acme", BillingMode::Usd)
            .await
            .unwrap();
        let new = NewApiKey {
            name: "backend".into(),
            ..NewApiKey::default()
        };
        let created = tenants.create_api_key(&org.id, new).await.unwrap();
        (org.id, created)
    }

    async fn updated_at(db: &tollgate_core::Db, key_id: &str) -> i64 {
        sqlx::query("SELECT updated_at FROM api_keys WHERE id = $1")
            .bind(key_id)
            .fetch_one(db.pool())
            .await
            .unwrap()
            .get("updated_at")
    }

    #[tokio::test]
    async fn a_key_changed_on_another_replica_is_read_again_once_though_every_poll_sees_it() {
        use secrecy::ExposeSecret;
        let test = TestDb::new(2).await;
        let here = Tenants::new(test.db.clone());
        let there = Tenants::new(test.db.clone());
        let mut poll = ChangePoll::new(time::now_millis());
        let (org, created) = acme_key(&here).await;
        let key = created.key.expose_secret();
        here.authenticate(key).await.unwrap();
        assert_eq!(here.cache().loads(), 1);

        let rename = ApiKeyChange {
            name: Some("renamed".into()),
            ..ApiKeyChange::default()
        };
        there
            .update_api_key(&org, &created.info.id, rename)
            .await
            .unwrap();
        // Every poll of the next two seconds returns the change.
        for _ in 0..3 {
            here.poll_key_changes(&mut poll).await.unwrap();
            here.authenticate(key).await.unwrap();
        }
        assert_eq!(here.cache().loads(), 2, "read again once, not at each poll");

        there.revoke_api_key(&org, &created.info.id).await.unwrap();
        here.poll_key_changes(&mut poll).await.unwrap();
        assert!(matches!(
            here.authenticate(key).await,
            Err(AuthError::Revoked)
        ));
    }

    #[tokio::test]
    async fn every_change_moves_a_keys_updated_at_forward_even_past_the_clock() {
        let test = TestDb::new(2).await;
        let tenants = Tenants::new(test.db.clone());
        let (org, created) = acme_key(&tenants).await;
        let id = &created.info.id;
        // As if written by a replica whose clock is a minute ahead, or by
        // another change in this same millisecond.
        let ahead = time::now_millis() + 60_000;
        sqlx::query("UPDATE api_keys SET updated_at = $1 WHERE id = $2")
            .bind(ahead)
            .bind(id)
            .execute(test.db.pool())
            .await
            .unwrap();

        let rename = ApiKeyChange {
            name: Some("renamed".into()),
            ..ApiKeyChange::default()
        };
        tenants.update_api_key(&org, id, rename).await.unwrap();
        assert_eq!(updated_at(&test.db, id).await, ahead + 1);
        tenants.set_suspended(&org, true).await.unwrap();
        assert_eq!(updated_at(&test.db, id).await, ahead + 2);
        tenants.revoke_api_key(&org, id).await.unwrap();
        assert_eq!(updated_at(&test.db, id).await, ahead + 3);
    }

    #[tokio::test]
    async fn requests_missing_a_key_together_read_it_once_and_then_not_at_all() {
        use secrecy::ExposeSecret;
        // One connection, which the test holds while the requests arrive.
        let test = TestDb::new(1).await;
        let db = &test.db;
        let tenants = Tenants::new(db.clone());
        let (org, created) = acme_key(&tenants).await;
        let key = created.key.expose_secret();
        let held = db.pool().acquire().await.unwrap();

        // Every request is polled (and misses) before the connection is free.
        let requests = futures::future::join_all((0..32).map(|_| tenants.authenticate(key)));
        let release = async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            drop(held);
        };
        let (answers, ()) = tokio::join!(requests, release);

        for answer in answers {
            assert_eq!(answer.unwrap().organization_id, org);
        }
        assert_eq!(tenants.cache().loads(), 1);
        assert!(tenants.authenticate(key).await.is_ok());
        // The same key id with another secret: refused from the cache.
        let last = if key.ends_with('a') { "b" } else { "a" };
        let wrong = [&key[..key.len() - 1], last].concat();
        assert!(matches!(
            tenants.authenticate(&wrong).await,
            Err(AuthError::Invalid)
        ));
        assert_eq!(tenants.cache().loads(), 1, "a cached key is not read again");
    }
}
