//! What the request path reads without a database round trip: each
//! organization's active provider keys, decrypted (or the fact that it has
//! none for a provider), and the organizations' unwrapped data keys.
//!
//! Keys stay in [`SecretString`]s / [`DataKey`]s: zeroized when dropped,
//! `*****` when printed.

use foldhash::HashMap;
use futures::FutureExt;
use std::future::Future;
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tollgate_core::load_once::LoadOnce;

use secrecy::SecretString;

use crate::data_key::DataKey;
use crate::error::CredentialError;

/// Past this many organizations a map starts over, bounding its memory.
const MAX_CACHED_ORGS: usize = 100_000;

/// An organization's active key for one provider: `None` when it has none.
pub(crate) type ActiveKey = Option<Arc<SecretString>>;

#[derive(Default)]
pub(crate) struct Cache {
    /// (organization, provider) → its active key. The requests that miss
    /// one together wait for one read; a read running when its organization
    /// is invalidated is not kept (it may be stale).
    active: LoadOnce<ActiveKey, CredentialError>,
    /// (organization, data key version) → the data key. Data keys never
    /// change (a master-key rotation re-wraps them), so these are never
    /// invalidated.
    data_keys: RwLock<HashMap<(String, i64), Arc<DataKey>>>,
}

fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    // A panic while holding a lock cannot leave a map half updated.
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

/// The active keys' cache id: organization and provider.
fn active_id(organization_id: &str, provider: &str) -> String {
    [organization_id, "\n", provider].concat()
}

impl Cache {
    /// The organization's active key for `provider` (`None`: it has none),
    /// read by `load` on a miss.
    pub async fn active_key<F>(
        &self,
        organization_id: &str,
        provider: &str,
        load: impl FnOnce() -> F,
    ) -> Result<ActiveKey, Arc<CredentialError>>
    where
        F: Future<Output = Result<ActiveKey, CredentialError>> + Send + 'static,
    {
        let id = active_id(organization_id, provider);
        let loaded = self
            .active
            .get_or_load(&id, || load().map(|key| key.map(Some)))
            .await?;
        Ok(loaded.flatten())
    }

    /// Active keys read since the start: the cache's misses.
    pub fn active_key_reads(&self) -> u64 {
        self.active.loads()
    }

    /// Forgets the active keys of the organizations that `changed` names:
    /// one pass over the cache, however many changed.
    pub fn invalidate(&self, changed: impl Fn(&str) -> bool) {
        self.active.remove_where(|id| {
            id.split_once('\n')
                .is_some_and(|(organization_id, _)| changed(organization_id))
        });
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
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(text: &str) -> ActiveKey {
        Some(Arc::new(SecretString::from(text)))
    }

    /// The cached key of `organization_id` for `provider`, or what `found`
    /// says if the cache must read it (counted in `reads`).
    async fn lookup(
        cache: &Cache,
        reads: &Arc<AtomicUsize>,
        organization_id: &str,
        provider: &str,
        found: ActiveKey,
    ) -> ActiveKey {
        let reads = reads.clone();
        let load = || {
            reads.fetch_add(1, Ordering::SeqCst);
            async move { Ok(found) }
        };
        cache
            .active_key(organization_id, provider, load)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_key_is_read_once_per_organization_and_provider() {
        let (cache, reads) = (Cache::default(), Arc::new(AtomicUsize::new(0)));
        lookup(&cache, &reads, "org_a", "openai", key("sk-a")).await;
        lookup(&cache, &reads, "org_a", "anthropic", None).await;

        let hit = lookup(&cache, &reads, "org_a", "openai", key("other")).await;
        assert_eq!(hit.unwrap().expose_secret(), "sk-a");
        assert!(
            lookup(&cache, &reads, "org_a", "anthropic", key("other"))
                .await
                .is_none()
        );
        assert_eq!(
            reads.load(Ordering::SeqCst),
            2,
            "hits, the known absence included, read nothing"
        );
        let other = lookup(&cache, &reads, "org_b", "openai", key("sk-b")).await;
        assert_eq!(other.unwrap().expose_secret(), "sk-b");
    }

    #[tokio::test]
    async fn invalidation_forgets_only_that_organization() {
        let (cache, reads) = (Cache::default(), Arc::new(AtomicUsize::new(0)));
        lookup(&cache, &reads, "org_a", "openai", key("sk-a")).await;
        lookup(&cache, &reads, "org_a", "gemini", key("g-a")).await;
        lookup(&cache, &reads, "org_ab", "openai", key("sk-ab")).await;

        cache.invalidate(|org| org == "org_a");

        let fresh = lookup(&cache, &reads, "org_a", "openai", key("sk-new")).await;
        assert_eq!(fresh.unwrap().expose_secret(), "sk-new");
        let fresh = lookup(&cache, &reads, "org_a", "gemini", key("g-new")).await;
        assert_eq!(fresh.unwrap().expose_secret(), "g-new");
        let kept = lookup(&cache, &reads, "org_ab", "openai", key("other")).await;
        assert_eq!(kept.unwrap().expose_secret(), "sk-ab");
        assert_eq!(reads.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_read_running_when_its_organization_is_invalidated_is_not_kept() {
        let cache = Arc::new(Cache::default());
        let (go, gate) = tokio::sync::oneshot::channel::<()>();
        let reading = tokio::spawn({
            let cache = cache.clone();
            async move {
                let load = || async move {
                    let _ = gate.await;
                    Ok(key("sk-stale"))
                };
                cache.active_key("org_a", "openai", load).await.unwrap()
            }
        });
        tokio::task::yield_now().await;

        cache.invalidate(|org| org == "org_a");
        let _ = go.send(());
        assert!(reading.await.unwrap().is_some());

        let reads = Arc::new(AtomicUsize::new(0));
        let fresh = lookup(&cache, &reads, "org_a", "openai", key("sk-new")).await;
        assert_eq!(fresh.unwrap().expose_secret(), "sk-new");
    }
}
