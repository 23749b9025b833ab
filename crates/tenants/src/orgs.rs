//! Organizations: create and read.

use crate::{TenantError, Tenants};
use serde::Serialize;
use sqlx::Row;
use tollgate_core::{BillingMode, ids, time};

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Organization {
    pub id: String,
    pub name: String,
    pub billing_mode: BillingMode,
    /// Unix seconds.
    pub created_at: i64,
}

impl Tenants {
    pub async fn create_organization(
        &self,
        name: &str,
        billing_mode: BillingMode,
    ) -> Result<Organization, TenantError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.contains('\0') {
            return Err(TenantError::Invalid {
                field: "name",
                message: "must be 1 to 200 characters, without NUL".into(),
            });
        }
        let now = time::now_millis();
        let org = Organization {
            id: ids::new_id("org"),
            name: name.to_owned(),
            billing_mode,
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
        let row = sqlx::query(
            "SELECT id, name, billing_mode, created_at FROM organizations WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?
        .ok_or(TenantError::OrganizationNotFound)?;
        let mode: String = row.try_get("billing_mode")?;
        Ok(Organization {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            billing_mode: mode.parse().map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
            created_at: row.try_get::<i64, _>("created_at")? / 1000,
        })
    }
}
