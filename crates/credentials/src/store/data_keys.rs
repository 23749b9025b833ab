//! Organizations' data keys in the database, each wrapped by a generation
//! of the master key (`organization_data_keys`).

use sqlx::{Any, AnyConnection, Executor, Row};

use crate::error::Result;
use crate::sealed;

/// The generation of data key that new credentials are sealed with. Data
/// keys are never rotated today (a master-key rotation re-wraps them, it
/// does not replace them); the version is stored with every ciphertext so
/// that a future data-key rotation can tell old seals from new.
pub(crate) const CURRENT_DATA_KEY_VERSION: i64 = 1;

/// Label that starts the associated data of a wrapped data key.
const DATA_KEY_LABEL: &[u8] = b"tollgate-org-data-key";

/// The associated data a data key is wrapped with: it binds the wrapped key
/// to its organization and version, so a wrapped key copied to another
/// organization's row does not open.
pub(crate) fn data_key_aad(organization_id: &str, version: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * 8 + DATA_KEY_LABEL.len() + organization_id.len() + 8);
    sealed::push_field(&mut out, DATA_KEY_LABEL);
    sealed::push_field(&mut out, organization_id.as_bytes());
    sealed::push_field(&mut out, &version.to_be_bytes());
    out
}

/// A wrapped data key as stored.
pub(crate) struct WrappedDataKey {
    pub organization_id: String,
    pub version: i64,
    pub wrapped_key: Vec<u8>,
}

/// The organization's data key of `version`, as wrapped by the master key of
/// generation `master_key_version`, if there is one.
pub(crate) async fn wrapped<'c>(
    conn: impl Executor<'c, Database = Any>,
    organization_id: &str,
    version: i64,
    master_key_version: i64,
) -> Result<Option<Vec<u8>>> {
    let row = sqlx::query(
        "SELECT wrapped_key FROM organization_data_keys \
         WHERE organization_id = $1 AND version = $2 AND master_key_version = $3",
    )
    .bind(organization_id)
    .bind(version)
    .bind(master_key_version)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|r| r.try_get("wrapped_key")).transpose()?)
}

/// Every data key wrapped by the master key of generation `master_key_version`.
pub(crate) async fn wrapped_under(
    conn: &mut AnyConnection,
    master_key_version: i64,
) -> Result<Vec<WrappedDataKey>> {
    let rows = sqlx::query(
        "SELECT organization_id, version, wrapped_key FROM organization_data_keys \
         WHERE master_key_version = $1 ORDER BY organization_id, version",
    )
    .bind(master_key_version)
    .fetch_all(conn)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(WrappedDataKey {
                organization_id: row.try_get("organization_id")?,
                version: row.try_get("version")?,
                wrapped_key: row.try_get("wrapped_key")?,
            })
        })
        .collect()
}

/// Stores a wrapped data key unless that organization, version and
/// generation already has one (another replica was first). Returns whether
/// this one was stored.
pub(crate) async fn insert_wrapped(
    conn: &mut AnyConnection,
    organization_id: &str,
    version: i64,
    master_key_version: i64,
    wrapped_key: &[u8],
    now: i64,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO organization_data_keys \
         (organization_id, version, master_key_version, wrapped_key, created_at) \
         VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (organization_id, version, master_key_version) DO NOTHING",
    )
    .bind(organization_id)
    .bind(version)
    .bind(master_key_version)
    .bind(wrapped_key)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the data keys wrapped by master keys older than `master_key_version`.
pub(crate) async fn delete_older_than(
    conn: &mut AnyConnection,
    master_key_version: i64,
) -> Result<u64> {
    let done = sqlx::query("DELETE FROM organization_data_keys WHERE master_key_version < $1")
        .bind(master_key_version)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}
