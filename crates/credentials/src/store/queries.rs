//! The credential store's SQL: one statement per function, portable between
//! SQLite and PostgreSQL (`$n` placeholders, booleans read as integers
//! because sqlx's `Any` driver cannot decode SQLite booleans).

use sqlx::any::AnyRow;
use sqlx::{Any, Executor, Row};
use tollgate_core::bump_updated_at;

use super::{AuditActor, AuditEntry, AuditFilter, Credential, ListFilter};
use crate::error::{CredentialError, Result};

const CREDENTIAL_COLUMNS: &str = "id, organization_id, provider, name, key_hint, key_version, \
     CAST(CASE WHEN active THEN 1 ELSE 0 END AS BIGINT) AS active, created_at, updated_at";

const AUDIT_COLUMNS: &str = "id, organization_id, credential_id, provider, action, actor_type, \
     actor_id, credential_name, key_hint, changes, created_at";

/// A credential's sealed key, as the request path loads it.
pub(crate) struct SealedKey {
    pub encrypted_key: Vec<u8>,
    pub key_version: i64,
}

/// One audit row to write.
pub(crate) struct AuditRecord<'a> {
    pub credential: &'a Credential,
    pub action: &'static str,
    pub actor_type: &'static str,
    pub actor_id: Option<&'a str>,
    pub changes: Option<String>,
    pub now: i64,
}

fn credential_from_row(row: &AnyRow) -> Result<Credential, sqlx::Error> {
    Ok(Credential {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        provider: row.try_get("provider")?,
        credential_name: row.try_get("name")?,
        key_hint: row.try_get("key_hint")?,
        key_version: row.try_get("key_version")?,
        active: row.try_get::<i64, _>("active")? != 0,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
        updated_at: row.try_get::<i64, _>("updated_at")? / 1000,
    })
}

fn audit_from_row(row: &AnyRow) -> Result<AuditEntry, sqlx::Error> {
    let changes: Option<String> = row.try_get("changes")?;
    Ok(AuditEntry {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        credential_id: row.try_get("credential_id")?,
        provider: row.try_get("provider")?,
        action: row.try_get("action")?,
        actor: AuditActor {
            kind: row.try_get("actor_type")?,
            id: row.try_get("actor_id")?,
        },
        credential_name: row.try_get("credential_name")?,
        key_hint: row.try_get("key_hint")?,
        changes: changes
            .map(|c| c.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

/// A unique violation here can only be the one-active-credential index:
/// the one place that turns it into [`CredentialError::ActiveConflict`].
pub(crate) fn conflict_or_db(err: sqlx::Error, provider: &str) -> CredentialError {
    if tollgate_core::db::is_unique_violation(&err) {
        CredentialError::ActiveConflict {
            provider: provider.to_owned(),
        }
    } else {
        CredentialError::Db(err)
    }
}

pub(crate) async fn insert_credential<'c>(
    conn: impl Executor<'c, Database = Any>,
    credential: &Credential,
    encrypted_key: &[u8],
    now: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO provider_credentials (id, organization_id, provider, name, encrypted_key, \
         key_version, key_hint, active, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
    )
    .bind(&credential.id)
    .bind(&credential.organization_id)
    .bind(&credential.provider)
    .bind(&credential.credential_name)
    .bind(encrypted_key)
    .bind(credential.key_version)
    .bind(&credential.key_hint)
    .bind(credential.active)
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| conflict_or_db(e, &credential.provider))?;
    Ok(())
}

/// A credential that is not deleted, whatever its organization.
pub(crate) async fn credential_by_id<'c>(
    conn: impl Executor<'c, Database = Any>,
    id: &str,
) -> Result<Option<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM provider_credentials \
         WHERE id = $1 AND deleted_at IS NULL"
    );
    let row = sqlx::query(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.as_ref().map(credential_from_row).transpose()?)
}

/// A credential of this organization that is not deleted.
pub(crate) async fn credential_in_org<'c>(
    conn: impl Executor<'c, Database = Any>,
    organization_id: &str,
    id: &str,
) -> Result<Option<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM provider_credentials \
         WHERE id = $1 AND organization_id = $2 AND deleted_at IS NULL"
    );
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(organization_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(credential_from_row).transpose()?)
}

/// The organization's active credential for the provider, if any.
pub(crate) async fn active_credential<'c>(
    conn: impl Executor<'c, Database = Any>,
    organization_id: &str,
    provider: &str,
) -> Result<Option<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM provider_credentials \
         WHERE organization_id = $1 AND provider = $2 AND active"
    );
    let row = sqlx::query(&sql)
        .bind(organization_id)
        .bind(provider)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(credential_from_row).transpose()?)
}

/// The sealed key of the organization's active credential for the provider.
pub(crate) async fn active_sealed_key<'c>(
    conn: impl Executor<'c, Database = Any>,
    organization_id: &str,
    provider: &str,
) -> Result<Option<SealedKey>> {
    let row = sqlx::query(
        "SELECT encrypted_key, key_version FROM provider_credentials \
         WHERE organization_id = $1 AND provider = $2 AND active AND encrypted_key IS NOT NULL",
    )
    .bind(organization_id)
    .bind(provider)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(SealedKey {
        encrypted_key: row.try_get("encrypted_key")?,
        key_version: row.try_get("key_version")?,
    }))
}

/// Writes a credential's name, hint and key version, and its sealed key when
/// one is given (else the stored one stays).
pub(crate) async fn update_credential<'c>(
    conn: impl Executor<'c, Database = Any>,
    credential: &Credential,
    encrypted_key: Option<&[u8]>,
    now: i64,
) -> Result<()> {
    sqlx::query(concat!(
        "UPDATE provider_credentials SET name = $1, key_hint = $2, key_version = $3, \
             encrypted_key = COALESCE($4, encrypted_key), ",
        bump_updated_at!("$5"),
        " WHERE id = $6 AND organization_id = $7 AND deleted_at IS NULL"
    ))
    .bind(&credential.credential_name)
    .bind(&credential.key_hint)
    .bind(credential.key_version)
    .bind(encrypted_key)
    .bind(now)
    .bind(&credential.id)
    .bind(&credential.organization_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub(crate) async fn set_active<'c>(
    conn: impl Executor<'c, Database = Any>,
    credential: &Credential,
    active: bool,
    now: i64,
) -> Result<()> {
    sqlx::query(concat!(
        "UPDATE provider_credentials SET active = $1, ",
        bump_updated_at!("$2"),
        " WHERE id = $3 AND organization_id = $4 AND deleted_at IS NULL"
    ))
    .bind(active)
    .bind(now)
    .bind(&credential.id)
    .bind(&credential.organization_id)
    .execute(conn)
    .await
    .map_err(|e| conflict_or_db(e, &credential.provider))?;
    Ok(())
}

/// Marks a credential deleted and destroys its sealed key; the row stays
/// for the audit log and so that other replicas see the change.
pub(crate) async fn delete_credential<'c>(
    conn: impl Executor<'c, Database = Any>,
    credential: &Credential,
    now: i64,
) -> Result<()> {
    sqlx::query(concat!(
        "UPDATE provider_credentials SET active = $1, encrypted_key = NULL, deleted_at = $2, ",
        bump_updated_at!("$2"),
        " WHERE id = $3 AND organization_id = $4 AND deleted_at IS NULL"
    ))
    .bind(false)
    .bind(now)
    .bind(&credential.id)
    .bind(&credential.organization_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Credentials that are not deleted, newest first.
pub(crate) async fn list_credentials<'c>(
    conn: impl Executor<'c, Database = Any>,
    filter: &ListFilter<'_>,
) -> Result<Vec<Credential>> {
    let sql = format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM provider_credentials WHERE deleted_at IS NULL \
         AND ($1 IS NULL OR organization_id = $1) AND ($2 IS NULL OR provider = $2) \
         AND ($3 IS NULL OR active = $3) AND ($4 IS NULL OR id < $4) \
         ORDER BY id DESC LIMIT $5"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.organization_id)
        .bind(filter.provider)
        .bind(filter.active)
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(conn)
        .await?;
    Ok(rows
        .iter()
        .map(credential_from_row)
        .collect::<Result<_, _>>()?)
}

pub(crate) async fn insert_audit<'c>(
    conn: impl Executor<'c, Database = Any>,
    record: &AuditRecord<'_>,
) -> Result<()> {
    let credential = record.credential;
    sqlx::query(
        "INSERT INTO provider_credential_audit (organization_id, credential_id, provider, action, \
         actor_type, actor_id, credential_name, key_hint, changes, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&credential.organization_id)
    .bind(&credential.id)
    .bind(&credential.provider)
    .bind(record.action)
    .bind(record.actor_type)
    .bind(record.actor_id)
    .bind(&credential.credential_name)
    .bind(&credential.key_hint)
    .bind(record.changes.as_deref())
    .bind(record.now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Audit entries, newest first.
pub(crate) async fn list_audit<'c>(
    conn: impl Executor<'c, Database = Any>,
    filter: &AuditFilter<'_>,
) -> Result<Vec<AuditEntry>> {
    let sql = format!(
        "SELECT {AUDIT_COLUMNS} FROM provider_credential_audit \
         WHERE ($1 IS NULL OR organization_id = $1) AND ($2 IS NULL OR credential_id = $2) \
         AND ($3 IS NULL OR id < $3) ORDER BY id DESC LIMIT $4"
    );
    let rows = sqlx::query(&sql)
        .bind(filter.organization_id)
        .bind(filter.credential_id)
        .bind(filter.before)
        .bind(filter.limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.iter().map(audit_from_row).collect::<Result<_, _>>()?)
}

/// Credentials changed at or after `since` (ms): each one's id, its
/// `updated_at` and its organization.
pub(crate) async fn credentials_changed_since<'c>(
    conn: impl Executor<'c, Database = Any>,
    since: i64,
) -> Result<Vec<(String, i64, String)>> {
    let rows = sqlx::query(
        "SELECT id, updated_at, organization_id FROM provider_credentials WHERE updated_at >= $1",
    )
    .bind(since)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get("id")?,
                row.try_get("updated_at")?,
                row.try_get("organization_id")?,
            ))
        })
        .collect::<Result<_, sqlx::Error>>()?)
}
