//! Per-API-key budgets: a spending cap per UTC period that no number of
//! concurrent calls on any number of replicas can exceed.
//!
//! Each call with a budgeted key holds its maximum cost in the key's row for
//! the current period with one conditional `UPDATE` (`spent + reserved +
//! hold <= budget`), which the database applies atomically. The settlement
//! moves the charge (never more than the hold) from `reserved` to `spent`
//! in the same group-commit transaction as the ledger row and the usage
//! record. Holds are recorded per instance, like credit leases, so the
//! holds of a dead instance are returned with its leases.

use crate::writer::Job;
use crate::{Billing, BillingError, Inner};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use tollgate_core::{BudgetPeriod, Db, time};

/// A key's budget, as billing enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBudget {
    pub api_key_id: String,
    /// In the organization's unit.
    pub amount: i64,
    pub period: BudgetPeriod,
}

/// What one call holds of its key's budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetHold {
    pub api_key_id: String,
    pub period_start: i64,
    pub amount: i64,
}

/// A key's spending in its current period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetSpending {
    /// Charged to settled calls.
    pub spent: i64,
    /// Held by calls in flight.
    pub reserved: i64,
}

impl Billing {
    /// Holds `amount` of the key's budget for the current period, or fails
    /// with `BudgetExceeded`, changing nothing.
    pub(crate) async fn hold_budget(
        &self,
        budget: &KeyBudget,
        amount: i64,
    ) -> Result<BudgetHold, BillingError> {
        let now = time::now_millis();
        let period_start = budget.period.start(now);
        let mut tx = self.db().pool().begin().await?;
        // The write comes first so SQLite takes its write lock at once.
        sqlx::query(
            "INSERT INTO api_key_budget_periods (api_key_id, period_start, updated_at) \
             VALUES ($1, $2, $3) ON CONFLICT (api_key_id, period_start) DO NOTHING",
        )
        .bind(&budget.api_key_id)
        .bind(period_start)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let held = sqlx::query(
            "UPDATE api_key_budget_periods SET reserved = reserved + $1, updated_at = $2 \
             WHERE api_key_id = $3 AND period_start = $4 AND spent + reserved + $1 <= $5",
        )
        .bind(amount)
        .bind(now)
        .bind(&budget.api_key_id)
        .bind(period_start)
        .bind(budget.amount)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            let row = sqlx::query(
                "SELECT spent, reserved FROM api_key_budget_periods WHERE api_key_id = $1 AND period_start = $2",
            )
            .bind(&budget.api_key_id)
            .bind(period_start)
            .fetch_one(&mut *tx)
            .await?;
            let spent: i64 = row.try_get("spent")?;
            let reserved: i64 = row.try_get("reserved")?;
            tx.rollback().await?;
            return Err(BillingError::BudgetExceeded {
                api_key_id: budget.api_key_id.clone(),
                period: budget.period,
                limit: budget.amount,
                spent,
                needed: amount,
                available: (budget.amount - spent - reserved).max(0),
            });
        }
        sqlx::query(
            "INSERT INTO api_key_budget_holds (instance_id, api_key_id, period_start, amount, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (instance_id, api_key_id, period_start) \
             DO UPDATE SET amount = api_key_budget_holds.amount + excluded.amount, updated_at = excluded.updated_at",
        )
        .bind(self.instance_id())
        .bind(&budget.api_key_id)
        .bind(period_start)
        .bind(amount)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(BudgetHold {
            api_key_id: budget.api_key_id.clone(),
            period_start,
            amount,
        })
    }

    /// What each of an organization's keys spent in the period that
    /// `periods` gives it (the current one), by key id. Keys without a row
    /// spent nothing yet.
    pub async fn budget_spending(
        &self,
        organization_id: &str,
        periods: &[(&str, BudgetPeriod)],
    ) -> Result<HashMap<String, BudgetSpending>, BillingError> {
        if periods.is_empty() {
            return Ok(HashMap::new());
        }
        let now = time::now_millis();
        let rows = sqlx::query(
            "SELECT b.api_key_id, b.period_start, b.spent, b.reserved FROM api_key_budget_periods b \
             JOIN api_keys k ON k.id = b.api_key_id WHERE k.organization_id = $1",
        )
        .bind(organization_id)
        .fetch_all(self.db().pool())
        .await?;
        let current: HashMap<&str, i64> = periods
            .iter()
            .map(|(id, period)| (*id, period.start(now)))
            .collect();
        let mut spending = HashMap::new();
        for row in rows {
            let id: String = row.try_get("api_key_id")?;
            let start: i64 = row.try_get("period_start")?;
            if current.get(id.as_str()) == Some(&start) {
                spending.insert(
                    id,
                    BudgetSpending {
                        spent: row.try_get("spent")?,
                        reserved: row.try_get("reserved")?,
                    },
                );
            }
        }
        Ok(spending)
    }
}

impl Inner {
    /// Gives a budget hold back unused, through the writer.
    pub(crate) fn release_budget(&self, hold: BudgetHold) {
        match self.writer.try_send(Job::ReleaseBudget(hold)) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(job)) => {
                let writer = self.writer.clone();
                match tokio::runtime::Handle::try_current() {
                    Ok(rt) => {
                        rt.spawn(async move {
                            let _ = writer.send(job).await;
                        });
                    }
                    Err(_) => tracing::warn!(
                        "a budget hold could not be released; it returns when this instance stops"
                    ),
                }
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {}
        }
    }
}

/// A settled or released budget hold, for the writer's transaction.
pub(crate) struct BudgetChange<'a> {
    pub hold: &'a BudgetHold,
    pub charged: i64,
}

/// Applies budget settlements and releases in the writer's transaction:
/// each charge moves from `reserved` to `spent`, the rest of its hold goes back.
pub(crate) async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    instance_id: &str,
    changes: &[BudgetChange<'_>],
    now: i64,
) -> Result<(), BillingError> {
    // Summed per key and period; in a fixed order, so that two instances'
    // transactions take the row locks in the same order.
    let mut totals: BTreeMap<(&str, i64), (i64, i64)> = BTreeMap::new();
    for change in changes {
        let id = (change.hold.api_key_id.as_str(), change.hold.period_start);
        let (charged, held) = totals.entry(id).or_default();
        *charged += change.charged;
        *held += change.hold.amount;
    }
    for ((key, start), (charged, held)) in totals {
        sqlx::query(
            "UPDATE api_key_budget_periods SET spent = spent + $1, reserved = reserved - $2, updated_at = $3 \
             WHERE api_key_id = $4 AND period_start = $5",
        )
        .bind(charged)
        .bind(held)
        .bind(now)
        .bind(key)
        .bind(start)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "UPDATE api_key_budget_holds SET amount = amount - $1, updated_at = $2 \
             WHERE instance_id = $3 AND api_key_id = $4 AND period_start = $5",
        )
        .bind(held)
        .bind(now)
        .bind(instance_id)
        .bind(key)
        .bind(start)
        .execute(&mut **tx)
        .await?;
        sqlx::query(
            "DELETE FROM api_key_budget_holds \
             WHERE instance_id = $1 AND api_key_id = $2 AND period_start = $3 AND amount = 0",
        )
        .bind(instance_id)
        .bind(key)
        .bind(start)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

/// Returns every budget hold of one (dead or stopping) instance.
pub(crate) async fn return_holds_of(db: &Db, instance_id: &str) -> Result<u64, BillingError> {
    let holds = sqlx::query(
        "SELECT api_key_id, period_start FROM api_key_budget_holds WHERE instance_id = $1",
    )
    .bind(instance_id)
    .fetch_all(db.pool())
    .await?;
    let mut returned = 0;
    for row in holds {
        let key: String = row.try_get("api_key_id")?;
        let start: i64 = row.try_get("period_start")?;
        let mut tx = db.pool().begin().await?;
        // Deleting first takes the write lock and tells how much to return, once.
        let deleted = sqlx::query(
            "DELETE FROM api_key_budget_holds WHERE instance_id = $1 AND api_key_id = $2 \
             AND period_start = $3 RETURNING amount",
        )
        .bind(instance_id)
        .bind(&key)
        .bind(start)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = deleted {
            let amount: i64 = row.try_get("amount")?;
            sqlx::query(
                "UPDATE api_key_budget_periods SET reserved = reserved - $1, updated_at = $2 \
                 WHERE api_key_id = $3 AND period_start = $4",
            )
            .bind(amount)
            .bind(time::now_millis())
            .bind(&key)
            .bind(start)
            .execute(&mut *tx)
            .await?;
            returned += 1;
        }
        tx.commit().await?;
    }
    Ok(returned)
}
