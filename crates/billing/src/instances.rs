//! Gateway instances: registration, heartbeats, and returning the leases of
//! instances that died.

use crate::{Billing, BillingError};
use sqlx::Row;
use std::time::Duration;
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

pub(crate) async fn register(db: &Db) -> Result<String, BillingError> {
    let now = time::now_millis();
    let id = ids::new_id("gw");
    sqlx::query("INSERT INTO gateway_instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)")
        .bind(&id)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(id)
}

/// Returns every lease not held by `keep` (single node start-up).
pub(crate) async fn return_leases_of_others(db: &Db, keep: &str) -> Result<u64, BillingError> {
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
    sqlx::query("DELETE FROM gateway_instances WHERE id <> $1")
        .bind(keep)
        .execute(db.pool())
        .await?;
    Ok(returned)
}

/// Returns all credit and budget leases of one instance.
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
            "DELETE FROM credit_leases WHERE instance_id = $1 AND organization_id = $2 RETURNING amount",
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
        let mut ticker =
            tokio::time::interval(lease_idle.clamp(Duration::from_millis(100), interval));
        let mut last_heartbeat = std::time::Instant::now();
        loop {
            ticker.tick().await;
            // Idle leases go back to the balance even when no call comes to settle.
            for org in self.inner.leases.idle_organizations(lease_idle) {
                let _ = self.inner.committer.send(crate::writer::Job::Nudge(org));
            }
            for account in self.inner.budget_leases.idle_organizations(lease_idle) {
                let _ = self
                    .inner
                    .committer
                    .send(crate::writer::Job::NudgeBudget(account));
            }
            if last_heartbeat.elapsed() < interval {
                continue;
            }
            last_heartbeat = std::time::Instant::now();
            let limit = self.inner.options.db_timeout;
            match crate::within(limit, self.heartbeat()).await {
                Ok(()) => HEARTBEAT_FAILED.recovered(),
                Err(e) => HEARTBEAT_FAILED.failed(&e),
            }
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
    }

    async fn heartbeat(&self) -> Result<(), BillingError> {
        sqlx::query("UPDATE gateway_instances SET heartbeat_at = $1 WHERE id = $2")
            .bind(time::now_millis())
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
        Ok(())
    }

    /// Returns the leases of every instance silent for `timeout_ms`, and
    /// forgets those instances. Returns how many leases were returned.
    pub async fn return_dead_instances_leases(&self, timeout_ms: i64) -> Result<u64, BillingError> {
        let cutoff = time::now_millis() - timeout_ms;
        let dead = sqlx::query(
            "SELECT l.instance_id FROM credit_leases l WHERE l.instance_id <> $1 AND NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = l.instance_id AND i.heartbeat_at >= $2) \
             UNION SELECT h.instance_id FROM api_key_budget_leases h WHERE h.instance_id <> $1 AND NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = h.instance_id AND i.heartbeat_at >= $2)",
        )
        .bind(self.instance_id())
        .bind(cutoff)
        .fetch_all(self.db().pool())
        .await?;
        let mut returned = 0;
        for row in dead {
            let id: String = row.try_get("instance_id")?;
            returned += return_leases_of(self.db(), &id).await?;
        }
        sqlx::query("DELETE FROM gateway_instances WHERE heartbeat_at < $1 AND id <> $2")
            .bind(cutoff)
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
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
        return_leases_of(self.db(), self.instance_id()).await?;
        sqlx::query("DELETE FROM gateway_instances WHERE id = $1")
            .bind(self.instance_id())
            .execute(self.db().pool())
            .await?;
        Ok(())
    }
}
