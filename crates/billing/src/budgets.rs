//! Per-API-key budgets: a spending cap per UTC period that no number of
//! concurrent calls on any number of replicas can exceed.
//!
//! Budgets lease like organization balances. An instance sets part of a
//! key's budget for the current period aside with one conditional `UPDATE`
//! (`spent + reserved + lease <= budget`), which the database applies
//! atomically, so the leases of all instances never exceed what is left of
//! the budget. Each call holds its maximum cost out of its instance's lease,
//! in memory. The settlement moves the charge (never more than the hold)
//! from `reserved` to `spent` in the same group-commit transaction as the
//! ledger row and the usage record. Leases are recorded per instance
//! (`api_key_budget_leases`), so a dead instance's are returned with its
//! credit leases; idle ones go back like credit leases.
//!
//! A budget can change while leases of it are out. Top-ups check the
//! amount as stored, so no instance leases beyond a lowered budget, even
//! before it sees the change; and a lease belongs to the amount it was
//! taken under (see [`account`]), so once an instance sees the change its
//! calls no longer hold from the old lease. Spending past a lowered budget
//! is therefore bounded by the leases already out when it was lowered.

use crate::leases::Book;
use crate::writer::Job;
use crate::{Billing, BillingError, Inner};
use sqlx::Row;
use std::collections::{BTreeMap, HashMap};
use tollgate_core::sql::Script;
use tollgate_core::{BudgetPeriod, Db, time};

/// A key's budget, as billing enforces it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyBudget {
    pub api_key_id: String,
    /// In the organization's unit.
    pub amount: i64,
    pub period: BudgetPeriod,
}

/// What one call holds of its key's budget (out of this instance's lease).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BudgetHold {
    /// The budget account: see [`account`].
    pub account: String,
    pub amount: i64,
}

/// The in-memory lease book's name for one key's budget in one period,
/// under one budget amount: `<period start>:<key id>@<amount>`.
///
/// The amount is part of the name so that a changed budget is never held
/// from a lease taken under the old one: once a replica sees the new
/// amount, its calls hold from a new account, whose top-ups the database
/// checks against the new amount (the old lease still counts as
/// `reserved` there), and the old lease, held by no call any more, goes
/// back as idle. Both accounts charge the same database row.
pub(crate) fn account(budget: &KeyBudget, period_start: i64) -> String {
    format!("{period_start}:{}@{}", budget.api_key_id, budget.amount)
}

/// The key id and period start of a budget account name. Journals written
/// before the amount was part of the name have `<period start>:<key id>`.
fn parse_account(account: &str) -> Option<(&str, i64)> {
    let (start, rest) = account.split_once(':')?;
    let key = rest.split_once('@').map_or(rest, |(key, _)| key);
    Some((key, start.parse().ok()?))
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
    /// Holds `amount` of the key's budget for the current period: from this
    /// instance's lease in memory, or after a top-up of the lease (16 times
    /// what is missing, else exactly that; refilled ahead in the background
    /// like credit leases, see `leases`). Fails with `BudgetExceeded`,
    /// changing nothing, when the budget cannot cover it.
    pub(crate) async fn hold_budget(
        &self,
        budget: &KeyBudget,
        amount: i64,
    ) -> Result<BudgetHold, BillingError> {
        let period_start = budget.period.start(time::now_millis());
        let account = account(budget, period_start);
        // Made only when the lease needs a top-up, not on every call.
        let top_up = || {
            let (billing, key_budget) = (self.clone(), budget.clone());
            move |n| {
                let (billing, budget) = (billing.clone(), key_budget.clone());
                async move { billing.top_up_budget(&budget, period_start, n).await }
            }
        };
        if self
            .hold_from(Book::Budgets, &account, amount, top_up)
            .await?
        {
            return Ok(BudgetHold { account, amount });
        }
        Err(self.budget_exceeded(budget, period_start, amount).await?)
    }

    /// Moves `amount` of what is left of the key's budget for the period
    /// into this instance's lease, all or nothing. Returns what was granted.
    async fn top_up_budget(
        &self,
        budget: &KeyBudget,
        period_start: i64,
        amount: i64,
    ) -> Result<i64, BillingError> {
        crate::top_up_once(
            amount,
            |id, commit_sent| self.top_up_budget_now(budget, period_start, amount, id, commit_sent),
            || self.last_budget_top_up_id(&budget.api_key_id, period_start),
        )
        .await
    }

    async fn top_up_budget_now(
        &self,
        budget: &KeyBudget,
        period_start: i64,
        amount: i64,
        top_up_id: String,
        commit_sent: crate::CommitSent,
    ) -> Result<i64, BillingError> {
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
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
        // Checked against the key's budget as stored, not as this replica
        // cached it: a replica that has not yet seen a lowered budget
        // (for up to a second) cannot lease beyond it. `$5` stands in only
        // for a budget removed meanwhile, which limits nothing any more.
        let held = sqlx::query(
            "UPDATE api_key_budget_periods SET reserved = reserved + $1, updated_at = $2 \
             WHERE api_key_id = $3 AND period_start = $4 AND spent + reserved + $1 <= \
             COALESCE((SELECT k.budget_amount FROM api_keys k WHERE k.id = $3), $5)",
        )
        .bind(amount)
        .bind(now)
        .bind(&budget.api_key_id)
        .bind(period_start)
        .bind(budget.amount)
        .execute(&mut *tx)
        .await?;
        if held.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO api_key_budget_leases (instance_id, api_key_id, period_start, amount, updated_at, top_up_id) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (instance_id, api_key_id, period_start) \
             DO UPDATE SET amount = api_key_budget_leases.amount + excluded.amount, \
             updated_at = excluded.updated_at, top_up_id = excluded.top_up_id",
        )
        .bind(self.instance_id())
        .bind(&budget.api_key_id)
        .bind(period_start)
        .bind(amount)
        .bind(now)
        .bind(top_up_id)
        .execute(&mut *tx)
        .await?;
        commit_sent.mark();
        tx.commit().await?;
        Ok(amount)
    }

    /// The id of the last top-up of this instance's lease of the key's
    /// budget for the period, once no top-up of it is open any more.
    pub(crate) async fn last_budget_top_up_id(
        &self,
        api_key_id: &str,
        period_start: i64,
    ) -> Result<Option<String>, BillingError> {
        let mut tx = self.db().begin_write().await?;
        // Waits for an open top-up, which holds this row until it ends.
        sqlx::query(
            "UPDATE api_key_budget_periods SET updated_at = updated_at \
             WHERE api_key_id = $1 AND period_start = $2",
        )
        .bind(api_key_id)
        .bind(period_start)
        .execute(&mut *tx)
        .await?;
        let id: Option<Option<String>> = sqlx::query_scalar(
            "SELECT top_up_id FROM api_key_budget_leases \
             WHERE instance_id = $1 AND api_key_id = $2 AND period_start = $3",
        )
        .bind(self.instance_id())
        .bind(api_key_id)
        .bind(period_start)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(id.flatten())
    }

    /// The refusal of a call that needs `amount` of the budget.
    async fn budget_exceeded(
        &self,
        budget: &KeyBudget,
        period_start: i64,
        amount: i64,
    ) -> Result<BillingError, BillingError> {
        // `spent` counts this instance's settled calls only once committed;
        // the refusal is right either way, so a timeout changes nothing.
        let _ = self.committed_within(self.inner.options.db_timeout).await;
        let query = sqlx::query(
            "SELECT spent, reserved FROM api_key_budget_periods WHERE api_key_id = $1 AND period_start = $2",
        )
        .bind(&budget.api_key_id)
        .bind(period_start)
        .fetch_optional(self.db().pool());
        let row = crate::within(self.inner.options.db_timeout, async { Ok(query.await?) }).await?;
        let (spent, reserved) = match row {
            Some(row) => (row.try_get("spent")?, row.try_get("reserved")?),
            None => (0, 0),
        };
        let free = {
            let accounts = self.inner.budget_leases.lock();
            accounts
                .get(&account(budget, period_start))
                .map_or(0, |a| a.lease - a.in_use)
        };
        Ok(BillingError::BudgetExceeded {
            api_key_id: budget.api_key_id.clone(),
            period: budget.period,
            limit: budget.amount,
            spent,
            needed: amount,
            available: (budget.amount - spent - reserved).max(0) + free.max(0),
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
        self.committed_within(self.inner.options.db_timeout).await?;
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
    /// Gives back a budget hold, `charged` of it consumed; asks the
    /// committer to return the lease if nothing is in flight any more.
    /// Returns the part of `charged` taken out of the lease.
    pub(crate) fn release_budget(&self, hold: &BudgetHold, charged: i64) -> i64 {
        let (from_lease, idle) = {
            let mut accounts = self.budget_leases.lock();
            let account = accounts.entry(hold.account.clone()).or_default();
            let from_lease = account.consume(hold.amount, charged);
            (from_lease, account.is_unused())
        };
        if idle && charged == 0 && self.options.lease_idle.is_zero() {
            let _ = self.committer.send(Job::NudgeBudget(hold.account.clone()));
        }
        from_lease
    }
}

/// Adds to the committer's script the budget settlements and lease
/// returns: per (budget account, lease holder), `(charged, from_lease,
/// returned)`. Each charge is added to `spent` in full; what came out of
/// the holder's lease, and a returned lease, leave `reserved`, unless the
/// holder's lease is gone (returned after it died: no longer reserved).
pub(crate) fn apply<'a>(
    script: &mut Script<'a>,
    changes: &BTreeMap<(&'a str, &'a str), (i64, i64, i64)>,
    now: i64,
) {
    // In a fixed (sorted) order, so that two instances' transactions take
    // the row locks in the same order.
    for ((account, holder), (charged, from_lease, returned)) in changes {
        if *charged == 0 && *from_lease == 0 && *returned == 0 {
            continue;
        }
        let Some((key, start)) = parse_account(account) else {
            continue;
        };
        let unreserve = from_lease + returned;
        script.push(
            "UPDATE api_key_budget_periods SET spent = spent + ?, \
             reserved = reserved - CASE WHEN EXISTS (SELECT 1 FROM api_key_budget_leases \
             WHERE instance_id = ? AND api_key_id = ? AND period_start = ?) THEN ? ELSE 0 END, \
             updated_at = ? WHERE api_key_id = ? AND period_start = ?",
            [
                (*charged).into(),
                (*holder).into(),
                key.into(),
                start.into(),
                unreserve.into(),
                now.into(),
                key.into(),
                start.into(),
            ],
        );
        script.push(
            "UPDATE api_key_budget_leases SET amount = amount - ?, updated_at = ? \
             WHERE instance_id = ? AND api_key_id = ? AND period_start = ?",
            [
                unreserve.into(),
                now.into(),
                (*holder).into(),
                key.into(),
                start.into(),
            ],
        );
        if *returned > 0 {
            script.push(
                "DELETE FROM api_key_budget_leases \
                 WHERE instance_id = ? AND api_key_id = ? AND period_start = ? AND amount = 0",
                [(*holder).into(), key.into(), start.into()],
            );
        }
    }
}

/// Returns every budget lease of one (dead or stopping) instance whose
/// `gateway_instances` row is gone.
pub(crate) async fn return_leases_of_keys(db: &Db, instance_id: &str) -> Result<u64, BillingError> {
    let holds = sqlx::query(
        "SELECT api_key_id, period_start FROM api_key_budget_leases WHERE instance_id = $1",
    )
    .bind(instance_id)
    .fetch_all(db.pool())
    .await?;
    let mut returned = 0;
    for row in holds {
        let key: String = row.try_get("api_key_id")?;
        let start: i64 = row.try_get("period_start")?;
        let mut tx = db.begin_write().await?;
        // Deleting first takes the write lock and tells how much to return, once.
        let deleted = sqlx::query(
            "DELETE FROM api_key_budget_leases WHERE instance_id = $1 AND api_key_id = $2 \
             AND period_start = $3 AND NOT EXISTS (SELECT 1 FROM gateway_instances WHERE id = $1) \
             RETURNING amount",
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_account_names_its_amount_and_parses_back_to_its_row() {
        let budget = |amount| KeyBudget {
            api_key_id: "key_0123".to_owned(),
            amount,
            period: BudgetPeriod::Daily,
        };

        let before = account(&budget(100), 86_400_000);
        let after = account(&budget(50), 86_400_000);

        assert_ne!(before, after, "a changed amount is a new lease");
        assert_eq!(parse_account(&before), Some(("key_0123", 86_400_000)));
        assert_eq!(parse_account(&after), Some(("key_0123", 86_400_000)));
        assert_eq!(
            parse_account("86400000:key_0123"),
            Some(("key_0123", 86_400_000)),
            "journals of before the amount was in the name"
        );
    }
}
