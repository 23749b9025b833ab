//! The credential store: organizations' own provider keys (BYOK) in the
//! database, sealed under per-organization data keys, their audit log, and
//! the cache that lets the request path use them without a database round
//! trip.
//!
//! Every change invalidates the organization's cached keys at once on this
//! replica; [`CredentialStore::watch_changes`] does the same on every other
//! replica within its polling interval, once per change (the `updated_at`
//! of each row: see [`ChangePoll`]).

mod cache;
pub(crate) mod data_keys;
mod queries;
mod secrets;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use tollgate_core::changes::ChangePoll;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::{Db, ids, time};

use crate::data_key::DataKey;
use crate::error::{CredentialError, Result};
use crate::root::{RootKey, confirm_master_key_version};
use crate::{aad_for, key_hint};
use cache::Cache;
use data_keys::{CURRENT_DATA_KEY_VERSION, data_key_aad};
use queries::AuditRecord;

/// Longest provider key accepted, in bytes.
const MAX_KEY_LEN: usize = 4096;
/// Longest credential name, in characters.
const MAX_NAME_CHARS: usize = 200;
/// Longest provider name, in characters.
const MAX_PROVIDER_CHARS: usize = 100;

/// Every replica polls each second: a database outage is logged once, then
/// as a periodic summary.
static POLL_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "polling provider credential changes failed: changes reach this replica when the database is back",
);

/// A provider credential as the management API shows it: never the key,
/// only its last four characters.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Credential {
    pub id: String,
    pub organization_id: String,
    pub provider: String,
    pub credential_name: String,
    /// The key's last four characters.
    pub key_hint: String,
    /// Generation of the organization's data key that sealed the key.
    pub key_version: i64,
    pub active: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
}

/// What a new credential is made of.
#[derive(Debug)]
pub struct NewCredential<'a> {
    pub organization_id: &'a str,
    /// A provider name of the catalog (the caller checks it).
    pub provider: &'a str,
    pub name: &'a str,
    /// Trimmed of surrounding whitespace before it is sealed.
    pub api_key: &'a SecretString,
    /// Whether it is the one the organization's calls use from now on.
    pub active: bool,
}

/// An update: a new name, a new key, or both.
#[derive(Debug, Default)]
pub struct CredentialChange<'a> {
    pub name: Option<&'a str>,
    pub api_key: Option<&'a SecretString>,
}

/// Who changes a credential, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The holder of `TOLLGATE_ADMIN_TOKEN`.
    PlatformAdmin,
    /// An organization API key flagged admin, by its id.
    ApiKey(String),
    /// A signed-in org_admin user, by its id.
    User(String),
}

impl Actor {
    fn kind(&self) -> &'static str {
        match self {
            Actor::PlatformAdmin => "platform_admin",
            Actor::ApiKey(_) => "api_key",
            Actor::User(_) => "user",
        }
    }

    fn id(&self) -> Option<&str> {
        match self {
            Actor::PlatformAdmin => None,
            Actor::ApiKey(id) | Actor::User(id) => Some(id),
        }
    }
}

/// Which credentials to list, newest first.
#[derive(Debug, Clone, Copy)]
pub struct ListFilter<'a> {
    pub organization_id: Option<&'a str>,
    pub provider: Option<&'a str>,
    pub active: Option<bool>,
    /// Only credentials older than this one (a credential id).
    pub before: Option<&'a str>,
    pub limit: i64,
}

/// Which audit entries to list, newest first.
#[derive(Debug, Clone, Copy)]
pub struct AuditFilter<'a> {
    pub organization_id: Option<&'a str>,
    pub credential_id: Option<&'a str>,
    /// Only entries older than this one (an audit entry id).
    pub before: Option<i64>,
    pub limit: i64,
}

/// One change of a credential: who did what, when. Never the key.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditEntry {
    pub id: i64,
    pub organization_id: String,
    pub credential_id: String,
    pub provider: String,
    /// `create`, `update`, `activate`, `deactivate` or `delete`.
    #[cfg_attr(feature = "openapi", schema(schema_with = audit_action_schema))]
    pub action: String,
    pub actor: AuditActor,
    /// The credential's name after the change.
    pub credential_name: String,
    /// The key hint after the change.
    pub key_hint: String,
    /// For an update: `api_key` and/or `credential_name`.
    pub changes: Vec<String>,
    /// Unix seconds.
    pub created_at: i64,
}

#[cfg(feature = "openapi")]
fn audit_action_schema() -> utoipa::openapi::schema::Object {
    tollgate_core::openapi::one_of(&["create", "update", "activate", "deactivate", "delete"])
}

#[cfg(feature = "openapi")]
fn actor_kind_schema() -> utoipa::openapi::schema::Object {
    let actors = [
        Actor::PlatformAdmin,
        Actor::ApiKey(String::new()),
        Actor::User(String::new()),
    ];
    tollgate_core::openapi::one_of(&actors.each_ref().map(Actor::kind))
}

/// Who made an audited change.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct AuditActor {
    /// `platform_admin`, `api_key` or `user`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(schema_with = actor_kind_schema))]
    pub kind: String,
    /// The API key's id, for `api_key`.
    pub id: Option<String>,
}

/// Organizations' provider credentials on one database. Cheap to clone.
#[derive(Clone)]
pub struct CredentialStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    root: RootKey,
    cache: Cache,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("master_key_version", &self.inner.root.version())
            .finish_non_exhaustive()
    }
}

impl CredentialStore {
    /// A store on `db` whose data keys are wrapped by `root`
    /// (see [`crate::unlock`]).
    #[must_use]
    pub fn new(db: Db, root: RootKey) -> Self {
        Self {
            inner: Arc::new(Inner {
                db,
                root,
                cache: Cache::default(),
            }),
        }
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// The generation of the master key this store was opened with.
    #[must_use]
    pub fn master_key_version(&self) -> i64 {
        self.inner.root.version()
    }

    /// Stores a new credential, sealed under the organization's data key
    /// (made on first use), and audits it.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Invalid`] for a bad name or key,
    /// [`CredentialError::ActiveConflict`] if it is to be active and the
    /// organization already has an active credential for the provider,
    /// [`CredentialError::MasterKeyRotated`], [`CredentialError::Db`].
    pub async fn create(&self, new: NewCredential<'_>, actor: &Actor) -> Result<Credential> {
        let provider = valid_provider(new.provider)?;
        let name = valid_name(new.name)?;
        let key = normalized_api_key(new.api_key)?;
        let now = time::now_millis();
        let credential = Credential {
            id: ids::new_id("cred"),
            organization_id: new.organization_id.to_owned(),
            provider: provider.to_owned(),
            credential_name: name.to_owned(),
            key_hint: key_hint(key),
            key_version: CURRENT_DATA_KEY_VERSION,
            active: new.active,
            created_at: now / 1000,
            updated_at: now / 1000,
        };
        let mut tx = self.db().begin_write().await?;
        let data_key = self
            .data_key_for_write(&mut tx, &credential.organization_id)
            .await?;
        let sealed = data_key.seal(
            key.as_bytes(),
            &aad_for(&credential.organization_id, provider),
        );
        queries::insert_credential(&mut *tx, &credential, &sealed, now).await?;
        queries::insert_audit(
            &mut *tx,
            &audit_record(&credential, "create", actor, None, now),
        )
        .await?;
        tx.commit().await?;
        self.invalidate(&credential.organization_id);
        Ok(credential)
    }

    /// A credential by id, whatever its organization (the caller checks
    /// that it may see it).
    ///
    /// # Errors
    ///
    /// [`CredentialError::NotFound`], [`CredentialError::Db`].
    pub async fn get(&self, id: &str) -> Result<Credential> {
        queries::credential_by_id(self.db().pool(), id)
            .await?
            .ok_or(CredentialError::NotFound)
    }

    /// The organization's active credential for the provider, if any.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Db`].
    pub async fn active_credential(
        &self,
        organization_id: &str,
        provider: &str,
    ) -> Result<Option<Credential>> {
        queries::active_credential(self.db().pool(), organization_id, provider).await
    }

    /// Credentials that match `filter`, newest first.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Db`].
    pub async fn list(&self, filter: &ListFilter<'_>) -> Result<Vec<Credential>> {
        queries::list_credentials(self.db().pool(), filter).await
    }

    /// Renames a credential and/or replaces its key (sealed afresh, with a
    /// new hint), and audits it.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Invalid`] for nothing to change or a bad value,
    /// [`CredentialError::NotFound`] if the organization has no such
    /// credential, [`CredentialError::MasterKeyRotated`], [`CredentialError::Db`].
    pub async fn update(
        &self,
        organization_id: &str,
        id: &str,
        change: CredentialChange<'_>,
        actor: &Actor,
    ) -> Result<Credential> {
        if change.name.is_none() && change.api_key.is_none() {
            return Err(CredentialError::Invalid {
                field: "body",
                message: "give `api_key`, `credential_name` or both".into(),
            });
        }
        let name = change.name.map(valid_name).transpose()?;
        let key = change.api_key.map(normalized_api_key).transpose()?;
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        let mut credential = queries::credential_in_org(&mut *tx, organization_id, id)
            .await?
            .ok_or(CredentialError::NotFound)?;
        let mut changes = Vec::new();
        let sealed = match key {
            Some(key) => {
                let data_key = self.data_key_for_write(&mut tx, organization_id).await?;
                credential.key_hint = key_hint(key);
                credential.key_version = CURRENT_DATA_KEY_VERSION;
                changes.push("api_key");
                Some(data_key.seal(
                    key.as_bytes(),
                    &aad_for(organization_id, &credential.provider),
                ))
            }
            None => None,
        };
        if let Some(name) = name {
            credential.credential_name = name.to_owned();
            changes.push("credential_name");
        }
        credential.updated_at = now / 1000;
        queries::update_credential(&mut *tx, &credential, sealed.as_deref(), now).await?;
        queries::insert_audit(
            &mut *tx,
            &audit_record(&credential, "update", actor, Some(changes.join(",")), now),
        )
        .await?;
        tx.commit().await?;
        self.invalidate(organization_id);
        Ok(credential)
    }

    /// Activates or deactivates a credential, and audits it. Asking for the
    /// state it is already in changes nothing.
    ///
    /// # Errors
    ///
    /// [`CredentialError::ActiveConflict`] when activating while another
    /// credential of the organization is active for the provider,
    /// [`CredentialError::NotFound`], [`CredentialError::Db`].
    pub async fn set_active(
        &self,
        organization_id: &str,
        id: &str,
        active: bool,
        actor: &Actor,
    ) -> Result<Credential> {
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        let mut credential = queries::credential_in_org(&mut *tx, organization_id, id)
            .await?
            .ok_or(CredentialError::NotFound)?;
        if credential.active == active {
            tx.rollback().await?;
            return Ok(credential);
        }
        queries::set_active(&mut *tx, &credential, active, now).await?;
        credential.active = active;
        credential.updated_at = now / 1000;
        let action = if active { "activate" } else { "deactivate" };
        queries::insert_audit(
            &mut *tx,
            &audit_record(&credential, action, actor, None, now),
        )
        .await?;
        tx.commit().await?;
        self.invalidate(organization_id);
        Ok(credential)
    }

    /// Deletes a credential: its sealed key is destroyed at once, and the
    /// deletion audited.
    ///
    /// # Errors
    ///
    /// [`CredentialError::NotFound`], [`CredentialError::Db`].
    pub async fn delete(&self, organization_id: &str, id: &str, actor: &Actor) -> Result<()> {
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        let mut credential = queries::credential_in_org(&mut *tx, organization_id, id)
            .await?
            .ok_or(CredentialError::NotFound)?;
        queries::delete_credential(&mut *tx, &credential, now).await?;
        credential.active = false;
        queries::insert_audit(
            &mut *tx,
            &audit_record(&credential, "delete", actor, None, now),
        )
        .await?;
        tx.commit().await?;
        self.invalidate(organization_id);
        Ok(())
    }

    /// Audit entries that match `filter`, newest first.
    ///
    /// # Errors
    ///
    /// [`CredentialError::Db`].
    pub async fn audit(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditEntry>> {
        queries::list_audit(self.db().pool(), filter).await
    }

    /// The key that the organization's calls to `provider` must use: its
    /// active credential's, decrypted, or `None` when it has none. Answered
    /// from memory once cached (both ways); the database is read only on a
    /// miss.
    ///
    /// # Errors
    ///
    /// [`CredentialError::DecryptionFailed`] (or another crypto error) when
    /// the stored key does not open: it was altered or moved from another
    /// row; [`CredentialError::MasterKeyRotated`] when this process's
    /// master key is two rotations old; [`CredentialError::Db`].
    pub async fn active_key(
        &self,
        organization_id: &str,
        provider: &str,
    ) -> Result<Option<Arc<SecretString>>> {
        let read = || {
            let store = self.clone();
            let (organization_id, provider) = (organization_id.to_owned(), provider.to_owned());
            async move { store.read_active_key(&organization_id, &provider).await }
        };
        self.inner
            .cache
            .active_key(organization_id, provider, read)
            .await
            .map_err(CredentialError::Shared)
    }

    /// The organization's active key for `provider`, read from the database
    /// and opened.
    async fn read_active_key(
        &self,
        organization_id: &str,
        provider: &str,
    ) -> Result<Option<Arc<SecretString>>> {
        let Some(sealed) =
            queries::active_sealed_key(self.db().pool(), organization_id, provider).await?
        else {
            return Ok(None);
        };
        let data_key = self
            .data_key_for_read(organization_id, sealed.key_version)
            .await?;
        let key = data_key.open(&sealed.encrypted_key, &aad_for(organization_id, provider))?;
        Ok(Some(Arc::new(key)))
    }

    /// Organizations' active keys read from the database since the start
    /// (the cache's misses; requests that miss one together read it once).
    pub fn active_key_reads(&self) -> u64 {
        self.inner.cache.active_key_reads()
    }

    /// Forgets the organization's cached keys on this replica.
    pub fn invalidate(&self, organization_id: &str) {
        self.inner.cache.invalidate(|org| org == organization_id);
    }

    /// Drops the cached keys of organizations whose credentials changed on
    /// any replica, polling every `interval`. Runs until its task is aborted.
    pub async fn watch_changes(self, interval: Duration) {
        let mut poll = ChangePoll::new(time::now_millis());
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.poll_changes(&mut poll).await {
                Ok(()) => POLL_FAILED.recovered(),
                Err(e) => POLL_FAILED.failed(&e),
            }
        }
    }

    /// One poll of [`CredentialStore::watch_changes`].
    async fn poll_changes(&self, poll: &mut ChangePoll) -> Result<()> {
        let started = time::now_millis();
        let rows = queries::credentials_changed_since(self.db().pool(), poll.from()).await?;
        let organizations = poll.changed(started, rows);
        if !organizations.is_empty() {
            let changed: HashSet<&str> = organizations.iter().map(String::as_str).collect();
            self.inner.cache.invalidate(|org| changed.contains(org));
        }
        Ok(())
    }

    /// The organization's current data key, to seal with: from the cache,
    /// else unwrapped from the database, else made, wrapped and stored in
    /// `tx` (only while this process's master key is the current one).
    async fn data_key_for_write(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        organization_id: &str,
    ) -> Result<Arc<DataKey>> {
        let version = CURRENT_DATA_KEY_VERSION;
        if let Some(key) = self.inner.cache.data_key(organization_id, version) {
            return Ok(key);
        }
        let root = &self.inner.root;
        let aad = data_key_aad(organization_id, version);
        let stored =
            data_keys::wrapped(&mut **tx, organization_id, version, root.version()).await?;
        let key = match stored {
            Some(wrapped) => root.key().unwrap(&wrapped, &aad)?,
            None => {
                if !confirm_master_key_version(tx, root.version()).await? {
                    return Err(CredentialError::MasterKeyRotated);
                }
                let key = DataKey::generate();
                let wrapped = root.key().wrap(&key, &aad);
                let now = time::now_millis();
                if data_keys::insert_wrapped(
                    tx,
                    organization_id,
                    version,
                    root.version(),
                    &wrapped,
                    now,
                )
                .await?
                {
                    key
                } else {
                    // Another replica made one first: use that one.
                    let wrapped =
                        data_keys::wrapped(&mut **tx, organization_id, version, root.version())
                            .await?
                            .ok_or(CredentialError::Malformed("data key vanished"))?;
                    root.key().unwrap(&wrapped, &aad)?
                }
            }
        };
        let key = Arc::new(key);
        self.inner
            .cache
            .store_data_key(organization_id, version, key.clone());
        Ok(key)
    }

    /// The organization's data key of `version`, to open with.
    async fn data_key_for_read(&self, organization_id: &str, version: i64) -> Result<Arc<DataKey>> {
        if let Some(key) = self.inner.cache.data_key(organization_id, version) {
            return Ok(key);
        }
        let root = &self.inner.root;
        // A sealed key whose data key is not wrapped under this process's
        // master key: the master key has moved on by two rotations.
        let wrapped =
            data_keys::wrapped(self.db().pool(), organization_id, version, root.version())
                .await?
                .ok_or(CredentialError::MasterKeyRotated)?;
        let key = Arc::new(
            root.key()
                .unwrap(&wrapped, &data_key_aad(organization_id, version))?,
        );
        self.inner
            .cache
            .store_data_key(organization_id, version, key.clone());
        Ok(key)
    }
}

fn audit_record<'a>(
    credential: &'a Credential,
    action: &'static str,
    actor: &'a Actor,
    changes: Option<String>,
    now: i64,
) -> AuditRecord<'a> {
    AuditRecord {
        credential,
        action,
        actor_type: actor.kind(),
        actor_id: actor.id(),
        changes,
        now,
    }
}

fn valid_provider(provider: &str) -> Result<&str> {
    if provider.is_empty()
        || provider.chars().count() > MAX_PROVIDER_CHARS
        || provider.chars().any(char::is_control)
    {
        return Err(CredentialError::Invalid {
            field: "provider",
            message: format!("must be 1 to {MAX_PROVIDER_CHARS} characters"),
        });
    }
    Ok(provider)
}

fn valid_name(name: &str) -> Result<&str> {
    let name = name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(CredentialError::Invalid {
            field: "credential_name",
            message: format!(
                "must be 1 to {MAX_NAME_CHARS} characters, without control characters"
            ),
        });
    }
    Ok(name)
}

/// A provider key as it will be stored: trimmed of surrounding whitespace.
/// It goes into HTTP headers, so only visible ASCII is accepted.
///
/// # Errors
///
/// [`CredentialError::Invalid`] for an empty, overlong or non-ASCII key; the
/// message never repeats it.
pub fn normalized_api_key(key: &SecretString) -> Result<&str> {
    let key = key.expose_secret().trim();
    if key.is_empty() || key.len() > MAX_KEY_LEN || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(CredentialError::Invalid {
            field: "api_key",
            message: format!(
                "must be 1 to {MAX_KEY_LEN} visible ASCII characters (no spaces or control characters)"
            ),
        });
    }
    Ok(key)
}

#[cfg(test)]
mod tests;
