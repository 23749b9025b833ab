//! Organizations: create, read, list (cursor-paginated, newest first),
//! update, suspend, resume and delete (soft: the row, its ledger and its
//! usage stay, hidden from every read).

use crate::{TenantError, Tenants};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::{BillingMode, PowerLevel, bump_updated_at, ids, time};

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub billing_mode: BillingMode,
    /// The power level of `"model": "auto"` calls that name none (`None`:
    /// `balanced`).
    pub default_power_level: Option<PowerLevel>,
    /// Whether its calls are refused (403).
    pub suspended: bool,
    /// Percent added to the USD list cost of its calls paid with the
    /// platform's keys (0..=1000).
    pub markup_percent: u32,
    /// How far below zero its balance may go, in its unit.
    pub overdraft_limit: i64,
    /// The catalog models it may call (`None`: all).
    pub allowed_models: Option<Vec<String>>,
    /// Its own rate limits (`None`: the platform default, `TOLLGATE_ORG_*`).
    pub rpm_limit: Option<i64>,
    pub tpm_limit: Option<i64>,
    pub max_concurrency: Option<i64>,
    /// Whether its request log keeps prompt and completion bodies (for
    /// the retention period, `TOLLGATE_REQUEST_LOG_BODY_RETENTION_SECS`).
    pub log_bodies: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct OrganizationChange<'a> {
    pub name: Option<&'a str>,
    /// `Some(None)` clears it.
    pub default_power_level: Option<Option<PowerLevel>>,
    pub markup_percent: Option<u32>,
    /// `Some(None)`: every model again.
    pub allowed_models: Option<Option<Vec<String>>>,
    /// `Some(None)`: back to the platform default.
    pub rpm_limit: Option<Option<i64>>,
    pub tpm_limit: Option<Option<i64>>,
    pub max_concurrency: Option<Option<i64>>,
    pub log_bodies: Option<bool>,
}

/// The highest markup, in percent.
pub const MAX_MARKUP_PERCENT: u32 = 1000;
/// The most models an allow-list may name.
const MAX_ALLOWED_MODELS: usize = 1000;

const ORG_COLUMNS: &str = "id, name, billing_mode, default_power_level, \
    CAST(CASE WHEN suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS suspended, \
    markup_percent, allowed_models, rpm_limit, tpm_limit, max_concurrency, \
    CAST(CASE WHEN log_bodies THEN 1 ELSE 0 END AS BIGINT) AS log_bodies, \
    COALESCE((SELECT c.overdraft_limit FROM credit_accounts c \
              WHERE c.organization_id = organizations.id), 0) AS overdraft_limit, created_at";

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

fn org_from_row(row: &AnyRow) -> Result<Organization, sqlx::Error> {
    let mode: String = row.try_get("billing_mode")?;
    let level: Option<String> = row.try_get("default_power_level")?;
    Ok(Organization {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        billing_mode: mode.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        default_power_level: level
            .map(|l| l.parse())
            .transpose()
            .map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        suspended: row.try_get::<i64, _>("suspended")? != 0,
        markup_percent: u32::try_from(row.try_get::<i64, _>("markup_percent")?).unwrap_or(0),
        overdraft_limit: row.try_get("overdraft_limit")?,
        allowed_models: parse_allowed_models(row.try_get("allowed_models")?)?,
        rpm_limit: row.try_get("rpm_limit")?,
        tpm_limit: row.try_get("tpm_limit")?,
        max_concurrency: row.try_get("max_concurrency")?,
        log_bodies: row.try_get::<i64, _>("log_bodies")? != 0,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

/// The stored allow-list (a JSON array of model ids), `None` for all.
pub(crate) fn parse_allowed_models(
    stored: Option<String>,
) -> Result<Option<Vec<String>>, sqlx::Error> {
    stored
        .map(|json| serde_json::from_str(&json))
        .transpose()
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Checks an allow-list's shape (the caller checks the ids against the
/// catalog); duplicates are dropped, the order kept.
fn valid_allowed_models(models: Vec<String>) -> Result<Vec<String>, TenantError> {
    if models.len() > MAX_ALLOWED_MODELS
        || models
            .iter()
            .any(|m| m.is_empty() || m.len() > 200 || m.contains('\0'))
    {
        return Err(TenantError::Invalid {
            field: "allowed_models",
            message: format!(
                "must be at most {MAX_ALLOWED_MODELS} model ids of 1 to 200 characters"
            ),
        });
    }
    let mut unique: Vec<String> = Vec::with_capacity(models.len());
    for model in models {
        if !unique.contains(&model) {
            unique.push(model);
        }
    }
    Ok(unique)
}

fn positive_limit(field: &'static str, value: Option<i64>) -> Result<(), TenantError> {
    match value {
        Some(n) if n <= 0 => Err(TenantError::Invalid {
            field,
            message: "must be a positive integer, or null for the platform default".into(),
        }),
        _ => Ok(()),
    }
}

impl Tenants {
    pub async fn create_organization(
        &self,
        name: &str,
        billing_mode: BillingMode,
    ) -> Result<Organization, TenantError> {
        let name = valid_name(name)?;
        let now = time::now_millis();
        let org = Organization {
            id: ids::new_id("org"),
            name: name.to_owned(),
            billing_mode,
            default_power_level: None,
            suspended: false,
            markup_percent: 0,
            overdraft_limit: 0,
            allowed_models: None,
            rpm_limit: None,
            tpm_limit: None,
            max_concurrency: None,
            log_bodies: false,
            created_at: now / 1000,
        };
        sqlx::query(
            "INSERT INTO organizations (id, name, billing_mode, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&org.id)
        .bind(&org.name)
        .bind(billing_mode.as_str())
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(org)
    }

    pub async fn organization(&self, id: &str) -> Result<Organization, TenantError> {
        let row = sqlx::query(&format!(
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1 AND deleted_at IS NULL"
        ))
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(TenantError::OrganizationNotFound)?;
        Ok(org_from_row(&row)?)
    }

    /// Newest first: `limit` organizations created before the one whose id
    /// is `before` (ids are time-ordered), optionally only `suspended` ones
    /// (or only active ones).
    pub async fn list_organizations(
        &self,
        limit: i64,
        before: Option<&str>,
        suspended: Option<bool>,
    ) -> Result<Vec<Organization>, TenantError> {
        // Static SQL: sqlx's `Any` query builder writes `?` placeholders,
        // which PostgreSQL refuses.
        let (low, high) = match suspended {
            None => (0_i64, 1_i64),
            Some(true) => (1, 1),
            Some(false) => (0, 0),
        };
        let suspended_col = "CAST(CASE WHEN suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT)";
        let rows = match before {
            Some(before) => {
                sqlx::query(&format!(
                    "SELECT {ORG_COLUMNS} FROM organizations \
                     WHERE deleted_at IS NULL AND {suspended_col} BETWEEN $1 AND $2 AND id < $3 ORDER BY id DESC LIMIT $4"
                ))
                .bind(low)
                .bind(high)
                .bind(before)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
            None => {
                sqlx::query(&format!(
                    "SELECT {ORG_COLUMNS} FROM organizations \
                     WHERE deleted_at IS NULL AND {suspended_col} BETWEEN $1 AND $2 ORDER BY id DESC LIMIT $3"
                ))
                .bind(low)
                .bind(high)
                .bind(limit)
                .fetch_all(self.db.pool())
                .await?
            }
        };
        Ok(rows
            .iter()
            .map(org_from_row)
            .collect::<Result<Vec<_>, _>>()?)
    }

    pub async fn update_organization(
        &self,
        id: &str,
        change: OrganizationChange<'_>,
    ) -> Result<Organization, TenantError> {
        let now = time::now_millis();
        let name = change.name.map(valid_name).transpose()?;
        if change
            .markup_percent
            .is_some_and(|m| m > MAX_MARKUP_PERCENT)
        {
            return Err(TenantError::Invalid {
                field: "markup_percent",
                message: format!("must be an integer from 0 to {MAX_MARKUP_PERCENT}"),
            });
        }
        let allowed_models = match change.allowed_models {
            Some(Some(models)) => Some(Some(
                serde_json::to_string(&valid_allowed_models(models)?)
                    .map_err(|e| TenantError::Internal(e.to_string()))?,
            )),
            Some(None) => Some(None),
            None => None,
        };
        // Static SQL per column: no column name is ever formatted in.
        let limits = [
            (
                "rpm_limit",
                "UPDATE organizations SET rpm_limit = $1 WHERE id = $2",
                change.rpm_limit,
            ),
            (
                "tpm_limit",
                "UPDATE organizations SET tpm_limit = $1 WHERE id = $2",
                change.tpm_limit,
            ),
            (
                "max_concurrency",
                "UPDATE organizations SET max_concurrency = $1 WHERE id = $2",
                change.max_concurrency,
            ),
        ];
        for (field, _, value) in &limits {
            if let Some(value) = value {
                positive_limit(field, *value)?;
            }
        }
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE organizations SET updated_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(TenantError::OrganizationNotFound);
        }
        if let Some(name) = name {
            sqlx::query("UPDATE organizations SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(level) = change.default_power_level {
            sqlx::query("UPDATE organizations SET default_power_level = $1 WHERE id = $2")
                .bind(level.map(|l| l.as_str()))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(markup) = change.markup_percent {
            sqlx::query("UPDATE organizations SET markup_percent = $1 WHERE id = $2")
                .bind(i64::from(markup))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(log_bodies) = change.log_bodies {
            sqlx::query("UPDATE organizations SET log_bodies = $1 WHERE id = $2")
                .bind(log_bodies)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        if let Some(models) = allowed_models {
            sqlx::query("UPDATE organizations SET allowed_models = $1 WHERE id = $2")
                .bind(models)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for (_, sql, value) in limits {
            if let Some(limit) = value {
                sqlx::query(sql)
                    .bind(limit)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.touch_keys(id, now).await?;
        self.organization(id).await
    }

    /// Suspends (or resumes) an organization: its keys answer 403 within
    /// a second on every replica.
    pub async fn set_suspended(
        &self,
        id: &str,
        suspended: bool,
    ) -> Result<Organization, TenantError> {
        let now = time::now_millis();
        let done = sqlx::query(
            "UPDATE organizations SET suspended_at = $1, updated_at = $2 \
             WHERE id = $3 AND deleted_at IS NULL",
        )
        .bind(suspended.then_some(now))
        .bind(now)
        .bind(id)
        .execute(self.db.pool())
        .await?;
        if done.rows_affected() == 0 {
            return Err(TenantError::OrganizationNotFound);
        }
        self.touch_keys(id, now).await?;
        self.organization(id).await
    }

    /// Deletes an organization (softly): it disappears from every read, all
    /// its keys are revoked (401 within a second on every replica) and its
    /// users can no longer sign in. Its balance, ledger and usage stay as
    /// they are. Returns the organization as it was.
    pub async fn delete_organization(&self, id: &str) -> Result<Organization, TenantError> {
        let org = self.organization(id).await?;
        let now = time::now_millis();
        let mut tx = self.db.begin_write().await?;
        let done = sqlx::query(
            "UPDATE organizations SET deleted_at = $1, updated_at = $1 \
             WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(TenantError::OrganizationNotFound);
        }
        sqlx::query(
            "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE organization_id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM invitations WHERE organization_id = $1 AND accepted_at IS NULL")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.touch_keys(id, now).await?;
        Ok(org)
    }

    /// Marks the organization's keys changed, so that every replica's key
    /// cache reloads them (with the organization's new state).
    async fn touch_keys(&self, organization_id: &str, now: i64) -> Result<(), sqlx::Error> {
        let rows = sqlx::query("SELECT id FROM api_keys WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_all(self.db.pool())
            .await?;
        sqlx::query(concat!(
            "UPDATE api_keys SET ",
            bump_updated_at!("$1"),
            " WHERE organization_id = $2"
        ))
        .bind(now)
        .bind(organization_id)
        .execute(self.db.pool())
        .await?;
        for row in rows {
            self.cache.remove(&row.try_get::<String, _>("id")?);
        }
        Ok(())
    }
}
