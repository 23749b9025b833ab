//! Gateway instances: registration, heartbeats, returning the leases of
//! instances that died, and the fence that keeps an instance cut off from
//! the database from spending leases the others may have returned.

use crate::{Billing, BillingError};
use sqlx::Row;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::{Db, ids, time};

/// The heartbeat and the return of dead instances' leases run every few
/// seconds on every replica: a database outage is logged once, then as a
/// periodic summary.
static HEARTBEAT_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "billing heartbeat failed: other replicas may take this one for dead if it lasts",
);
static RETURN_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "returning dead instances' leases failed: they are returned when the database is back",
);

/// An instance whose last heartbeat to reach the database is older than
/// this fraction of the instance timeout stops spending from its leases.
/// Two thirds: heartbeats come every third of the timeout (at most every
/// 5 s), so a healthy instance's last one is at most a third old plus its
/// own round trip, and one late heartbeat never fences it; the last third
/// is the margin before the others may take it for dead (at the timeout,
/// by their clocks and at their next heartbeat), for the skew between
/// their clocks and this one's and for a call that checked the fence just
/// before it closed to take its hold.
const FENCE_NUMERATOR: u32 = 2;
const FENCE_DENOMINATOR: u32 = 3;

/// Longest wait, once the database is back, for an instance that was taken
/// for dead to commit what it journaled and register again; else it stays
/// fenced and tries again at its next heartbeat.
const REGISTER_AGAIN_LIMIT: Duration = Duration::from_secs(10);

/// Whether this instance may spend from its in-memory leases. Checked on
/// every hold, so only atomics: no database round trip.
pub(crate) struct Fence {
    origin: Instant,
    /// When (ms after `origin`) the last heartbeat that reached the
    /// database was sent: at or before the `heartbeat_at` the others read.
    heartbeat_sent: AtomicU64,
    /// Closed when the last heartbeat is older than this (ms);
    /// `u64::MAX` on a single node, where no other instance returns leases.
    after_ms: u64,
    /// Set while this instance, found taken for dead, drops its leases and
    /// registers again.
    recovering: AtomicBool,
}

impl Fence {
    pub fn new(instance_timeout: Duration, single_node: bool) -> Fence {
        let after = instance_timeout * FENCE_NUMERATOR / FENCE_DENOMINATOR;
        Fence {
            // Before the registration: its heartbeat_at is at or after this.
            origin: Instant::now(),
            heartbeat_sent: AtomicU64::new(0),
            after_ms: if single_node {
                u64::MAX
            } else {
                u64::try_from(after.as_millis()).unwrap_or(u64::MAX)
            },
            recovering: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// How long ago (ms) the last heartbeat that reached the database was sent.
    fn silence_ms(&self) -> u64 {
        self.now_ms()
            .saturating_sub(self.heartbeat_sent.load(Ordering::Acquire))
    }

    /// Whether calls must not be served from this instance's leases.
    pub fn is_closed(&self) -> bool {
        self.recovering.load(Ordering::Acquire) || self.silence_ms() > self.after_ms
    }

    /// Why the fence is closed, in words for an operator; `None` while it
    /// is open.
    pub fn reason(&self) -> Option<String> {
        if self.recovering.load(Ordering::Acquire) {
            return Some(
                "this instance was taken for dead by the others and is registering again: calls that need credit get 503 until it has".into(),
            );
        }
        let silence = self.silence_ms();
        (silence > self.after_ms).then(|| {
            format!(
                "no heartbeat of this instance has reached the database for {silence} ms (two thirds of the instance timeout): calls that need credit get 503 until one does"
            )
        })
    }

    /// The refusal of a call while the fence is closed: what a call that
    /// needs the database gets while it is away.
    pub fn refusal(&self) -> BillingError {
        BillingError::Unavailable(format!(
            "this instance has not reached the database for {} ms: other instances may take it for dead and return its leases",
            self.silence_ms()
        ))
    }

    /// A heartbeat sent at `sent` (see [`Fence::now_ms`]) reached the database.
    fn reached(&self, sent: u64) {
        self.heartbeat_sent.fetch_max(sent, Ordering::AcqRel);
    }
}

pub(crate) async fn register(db: &Db) -> Result<String, BillingError> {
    let id = ids::new_id("gw");
    insert_instance(db, &id).await?;
    Ok(id)
}

async fn insert_instance(db: &Db, id: &str) -> Result<(), BillingError> {
    let now = time::now_millis();
    sqlx::query("INSERT INTO gateway_instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)")
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Returns every lease not held by `keep` (single node start-up).
pub(crate) async fn return_leases_of_others(db: &Db, keep: &str) -> Result<u64, BillingError> {
    // The rows first: leases are only returned once their holder's row is gone.
    sqlx::query("DELETE FROM gateway_instances WHERE id <> $1")
        .bind(keep)
        .execute(db.pool())
        .await?;
    let rows = sqlx::query(
        "SELECT instance_id FROM credit_leases WHERE instance_id <> $1 \
         UNION SELECT instance_id FROM api_key_budget_leases WHERE instance_id <> $1",
    )
    .bind(keep)
    .fetch_all(db.pool())
    .await?;
    let mut returned = 0;
    for row in rows {
        let id: String = row.try_get("instance_id")?;
        returned += return_leases_of(db, &id).await?;
    }
    Ok(returned)
}

/// Returns all credit and budget leases of one instance whose
/// `gateway_instances` row is gone (each lease is deleted only while the
/// row is absent, so a lease an instance took after it registered again
/// is never returned from under it).
async fn return_leases_of(db: &Db, instance_id: &str) -> Result<u64, BillingError> {
    let holds = crate::budgets::return_leases_of_keys(db, instance_id).await?;
    Ok(holds + return_credit_leases_of(db, instance_id).await?)
}

/// Returns all credit leases of one instance to their organizations.
async fn return_credit_leases_of(db: &Db, instance_id: &str) -> Result<u64, BillingError> {
    let leases = sqlx::query("SELECT organization_id FROM credit_leases WHERE instance_id = $1")
        .bind(instance_id)
        .fetch_all(db.pool())
        .await?;
    let mut returned = 0;
    for row in leases {
        let org: String = row.try_get("organization_id")?;
        let mut tx = db.begin_write().await?;
        // Deleting first takes the write lock and tells how much to return, once.
        let deleted = sqlx::query(
            "DELETE FROM credit_leases WHERE instance_id = $1 AND organization_id = $2 \
             AND NOT EXISTS (SELECT 1 FROM gateway_instances WHERE id = $1) RETURNING amount",
        )
        .bind(instance_id)
        .bind(&org)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = deleted {
            let amount: i64 = row.try_get("amount")?;
            sqlx::query(
                "UPDATE credit_accounts SET reserved = reserved - $1, updated_at = $2 WHERE organization_id = $3",
            )
            .bind(amount)
            .bind(time::now_millis())
            .bind(&org)
            .execute(&mut *tx)
            .await?;
            returned += 1;
        }
        tx.commit().await?;
    }
    Ok(returned)
}

/// Longest wait at a clean stop for settlements to be committed.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(10);

impl Billing {
    /// Forever: returns idle leases, and every `interval` heartbeats and
    /// returns the leases of dead instances.
    pub async fn maintain(self, interval: Duration) {
        let lease_idle = self.inner.options.lease_idle;
        let mut idle_ticker =
            tokio::time::interval(lease_idle.clamp(Duration::from_millis(100), interval));
        // A ticker of its own, so that heartbeats come every `interval`
        // (the fence counts on it), not at the first idle tick after it.
        let mut heartbeats = tokio::time::interval(interval);
        heartbeats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = idle_ticker.tick() => self.nudge_idle_leases(lease_idle),
                _ = heartbeats.tick() => {
                    self.keep_alive().await;
                    self.return_leases_of_the_dead().await;
                }
            }
        }
    }

    /// Asks the committer to return the leases idle for `lease_idle`, even
    /// when no call comes to settle.
    fn nudge_idle_leases(&self, lease_idle: Duration) {
        for org in self.inner.leases.idle_organizations(lease_idle) {
            let _ = self.inner.committer.send(crate::writer::Job::Nudge(org));
        }
        for account in self.inner.budget_leases.idle_organizations(lease_idle) {
            let _ = self
                .inner
                .committer
                .send(crate::writer::Job::NudgeBudget(account));
        }
    }

    async fn return_leases_of_the_dead(&self) {
        let limit = self.inner.options.db_timeout;
        let timeout = self.inner.options.instance_timeout;
        let timeout_ms = i64::try_from(timeout.as_millis()).unwrap_or(i64::MAX);
        match crate::within(limit * 4, self.return_dead_instances_leases(timeout_ms)).await {
            Ok(n) => {
                RETURN_FAILED.recovered();
                if n > 0 {
                    tracing::info!(
                        leases = n,
                        "returned the credit leases of dead gateway instances"
                    );
                }
            }
            Err(e) => RETURN_FAILED.failed(&e),
        }
    }

    /// One heartbeat. If this instance's row is gone (the others took it
    /// for dead and returned its leases), it drops its leases and registers
    /// again. Logs when the fence closes and when it opens again.
    pub(crate) async fn keep_alive(&self) {
        let fence = &self.inner.fence;
        let was_closed = fence.is_closed();
        let sent = fence.now_ms();
        let limit = self.inner.options.db_timeout;
        match crate::within(limit, self.heartbeat()).await {
            Ok(true) => {
                HEARTBEAT_FAILED.recovered();
                fence.reached(sent);
                // A registration again that ended after its insert.
                fence.recovering.store(false, Ordering::Release);
            }
            Ok(false) => {
                HEARTBEAT_FAILED.recovered();
                tracing::warn!(
                    "this instance was taken for dead (no heartbeat for the instance timeout) and its leases were returned: it drops them and registers again"
                );
                if let Err(e) = crate::within(REGISTER_AGAIN_LIMIT, self.register_again()).await {
                    tracing::warn!(error = %e, "registering again failed; tried again at the next heartbeat");
                }
            }
            Err(e) => HEARTBEAT_FAILED.failed(&e),
        }
        let closed = fence.is_closed();
        if closed && !was_closed {
            tracing::warn!(
                silence_ms = fence.silence_ms(),
                "no heartbeat reached the database for two thirds of the instance timeout: calls are no longer served from this instance's leases (503) until one does"
            );
        } else if was_closed && !closed {
            tracing::info!("a heartbeat reached the database: calls are served from leases again");
        }
    }

    /// Returns whether this instance's row was still there.
    async fn heartbeat(&self) -> Result<bool, BillingError> {
        let done = sqlx::query("UPDATE gateway_instances SET heartbeat_at = $1 WHERE id = $2")
            .bind(time::now_millis())
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// After the others took this instance for dead and returned its
    /// leases: drops the leases it holds in memory (not returned again:
    /// they are), commits what it journaled, and registers again under the
    /// same id. The fence stays closed meanwhile.
    async fn register_again(&self) -> Result<(), BillingError> {
        let fence = &self.inner.fence;
        fence.recovering.store(true, Ordering::Release);
        // Until registered again, no top-up is in flight (one that was has
        // ended) and none starts: none adds to a dropped lease, and no new
        // lease is taken by an instance without a row.
        let gate = self.inner.refills.write().await;
        if *gate {
            return Err(BillingError::ShutDown);
        }
        // Calls in flight keep their holds; their charges come out of the
        // next lease if one is taken before they settle, else lower only
        // the balance (see `LeaseBook::drop_leases`).
        self.inner.leases.drop_leases();
        self.inner.budget_leases.drop_leases();
        // The settlements so far, charged to the returned leases (their rows
        // are gone: they lower only the balance), are committed before this
        // instance takes a lease again, which they would otherwise be
        // charged to.
        self.flush_queue().await?;
        // A lease of this instance the others have not returned yet.
        return_leases_of(self.db(), self.instance_id()).await?;
        let sent = fence.now_ms();
        insert_instance(self.db(), self.instance_id()).await?;
        fence.reached(sent);
        fence.recovering.store(false, Ordering::Release);
        drop(gate);
        tracing::info!("registered again: calls are served from new leases");
        Ok(())
    }

    /// Returns the leases of every instance silent for `timeout_ms`, and
    /// forgets those instances. Returns how many leases were returned.
    pub async fn return_dead_instances_leases(&self, timeout_ms: i64) -> Result<u64, BillingError> {
        let cutoff = time::now_millis() - timeout_ms;
        // The rows first, in one statement: a heartbeat that comes first
        // keeps its instance (and its leases), one that comes after finds
        // its row gone and its instance registers again.
        sqlx::query("DELETE FROM gateway_instances WHERE heartbeat_at < $1 AND id <> $2")
            .bind(cutoff)
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
        let dead = sqlx::query(
            "SELECT l.instance_id FROM credit_leases l WHERE l.instance_id <> $1 AND NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = l.instance_id) \
             UNION SELECT h.instance_id FROM api_key_budget_leases h WHERE h.instance_id <> $1 AND NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = h.instance_id)",
        )
        .bind(self.instance_id())
        .fetch_all(self.db().pool())
        .await?;
        let mut returned = 0;
        for row in dead {
            let id: String = row.try_get("instance_id")?;
            returned += return_leases_of(self.db(), &id).await?;
        }
        Ok(returned)
    }

    /// A clean stop: waits for pending settlements, returns this instance's
    /// leases and removes it. Calls made after this fail with `ShutDown`.
    /// With the database away, it gives up after `SHUTDOWN_FLUSH`: the
    /// journal keeps the settlements and the next start replays them.
    pub async fn shutdown(&self) -> Result<(), BillingError> {
        // No lease top-up starts any more, and those in flight have ended:
        // none can add to a lease after it is returned below.
        *self.inner.refills.write().await = true;
        crate::within(SHUTDOWN_FLUSH, self.flush()).await?;
        if let Some(journal) = &self.inner.journal {
            journal.remove_if_all_committed();
        }
        sqlx::query("DELETE FROM gateway_instances WHERE id = $1")
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
        return_leases_of(self.db(), self.instance_id()).await?;
        Ok(())
    }
}
