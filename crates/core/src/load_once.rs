//! A cache whose misses load once: the requests that miss the same entry
//! together wait for one database read instead of making one each (after a
//! key changes, or at a replica's start under load, a busy gateway's every
//! connection misses it at once). The API key cache and the cache of
//! organizations' own provider keys are built on it.

use foldhash::HashMap;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

/// Past this many entries the cache starts over, bounding its memory.
const MAX_ENTRIES: usize = 100_000;

/// What a load found: the entry, none (nothing to cache), or the load's
/// error, shared by every request that waited for it.
pub type Loaded<V, E = sqlx::Error> = Result<Option<V>, Arc<E>>;

type Load<V, E> = Shared<BoxFuture<'static, Loaded<V, E>>>;

enum Slot<V, E> {
    Ready(V),
    Loading(Load<V, E>),
}

/// Entries by id, each loaded at its first use and kept until removed.
pub struct LoadOnce<V, E = sqlx::Error> {
    slots: RwLock<HashMap<String, Slot<V, E>>>,
    /// Loads begun: the cache's misses.
    loads: AtomicU64,
}

impl<V, E> Default for LoadOnce<V, E> {
    fn default() -> Self {
        LoadOnce {
            slots: RwLock::default(),
            loads: AtomicU64::new(0),
        }
    }
}

impl<V, E> LoadOnce<V, E>
where
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
{
    /// The entry of `id`: cached, else read by `load`, which runs once for
    /// all the requests that miss it meanwhile. What a load finds is cached
    /// only if `id` was not removed while it ran (it may be stale then);
    /// nothing is cached when it finds nothing or fails.
    pub async fn get_or_load<F>(&self, id: &str, load: impl FnOnce() -> F) -> Loaded<V, E>
    where
        F: Future<Output = Result<Option<V>, E>> + Send + 'static,
    {
        let pending = match self.read().get(id) {
            Some(Slot::Ready(value)) => return Ok(Some(value.clone())),
            Some(Slot::Loading(pending)) => Some(pending.clone()),
            None => None,
        };
        let pending = match pending {
            Some(pending) => pending,
            None => self.begin(id, load),
        };
        let loaded = pending.clone().await;
        self.end(id, &pending, &loaded);
        loaded
    }

    /// Begins the load of `id`, unless another request has begun it (or
    /// ended it) since this one looked.
    fn begin<F>(&self, id: &str, load: impl FnOnce() -> F) -> Load<V, E>
    where
        F: Future<Output = Result<Option<V>, E>> + Send + 'static,
    {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        match slots.get(id) {
            Some(Slot::Loading(pending)) => return pending.clone(),
            Some(Slot::Ready(value)) => {
                let found: Loaded<V, E> = Ok(Some(value.clone()));
                return futures::future::ready(found).boxed().shared();
            }
            None => {}
        }
        if slots.len() >= MAX_ENTRIES {
            slots.clear();
        }
        self.loads.fetch_add(1, Ordering::Relaxed);
        let pending = load().map(|r| r.map_err(Arc::new)).boxed().shared();
        slots.insert(id.to_owned(), Slot::Loading(pending.clone()));
        pending
    }

    /// Caches what `pending` found, if `id`'s slot is still that load's.
    fn end(&self, id: &str, pending: &Load<V, E>, loaded: &Loaded<V, E>) {
        let mut slots = self.slots.write().unwrap_or_else(PoisonError::into_inner);
        let Some(slot) = slots.get_mut(id) else {
            return;
        };
        if !matches!(slot, Slot::Loading(current) if current.ptr_eq(pending)) {
            return;
        }
        match loaded {
            Ok(Some(value)) => *slot = Slot::Ready(value.clone()),
            Ok(None) | Err(_) => {
                slots.remove(id);
            }
        }
    }

    /// Forgets `id` (it changed): a load running now does not cache what it finds.
    pub fn remove(&self, id: &str) {
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Forgets every entry whose id `changed` says changed: one pass over
    /// the whole cache.
    pub fn remove_where(&self, changed: impl Fn(&str) -> bool) {
        self.slots
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|id, _| !changed(id));
    }

    /// Entries cached or being loaded.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads begun since the start.
    pub fn loads(&self) -> u64 {
        self.loads.load(Ordering::Relaxed)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Slot<V, E>>> {
        // A panic while holding the lock cannot leave the map half updated.
        self.slots.read().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use tokio::sync::oneshot;

    type Runs = Arc<AtomicUsize>;
    type Answer = tokio::task::JoinHandle<Loaded<u32>>;

    /// A load that finds `value` once `go` fires, counting its runs.
    fn gated(
        runs: &Runs,
        go: oneshot::Receiver<()>,
        value: u32,
    ) -> impl FnOnce() -> BoxFuture<'static, Result<Option<u32>, sqlx::Error>> + use<> {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::SeqCst);
            async move {
                let _ = go.await;
                Ok(Some(value))
            }
            .boxed()
        }
    }

    /// A request for `key_a` whose load, if it runs, finds `value` at once.
    fn request(cache: &Arc<LoadOnce<u32>>, runs: &Runs, value: u32) -> Answer {
        let (go, gate) = oneshot::channel();
        let _ = go.send(());
        let (cache, load) = (cache.clone(), gated(runs, gate, value));
        tokio::spawn(async move { cache.get_or_load("key_a", load).await })
    }

    /// A request for `key_a` that begins its load, which finds `value`
    /// when the sender fires; returned once the load is under way.
    async fn begun(
        cache: &Arc<LoadOnce<u32>>,
        runs: &Runs,
        value: u32,
    ) -> (oneshot::Sender<()>, Answer) {
        let (go, gate) = oneshot::channel();
        let (cache, load) = (cache.clone(), gated(runs, gate, value));
        let answer = tokio::spawn(async move { cache.get_or_load("key_a", load).await });
        tokio::task::yield_now().await;
        (go, answer)
    }

    #[tokio::test]
    async fn requests_that_miss_together_share_one_load() {
        let cache = Arc::new(LoadOnce::<u32>::default());
        let runs = Runs::default();
        let (go, first) = begun(&cache, &runs, 7).await;
        let others: Vec<Answer> = (0..20).map(|_| request(&cache, &runs, 8)).collect();
        tokio::task::yield_now().await;
        let _ = go.send(());
        assert_eq!(first.await.unwrap().unwrap(), Some(7));
        for other in others {
            assert_eq!(other.await.unwrap().unwrap(), Some(7));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(cache.loads(), 1);
        // Cached now: no load at all.
        let cached = request(&cache, &runs, 9).await.unwrap();
        assert_eq!(cached.unwrap(), Some(7));
        assert_eq!(runs.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_load_running_when_its_entry_is_removed_is_not_cached() {
        let cache = Arc::new(LoadOnce::<u32>::default());
        let runs = Runs::default();
        let (go, waiting) = begun(&cache, &runs, 1).await;
        assert_eq!(cache.len(), 1);
        // The key changes while its old row is being read.
        cache.remove("key_a");
        let _ = go.send(());
        // The request that began before the change gets what it read...
        assert_eq!(waiting.await.unwrap().unwrap(), Some(1));
        // ...but the next one reads the key again.
        let fresh = request(&cache, &runs, 2).await.unwrap();
        assert_eq!(fresh.unwrap(), Some(2));
        assert_eq!(runs.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn nothing_found_and_errors_are_not_cached_and_reach_every_waiter() {
        let cache = LoadOnce::<u32>::default();
        let none = cache.get_or_load("key_a", || async { Ok(None) }).await;
        assert_eq!(none.unwrap(), None);
        assert_eq!(cache.len(), 0);
        let failed = cache
            .get_or_load("key_a", || async { Err(sqlx::Error::PoolTimedOut) })
            .await;
        assert!(matches!(
            failed.as_ref().map_err(|e| &**e),
            Err(sqlx::Error::PoolTimedOut)
        ));
        assert_eq!(cache.len(), 0);
        let found = cache.get_or_load("key_a", || async { Ok(Some(3)) }).await;
        assert_eq!(found.unwrap(), Some(3));
        assert_eq!(cache.loads(), 3);
    }
}
