//! What the request path reads without a database round trip: each
//! organization's active provider keys, decrypted (or the fact that it has
//! none for a provider), and the organizations' unwrapped data keys.
//!
//! Keys stay in [`SecretString`]s / [`DataKey`]s: zeroized when dropped,
//! `*****` when printed.

use foldhash::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

use secrecy::SecretString;

use crate::data_key::DataKey;

/// Past this many organizations a map starts over, bounding its memory.
const MAX_CACHED_ORGS: usize = 100_000;

/// An organization's active key for one provider: `None` when it has none.
pub(crate) type ActiveKey = Option<Arc<SecretString>>;

#[derive(Default)]
pub(crate) struct Cache {
    /// Organization → provider → its active key.
    active: RwLock<HashMap<String, HashMap<String, ActiveKey>>>,
    /// (organization, data key version) → the data key. Data keys never
    /// change (a master-key rotation re-wraps them), so these are never
    /// invalidated.
    data_keys: RwLock<HashMap<(String, i64), Arc<DataKey>>>,
    /// Bumped by every invalidation, under the `active` write lock: a load
    /// that began before an invalidation does not store what it read.
    epoch: AtomicU64,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding a lock cannot leave a map half updated.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

impl Cache {
    /// The cached active key: `None` on a miss, `Some(None)` when the
    /// organization is known to have no active credential for `provider`.
    pub fn active_key(&self, organization_id: &str, provider: &str) -> Option<ActiveKey> {
        read(&self.active)
            .get(organization_id)?
            .get(provider)
            .cloned()
    }

    /// Take before loading from the database; give to [`Cache::store_active_key`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Caches what a load read, unless an invalidation happened since the
    /// load took `epoch` (what it read may be stale then).
    pub fn store_active_key(
        &self,
        organization_id: &str,
        provider: &str,
        key: ActiveKey,
        epoch: u64,
    ) {
        let mut active = write(&self.active);
        if self.epoch.load(Ordering::Acquire) != epoch {
            return;
        }
        if active.len() >= MAX_CACHED_ORGS && !active.contains_key(organization_id) {
            active.clear();
        }
        active
            .entry(organization_id.to_owned())
            .or_default()
            .insert(provider.to_owned(), key);
    }

    /// Forgets an organization's active keys (they changed).
    pub fn invalidate(&self, organization_id: &str) {
        let mut active = write(&self.active);
        active.remove(organization_id);
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    pub fn data_key(&self, organization_id: &str, version: i64) -> Option<Arc<DataKey>> {
        read(&self.data_keys)
            .get(&(organization_id.to_owned(), version))
            .cloned()
    }

    pub fn store_data_key(&self, organization_id: &str, version: i64, key: Arc<DataKey>) {
        let mut data_keys = write(&self.data_keys);
        if data_keys.len() >= MAX_CACHED_ORGS {
            data_keys.clear();
        }
        data_keys.insert((organization_id.to_owned(), version), key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn key(text: &str) -> ActiveKey {
        Some(Arc::new(SecretString::from(text)))
    }

    #[test]
    fn stored_key_is_read_back_per_organization_and_provider() {
        let cache = Cache::default();

        cache.store_active_key("org_a", "openai", key("sk-a"), cache.epoch());
        cache.store_active_key("org_a", "anthropic", None, cache.epoch());

        let hit = cache.active_key("org_a", "openai").unwrap().unwrap();
        assert_eq!(hit.expose_secret(), "sk-a");
        assert!(cache.active_key("org_a", "anthropic").unwrap().is_none());
        assert!(cache.active_key("org_a", "gemini").is_none());
        assert!(cache.active_key("org_b", "openai").is_none());
    }

    #[test]
    fn invalidation_forgets_only_that_organization() {
        let cache = Cache::default();
        cache.store_active_key("org_a", "openai", key("sk-a"), cache.epoch());
        cache.store_active_key("org_b", "openai", key("sk-b"), cache.epoch());

        cache.invalidate("org_a");

        assert!(cache.active_key("org_a", "openai").is_none());
        assert!(cache.active_key("org_b", "openai").is_some());
    }

    #[test]
    fn a_load_that_began_before_an_invalidation_is_not_stored() {
        let cache = Cache::default();
        let epoch = cache.epoch();

        cache.invalidate("org_a");
        cache.store_active_key("org_a", "openai", key("sk-stale"), epoch);

        assert!(cache.active_key("org_a", "openai").is_none());
    }
}
