//! Organizations: create, read, list (cursor-paginated, newest first),
//! update, suspend and resume.

use crate::{TenantError, Tenants};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::{BillingMode, PowerLevel, ids, time};

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
    /// Unix seconds.
    pub created_at: i64,
}

/// What an update changes; `None` leaves a field as it is.
#[derive(Debug, Default)]
pub struct OrganizationChange<'a> {
    pub name: Option<&'a str>,
    /// `Some(None)` clears it.
    pub default_power_level: Option<Option<PowerLevel>>,
}

const ORG_COLUMNS: &str = "id, name, billing_mode, default_power_level, \
    CAST(CASE WHEN suspended_at IS NULL THEN 0 ELSE 1 END AS BIGINT) AS suspended, created_at";

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
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
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
            "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"
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
                     WHERE {suspended_col} BETWEEN $1 AND $2 AND id < $3 ORDER BY id DESC LIMIT $4"
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
                     WHERE {suspended_col} BETWEEN $1 AND $2 ORDER BY id DESC LIMIT $3"
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
        let mut tx = self.db.pool().begin().await?;
        let done = sqlx::query("UPDATE organizations SET updated_at = $1 WHERE id = $2")
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
            "UPDATE organizations SET suspended_at = $1, updated_at = $2 WHERE id = $3",
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

    /// Marks the organization's keys changed, so that every replica's key
    /// cache reloads them (with the organization's new state).
    async fn touch_keys(&self, organization_id: &str, now: i64) -> Result<(), sqlx::Error> {
        let rows = sqlx::query("SELECT id FROM api_keys WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_all(self.db.pool())
            .await?;
        sqlx::query("UPDATE api_keys SET updated_at = $1 WHERE organization_id = $2")
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
