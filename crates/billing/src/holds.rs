//! Holds: reserve before a call, settle or release after it, and release the
//! holds of dead gateway instances.

use crate::usage::{UsageEntry, insert_usage};
use crate::{Billing, BillingError};
use sqlx::Row;
use std::time::Duration;
use tollgate_core::{ids, time};

/// An instance that has not heartbeated for this long is considered dead.
const INSTANCE_TIMEOUT_MS: i64 = 30_000;

/// Credits set aside for one call in flight.
#[derive(Debug)]
#[must_use = "a hold must be settled or released"]
pub struct Hold {
    id: String,
    pub organization_id: String,
    pub amount: i64,
}

/// This gateway process, as the owner of its holds.
#[derive(Debug, Clone)]
pub struct Instance {
    pub id: String,
}

impl Billing {
    /// Registers this process. Call once at start-up, then run
    /// [`Billing::maintain`] in the background.
    pub async fn register_instance(&self) -> Result<Instance, BillingError> {
        let now = time::now_millis();
        let id = ids::new_id("gw");
        sqlx::query(
            "INSERT INTO gateway_instances (id, started_at, heartbeat_at) VALUES ($1, $2, $2)",
        )
        .bind(&id)
        .bind(now)
        .execute(self.db.pool())
        .await?;
        Ok(Instance { id })
    }

    /// Heartbeats for `instance` and releases the holds of dead instances,
    /// every `interval`, forever.
    pub async fn maintain(self, instance: Instance, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        loop {
            ticker.tick().await;
            if let Err(e) = self.heartbeat(&instance).await {
                tracing::warn!(error = %e, "billing heartbeat failed");
            }
            match self.release_dead_instances(INSTANCE_TIMEOUT_MS).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(holds = n, "released holds of dead gateway instances"),
                Err(e) => tracing::warn!(error = %e, "releasing dead instances' holds failed"),
            }
        }
    }

    async fn heartbeat(&self, instance: &Instance) -> Result<(), BillingError> {
        sqlx::query("UPDATE gateway_instances SET heartbeat_at = $1 WHERE id = $2")
            .bind(time::now_millis())
            .bind(&instance.id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Removes this instance at a clean shutdown, after its calls are settled.
    pub async fn deregister_instance(&self, instance: &Instance) -> Result<(), BillingError> {
        self.release_instance_holds(&instance.id).await?;
        sqlx::query("DELETE FROM gateway_instances WHERE id = $1")
            .bind(&instance.id)
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// Releases every hold of the instances silent for `timeout_ms`, and
    /// forgets them. Returns the number of holds released.
    pub async fn release_dead_instances(&self, timeout_ms: i64) -> Result<u64, BillingError> {
        let cutoff = time::now_millis() - timeout_ms;
        let dead = sqlx::query("SELECT id FROM gateway_instances WHERE heartbeat_at < $1")
            .bind(cutoff)
            .fetch_all(self.db.pool())
            .await?;
        let mut released = 0;
        for row in dead {
            let id: String = row.try_get("id")?;
            released += self.release_instance_holds(&id).await?;
            sqlx::query("DELETE FROM gateway_instances WHERE id = $1 AND heartbeat_at < $2")
                .bind(&id)
                .bind(cutoff)
                .execute(self.db.pool())
                .await?;
        }
        // Holds whose instance row is gone entirely (e.g. deleted by hand).
        let orphans = sqlx::query(
            "SELECT DISTINCT instance_id FROM credit_holds h WHERE NOT EXISTS \
             (SELECT 1 FROM gateway_instances i WHERE i.id = h.instance_id)",
        )
        .fetch_all(self.db.pool())
        .await?;
        for row in orphans {
            let id: String = row.try_get("instance_id")?;
            released += self.release_instance_holds(&id).await?;
        }
        Ok(released)
    }

    async fn release_instance_holds(&self, instance_id: &str) -> Result<u64, BillingError> {
        let holds = sqlx::query(
            "SELECT id, organization_id, amount FROM credit_holds WHERE instance_id = $1",
        )
        .bind(instance_id)
        .fetch_all(self.db.pool())
        .await?;
        let mut released = 0;
        for row in holds {
            let hold = Hold {
                id: row.try_get("id")?,
                organization_id: row.try_get("organization_id")?,
                amount: row.try_get("amount")?,
            };
            if self.delete_hold(&hold).await? {
                released += 1;
            }
        }
        Ok(released)
    }

    /// Sets aside `amount` for a call, or fails with `InsufficientCredits`
    /// without changing anything.
    pub async fn reserve(
        &self,
        instance: &Instance,
        organization_id: &str,
        amount: i64,
        request_id: &str,
    ) -> Result<Hold, BillingError> {
        let amount = amount.max(0);
        let mut tx = self.db.pool().begin().await?;
        // The write comes first so SQLite takes its write lock at once.
        let reserved = sqlx::query(
            "UPDATE credit_accounts SET reserved = reserved + $1, updated_at = $2 \
             WHERE organization_id = $3 AND balance - reserved - $1 + overdraft_limit >= 0",
        )
        .bind(amount)
        .bind(time::now_millis())
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        if reserved.rows_affected() == 0 {
            tx.rollback().await?;
            let available = self.available(organization_id).await?;
            return Err(BillingError::InsufficientCredits {
                needed: amount,
                available,
            });
        }
        let hold = Hold {
            id: ids::new_id("hold"),
            organization_id: organization_id.to_owned(),
            amount,
        };
        sqlx::query(
            "INSERT INTO credit_holds (id, organization_id, instance_id, amount, request_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&hold.id)
        .bind(&hold.organization_id)
        .bind(&instance.id)
        .bind(amount)
        .bind(request_id)
        .bind(time::now_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(hold)
    }

    /// Gives a hold back unused (the call failed before costing anything).
    pub async fn release(&self, hold: Hold) -> Result<(), BillingError> {
        self.delete_hold(&hold).await?;
        Ok(())
    }

    /// Deletes the hold and lowers `reserved` by its amount, once.
    async fn delete_hold(&self, hold: &Hold) -> Result<bool, BillingError> {
        let mut tx = self.db.pool().begin().await?;
        let deleted = sqlx::query("DELETE FROM credit_holds WHERE id = $1")
            .bind(&hold.id)
            .execute(&mut *tx)
            .await?;
        if deleted.rows_affected() == 1 {
            sqlx::query(
                "UPDATE credit_accounts SET reserved = reserved - $1, updated_at = $2 \
                 WHERE organization_id = $3",
            )
            .bind(hold.amount)
            .bind(time::now_millis())
            .bind(&hold.organization_id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Charges a finished call: the cost (at most the hold), the hold's
    /// release, the ledger row and the usage record, in one transaction.
    /// Returns what was charged and the balance after it.
    pub async fn settle(
        &self,
        hold: &Hold,
        entry: &UsageEntry,
    ) -> Result<(i64, i64), BillingError> {
        let mut tx = self.db.pool().begin().await?;
        let deleted = sqlx::query("DELETE FROM credit_holds WHERE id = $1")
            .bind(&hold.id)
            .execute(&mut *tx)
            .await?;
        let now = time::now_millis();
        let (charged, balance) = if deleted.rows_affected() == 1 {
            // The hold was still ours: the charge fits inside it by construction.
            let charged = entry.cost.clamp(0, hold.amount);
            let row = sqlx::query(
                "UPDATE credit_accounts SET balance = balance - $1, reserved = reserved - $2, \
                 updated_at = $3 WHERE organization_id = $4 RETURNING balance",
            )
            .bind(charged)
            .bind(hold.amount)
            .bind(now)
            .bind(&hold.organization_id)
            .fetch_one(&mut *tx)
            .await?;
            (charged, row.try_get::<i64, _>("balance")?)
        } else {
            // The hold was released meanwhile (this instance was taken for
            // dead): charge only what the account can still spend.
            charge_without_hold(&mut tx, &hold.organization_id, entry.cost, now).await?
        };
        if charged != 0 {
            sqlx::query(
                "INSERT INTO ledger_entries (organization_id, kind, amount, balance_after, request_id, created_at) \
                 VALUES ($1, 'usage', $2, $3, $4, $5)",
            )
            .bind(&hold.organization_id)
            .bind(-charged)
            .bind(balance)
            .bind(&entry.request_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        insert_usage(&mut tx, &hold.organization_id, entry, charged, now).await?;
        tx.commit().await?;
        Ok((charged, balance))
    }
}

async fn charge_without_hold(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    organization_id: &str,
    cost: i64,
    now: i64,
) -> Result<(i64, i64), BillingError> {
    loop {
        let row = sqlx::query(
            "SELECT balance, reserved, overdraft_limit FROM credit_accounts WHERE organization_id = $1",
        )
        .bind(organization_id)
        .fetch_one(&mut **tx)
        .await?;
        let balance: i64 = row.try_get("balance")?;
        let reserved: i64 = row.try_get("reserved")?;
        let overdraft: i64 = row.try_get("overdraft_limit")?;
        let spendable = (balance - reserved + overdraft).max(0);
        let charged = cost.clamp(0, spendable);
        // Optimistic: retried if another transaction moved the balance meanwhile.
        let updated = sqlx::query(
            "UPDATE credit_accounts SET balance = balance - $1, updated_at = $2 \
             WHERE organization_id = $3 AND balance = $4 AND reserved = $5",
        )
        .bind(charged)
        .bind(now)
        .bind(organization_id)
        .bind(balance)
        .bind(reserved)
        .execute(&mut **tx)
        .await?;
        if updated.rows_affected() == 1 {
            if charged < cost {
                tracing::warn!(
                    organization_id,
                    cost,
                    charged,
                    "call settled after its hold was released; charge capped"
                );
            }
            return Ok((charged, balance - charged));
        }
    }
}
