//! This instance's credit leases and the holds taken from them, in memory.

use crate::writer::Job;
use crate::{Billing, BillingError, Inner};
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tollgate_core::time;

/// What this instance holds of one organization's balance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LocalAccount {
    /// Set aside in the database for this instance (net of charges made here).
    pub lease: i64,
    /// Held by calls in flight; never more than `lease`.
    pub in_use: i64,
    /// When a call last took or gave back a hold.
    pub last_active: Instant,
}

impl LocalAccount {
    /// Ends a hold of `held` that cost `charged`. The charge comes out of
    /// the lease as far as the lease has room beside the other calls'
    /// holds; a charge beyond the hold may exceed that room, and the
    /// excess then lowers the balance beyond what was set aside (the
    /// overdraft bound in the README). Returns the part taken out of the lease.
    pub fn consume(&mut self, held: i64, charged: i64) -> i64 {
        self.in_use -= held;
        let from_lease = charged.min((self.lease - self.in_use).max(0)).max(0);
        self.lease -= from_lease;
        self.last_active = Instant::now();
        from_lease
    }
}

impl Default for LocalAccount {
    fn default() -> Self {
        LocalAccount {
            lease: 0,
            in_use: 0,
            last_active: Instant::now(),
        }
    }
}
#[derive(Default)]
pub(crate) struct LeaseBook {
    accounts: Mutex<HashMap<String, LocalAccount>>,
}

impl LeaseBook {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<String, LocalAccount>> {
        // A panic while holding this lock cannot leave the numbers half
        // updated (each update is a pair of integer writes), so go on.
        self.accounts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes back the whole lease of an organization with nothing in flight,
    /// for the writer to return to the balance. Returns the amount taken.
    pub fn take_idle_lease(&self, org: &str, min_idle: Duration) -> i64 {
        let mut accounts = self.lock();
        match accounts.get_mut(org) {
            Some(account) if is_idle(account, min_idle) => std::mem::take(&mut account.lease),
            _ => 0,
        }
    }

    /// Organizations whose lease has been idle for `min_idle`.
    pub fn idle_organizations(&self, min_idle: Duration) -> Vec<String> {
        self.lock()
            .iter()
            .filter(|(_, account)| is_idle(account, min_idle))
            .map(|(org, _)| org.clone())
            .collect()
    }
    /// Takes `amount` from the free part of the lease, if it is there.
    pub(crate) fn try_hold(&self, org: &str, amount: i64) -> Result<(), i64> {
        with_account(&mut self.lock(), org, |account| {
            let free = account.lease - account.in_use;
            if free >= amount {
                account.in_use += amount;
                account.last_active = Instant::now();
                Ok(())
            } else {
                Err(amount - free)
            }
        })
    }
}

/// Runs `f` on the organization's account, created empty if missing. The
/// key is allocated only then: this runs on every call.
fn with_account<R>(
    accounts: &mut HashMap<String, LocalAccount>,
    org: &str,
    f: impl FnOnce(&mut LocalAccount) -> R,
) -> R {
    if let Some(account) = accounts.get_mut(org) {
        return f(account);
    }
    f(accounts.entry(org.to_owned()).or_default())
}

fn is_idle(account: &LocalAccount, min_idle: Duration) -> bool {
    account.in_use == 0 && account.lease > 0 && account.last_active.elapsed() >= min_idle
}

/// Credits set aside for one call in flight.Settle it with
/// [`Billing::settle`]; dropped unsettled, it is released (the call cost nothing).
#[derive(Debug)]
#[must_use = "a hold is released when dropped; settle it to charge the call"]
pub struct Hold {
    pub organization_id: String,
    pub amount: i64,
    /// The same amount, held of the calling key's budget, if it has one.
    budget: Option<crate::budgets::BudgetHold>,
    billing: Option<Billing>,
}

impl std::fmt::Debug for Billing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Billing")
            .field("instance_id", &self.inner.instance_id)
            .finish()
    }
}

impl Hold {
    /// Takes the hold out of circulation, for settlement: dropping it no
    /// longer releases anything.
    pub(crate) fn consume(mut self) -> Option<crate::budgets::BudgetHold> {
        self.billing.take();
        self.budget.take()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if let Some(billing) = self.billing.take() {
            billing.inner.release(&self.organization_id, self.amount, 0);
            if let Some(budget) = self.budget.take() {
                billing.inner.release_budget(&budget, 0);
            }
        }
    }
}

impl Inner {
    /// Gives back a hold, `charged` of it consumed; asks the committer to
    /// return the lease if nothing is in flight any more. Returns the part
    /// of `charged` taken out of the lease (see [`LocalAccount::consume`]).
    pub(crate) fn release(&self, org: &str, held: i64, charged: i64) -> i64 {
        let (from_lease, idle) = with_account(&mut self.leases.lock(), org, |account| {
            let from_lease = account.consume(held, charged);
            (from_lease, account.in_use == 0 && account.lease > 0)
        });
        if idle && charged == 0 && self.options.lease_idle.is_zero() {
            // A settlement's own commit returns idle leases; a bare release
            // nudges the committer to do the same.
            let _ = self.committer.send(Job::Nudge(org.to_owned()));
        }
        from_lease
    }
}

impl Billing {
    /// Holds `amount` for a call of a key: of the key's budget for the
    /// current period first, when it has one (else `BudgetExceeded`), then
    /// of the organization's balance as [`Billing::reserve`] does.
    pub async fn reserve_for_key(
        &self,
        organization_id: &str,
        amount: i64,
        budget: Option<&crate::KeyBudget>,
    ) -> Result<Hold, BillingError> {
        let amount = amount.max(0);
        let budget_hold = match budget {
            Some(budget) if amount > 0 => Some(self.hold_budget(budget, amount).await?),
            _ => None,
        };
        match self.reserve(organization_id, amount).await {
            Ok(mut hold) => {
                hold.budget = budget_hold;
                Ok(hold)
            }
            Err(e) => {
                if let Some(budget_hold) = budget_hold {
                    self.inner.release_budget(&budget_hold, 0);
                }
                Err(e)
            }
        }
    }

    /// Holds `amount` for a call: from this instance's lease in memory, or
    /// after topping the lease up from the organization's balance. Fails with
    /// `InsufficientCredits`, changing nothing, when the balance cannot cover it.
    pub async fn reserve(&self, organization_id: &str, amount: i64) -> Result<Hold, BillingError> {
        let amount = amount.max(0);
        for _ in 0..4 {
            let missing = match self.inner.leases.try_hold(organization_id, amount) {
                Ok(()) => {
                    return Ok(Hold {
                        organization_id: organization_id.to_owned(),
                        amount,
                        budget: None,
                        billing: Some(self.clone()),
                    });
                }
                Err(missing) => missing,
            };
            let ahead = missing.saturating_mul(self.inner.options.lease_multiplier.max(1));
            let granted = match self.top_up(organization_id, ahead).await? {
                0 if ahead > missing => self.top_up(organization_id, missing).await?,
                granted => granted,
            };
            if granted == 0 {
                let available = self.available(organization_id).await?;
                return Err(BillingError::InsufficientCredits {
                    needed: amount,
                    available,
                });
            }
            let mut accounts = self.inner.leases.lock();
            accounts
                .entry(organization_id.to_owned())
                .or_default()
                .lease += granted;
        }
        // Other calls kept taking what each top-up brought: the balance is in use.
        let available = self.available(organization_id).await?;
        Err(BillingError::InsufficientCredits {
            needed: amount,
            available,
        })
    }

    /// Moves `amount` of the organization's spendable balance into this
    /// instance's lease, all or nothing. Returns what was granted (0 or `amount`).
    async fn top_up(&self, organization_id: &str, amount: i64) -> Result<i64, BillingError> {
        crate::within(
            self.inner.options.db_timeout,
            self.top_up_now(organization_id, amount),
        )
        .await
    }

    async fn top_up_now(&self, organization_id: &str, amount: i64) -> Result<i64, BillingError> {
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        let done = sqlx::query(
            "UPDATE credit_accounts SET reserved = reserved + $1, updated_at = $2 \
             WHERE organization_id = $3 AND balance - reserved - $1 + overdraft_limit >= 0",
        )
        .bind(amount)
        .bind(now)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Ok(0);
        }
        sqlx::query(
            "INSERT INTO credit_leases (instance_id, organization_id, amount, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (instance_id, organization_id) \
             DO UPDATE SET amount = credit_leases.amount + excluded.amount, updated_at = excluded.updated_at",
        )
        .bind(self.instance_id())
        .bind(organization_id)
        .bind(amount)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(amount)
    }

    /// What the organization can still hold: its spendable balance plus the
    /// free part of this instance's lease.
    async fn available(&self, organization_id: &str) -> Result<i64, BillingError> {
        let c = crate::within(
            self.inner.options.db_timeout,
            self.credits_now(organization_id),
        )
        .await?;
        let free = {
            let accounts = self.inner.leases.lock();
            accounts
                .get(organization_id)
                .map(|a| a.lease - a.in_use)
                .unwrap_or(0)
        };
        Ok((c.balance - c.reserved + c.overdraft_limit).max(0) + free.max(0))
    }

    /// This instance's view of an organization: `(lease, in_use)`.
    pub fn local_lease(&self, organization_id: &str) -> (i64, i64) {
        let accounts = self.inner.leases.lock();
        accounts
            .get(organization_id)
            .map(|a| (a.lease, a.in_use))
            .unwrap_or((0, 0))
    }
}
