//! The master key's records in the database (`system_settings`): the
//! passphrase salt, the key check that refuses a wrong master key at start,
//! and the master key's generation; and the rotation to a new master key.
//!
//! A rotation re-wraps every organization's data key under the new master
//! key in one transaction and bumps the generation. It keeps the wrapped
//! keys of the previous generation, so gateways still running on the
//! previous master key keep reading (they must restart with the new one
//! before the next rotation); it removes older generations.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sqlx::{AnyConnection, Row};
use tollgate_core::{Db, time};

use crate::error::{CredentialError, Result};
use crate::master_key::{MasterKey, generate_salt};
use crate::store::data_keys::{self, data_key_aad};

const SALT: &str = "master_key_salt";
const CHECK: &str = "master_key_check";
const VERSION: &str = "master_key_version";

/// The master key in force, with its generation: 1 for the first master key
/// of a database, one more for each rotation.
pub struct RootKey {
    key: MasterKey,
    version: i64,
}

impl RootKey {
    /// The master key's generation.
    #[must_use]
    pub fn version(&self) -> i64 {
        self.version
    }

    pub(crate) fn key(&self) -> &MasterKey {
        &self.key
    }
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootKey")
            .field("version", &self.version)
            .field("key", &self.key)
            .finish()
    }
}

/// The salt for a passphrase master key: made and stored on first use, the
/// same ever after (it is not secret).
///
/// # Errors
///
/// [`CredentialError::Db`], or [`CredentialError::CorruptSetting`] if the
/// stored salt is not base64.
pub async fn passphrase_salt(db: &Db) -> Result<Vec<u8>> {
    let stored = setting_or_init(db, SALT, &B64.encode(generate_salt())).await?;
    B64.decode(stored)
        .map_err(|_| CredentialError::CorruptSetting("master key salt"))
}

/// Checks `key` against the database's key check and returns it with its
/// generation. On a new database, the check is made with `key` and stored
/// first (race-free across replicas starting together: the first one wins,
/// the others are checked against it).
///
/// # Errors
///
/// [`CredentialError::WrongMasterKey`] if the database was set up with
/// another master key; [`CredentialError::Db`] or
/// [`CredentialError::CorruptSetting`] otherwise.
pub async fn unlock(db: &Db, key: MasterKey) -> Result<RootKey> {
    setting_or_init(db, CHECK, &B64.encode(key.key_check())).await?;
    setting_or_init(db, VERSION, "1").await?;
    let (check, version) = check_and_version(db).await?;
    key.verify_key_check(&check).map_err(|err| match err {
        CredentialError::WrongMasterKey => err,
        _ => CredentialError::CorruptSetting("master key check"),
    })?;
    Ok(RootKey { key, version })
}

/// What a rotation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Organization data keys re-wrapped.
    pub data_keys: usize,
    /// The new master key's generation.
    pub version: i64,
}

/// Re-wraps every organization's data key under `new` and makes it the
/// master key, in one transaction: the key check is replaced (so a start
/// with the old master key is refused from now on) and, when `new` comes
/// from a passphrase, its salt is stored. Provider keys are not touched:
/// they stay sealed by the same data keys.
///
/// # Errors
///
/// [`CredentialError::MasterKeyRotated`] if another rotation happened since
/// `current` was unlocked; [`CredentialError::DecryptionFailed`] if a stored
/// data key does not open with `current` (nothing is changed then);
/// [`CredentialError::Db`].
pub async fn rotate(
    db: &Db,
    current: &RootKey,
    new: &MasterKey,
    new_salt: Option<&[u8]>,
) -> Result<Rotation> {
    let next = current.version + 1;
    let now = time::now_millis();
    let mut tx = db.begin_write().await?;
    // First, so that it takes the lock that data-key creation waits on.
    if !advance_master_key_version(&mut tx, current.version, next).await? {
        return Err(CredentialError::MasterKeyRotated);
    }
    let wrapped = data_keys::wrapped_under(&mut tx, current.version).await?;
    for row in &wrapped {
        let aad = data_key_aad(&row.organization_id, row.version);
        let data_key = current.key.unwrap(&row.wrapped_key, &aad)?;
        data_keys::insert_wrapped(
            &mut tx,
            &row.organization_id,
            row.version,
            next,
            &new.wrap(&data_key, &aad),
            now,
        )
        .await?;
    }
    data_keys::delete_older_than(&mut tx, current.version).await?;
    store_setting(&mut tx, CHECK, &B64.encode(new.key_check())).await?;
    if let Some(salt) = new_salt {
        store_setting(&mut tx, SALT, &B64.encode(salt)).await?;
    }
    tx.commit().await?;
    Ok(Rotation {
        data_keys: wrapped.len(),
        version: next,
    })
}

/// Reads a setting, or stores `default` first if there is none.
async fn setting_or_init(db: &Db, name: &str, default: &str) -> Result<String> {
    sqlx::query(
        "INSERT INTO system_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(default)
    .execute(db.pool())
    .await?;
    let row = sqlx::query("SELECT value FROM system_settings WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("value")?)
}

/// The key check and the generation, read in one statement so that a
/// rotation committing meanwhile cannot pair the old check with the new
/// generation.
async fn check_and_version(db: &Db) -> Result<(Vec<u8>, i64)> {
    let rows = sqlx::query("SELECT name, value FROM system_settings WHERE name IN ($1, $2)")
        .bind(CHECK)
        .bind(VERSION)
        .fetch_all(db.pool())
        .await?;
    let mut check = None;
    let mut version = None;
    for row in rows {
        let name: String = row.try_get("name")?;
        let value: String = row.try_get("value")?;
        if name == CHECK {
            check = B64.decode(value).ok();
        } else {
            version = value.parse::<i64>().ok();
        }
    }
    Ok((
        check.ok_or(CredentialError::CorruptSetting("master key check"))?,
        version.ok_or(CredentialError::CorruptSetting("master key version"))?,
    ))
}

/// Moves the generation from `from` to `to`; `false` if it was not `from`.
async fn advance_master_key_version(conn: &mut AnyConnection, from: i64, to: i64) -> Result<bool> {
    let done = sqlx::query("UPDATE system_settings SET value = $1 WHERE name = $2 AND value = $3")
        .bind(to.to_string())
        .bind(VERSION)
        .bind(from.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Confirms, inside a transaction that is about to wrap a new data key
/// under the generation `version`, that it is still the current one. On
/// PostgreSQL the row lock this takes orders the transaction with any
/// rotation; SQLite runs one writer at a time anyway.
pub(crate) async fn confirm_master_key_version(
    conn: &mut AnyConnection,
    version: i64,
) -> Result<bool> {
    advance_master_key_version(conn, version, version).await
}

async fn store_setting(conn: &mut AnyConnection, name: &str, value: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO system_settings (name, value) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET value = excluded.value",
    )
    .bind(name)
    .bind(value)
    .execute(conn)
    .await?;
    Ok(())
}
