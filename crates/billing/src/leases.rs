//! This instance's credit leases and the holds taken from them, in memory.
//!
//! A lease is refilled ahead of need: when a hold leaves its free part below
//! the low-water mark (a quarter of the lease's last top-up), one top-up of
//! that size starts in the background, so that the next calls still hold
//! from memory. A call that finds the lease short while a top-up is in
//! flight waits for it instead of starting its own (single flight); only
//! when no top-up is in flight does it start one and wait for it. Either
//! top-up also covers a hold for each call waiting to hold (a burst on an
//! empty lease, as at a replica's start under load).

use crate::writer::Job;
use crate::{Billing, BillingError, Inner};
use foldhash::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tollgate_core::time;

/// The low-water mark of a lease, as a fraction of its last top-up: a hold
/// that leaves less free than `last_top_up / REFILL_LOW_WATER_DIVISOR`
/// starts a refill in the background. With the default look-ahead (16
/// times the missing amount) that is four holds of the size that caused it.
pub const REFILL_LOW_WATER_DIVISOR: i64 = 4;

/// How many times a call tops the lease up itself before it gives up (other
/// calls kept taking what each top-up brought: the balance is in use).
const MAX_OWN_TOP_UPS: u32 = 4;

/// How many other calls' top-ups a call waits for before it gives up.
const MAX_WAITS: u32 = 16;

/// What this instance holds of one organization's balance.
#[derive(Debug, Clone)]
pub(crate) struct LocalAccount {
    /// Set aside in the database for this instance (net of charges made here).
    pub lease: i64,
    /// Held by calls in flight; never more than `lease`, but after the
    /// lease was dropped (see [`LeaseBook::drop_leases`]).
    pub in_use: i64,
    /// When a call last took or gave back a hold.
    pub last_active: Instant,
    /// The size of the last top-up that granted something: the size of a
    /// background refill, and four times the low-water mark.
    last_top_up: i64,
    /// Set while a top-up is in flight (single flight): closed when it
    /// ends, after the database's error if the database was unavailable.
    refill: Option<watch::Receiver<Unavailable>>,
    /// The last background refill brought nothing (the balance is short, or
    /// the database away): no more until a call's own top-up succeeds.
    refill_failed: bool,
    /// Calls that found the lease short and wait for a top-up to hold from
    /// it (see [`Claim`]): while there are any, the lease is not idle.
    claims: u32,
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

    /// Whether the lease is held by no call and claimed by none: it may go
    /// back to the balance.
    pub(crate) fn is_unused(&self) -> bool {
        self.in_use == 0 && self.claims == 0 && self.lease > 0
    }

    /// Whether a hold that left `free` should start a background refill.
    fn needs_refill(&self, free: i64) -> bool {
        self.refill.is_none()
            && !self.refill_failed
            && self.last_top_up > 0
            && free < self.last_top_up / REFILL_LOW_WATER_DIVISOR
    }
}

impl Default for LocalAccount {
    fn default() -> Self {
        LocalAccount {
            lease: 0,
            in_use: 0,
            last_active: Instant::now(),
            last_top_up: 0,
            refill: None,
            refill_failed: false,
            claims: 0,
        }
    }
}

#[derive(Default)]
pub(crate) struct LeaseBook {
    accounts: Mutex<HashMap<String, LocalAccount>>,
    /// Top-up transactions run so far (each conditional `UPDATE`).
    top_ups: AtomicU64,
    /// Times a call found the lease short and waited for a top-up.
    waited: AtomicU64,
}

/// Counters of one kind of lease (organization balances or key budgets)
/// on this instance, since it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LeaseCounters {
    /// Top-up transactions run, in the background or for a waiting call.
    pub top_ups: u64,
    /// Times a call found the lease short and waited for a top-up (its
    /// own, or one in flight): the answers that waited for the database.
    pub calls_waited: u64,
}

/// What a call found in the lease.
pub(crate) enum Take {
    /// Held. `Some`: the hold crossed the low-water mark; start this refill
    /// in the background.
    Held(Option<Refill>),
    /// Short by `missing`, and no top-up in flight: run this one (now
    /// registered as in flight) and wait for it, sized to cover `waiting`
    /// too: the holds of the other calls waiting to hold from the lease.
    Short {
        missing: i64,
        waiting: i64,
        refill: Refill,
        claim: Claim,
    },
    /// Short while a top-up is in flight: wait for it to end (the receiver
    /// reports its sender closed), then try again.
    Wait(watch::Receiver<Unavailable>, Claim),
}

/// A call's claim on the top-up it waits for: until the call has tried to
/// hold from it again (or is dropped), the lease does not count as idle,
/// so that the committer cannot return what was just topped up for it.
pub(crate) struct Claim {
    book: Arc<LeaseBook>,
    account: String,
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let Some(account) = self.book.lock().get_mut(&self.account) {
            account.claims -= 1;
        }
    }
}

/// What a top-up tells the calls waiting for it: the error, when the
/// database was unavailable (they fail fast too, rather than try again).
type Unavailable = Option<String>;

/// A top-up registered as the account's one in flight. Dropped unfinished
/// (failed, cancelled), it clears the flag; either way waiting calls wake.
pub(crate) struct Refill {
    book: Arc<LeaseBook>,
    account: String,
    /// The size of a background refill: the lease's last top-up.
    size: i64,
    finished: bool,
    done: watch::Sender<Unavailable>,
}

impl Refill {
    /// Tells the waiting calls that the database is unavailable, if that
    /// is why the top-up failed.
    fn report(&self, result: &Result<i64, BillingError>) {
        if let Err(BillingError::Unavailable(message)) = result {
            self.done.send_replace(Some(message.clone()));
        }
    }

    /// Adds what the top-up `granted` to the lease and ends the flight.
    /// Returns whether the lease is now idle (nothing in flight).
    fn finish(mut self, granted: i64, background: bool) -> bool {
        let mut accounts = self.book.lock();
        let account = accounts.entry(self.account.clone()).or_default();
        account.lease += granted;
        if granted > 0 {
            account.last_top_up = granted;
            account.refill_failed = false;
        } else if background {
            account.refill_failed = true;
        }
        account.refill = None;
        self.finished = true;
        account.is_unused()
    }
}

impl Drop for Refill {
    fn drop(&mut self) {
        if !self.finished
            && let Some(account) = self.book.lock().get_mut(&self.account)
        {
            account.refill = None;
        }
    }
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

    /// Forgets every lease, after the other instances returned them (they
    /// took this one for dead): they are no longer set aside for it. The
    /// holds of calls in flight stay in `in_use`, so the next top-up asks
    /// for them too and their charges come out of it; settled before that,
    /// a charge comes out of no lease and lowers only the balance.
    pub fn drop_leases(&self) {
        for account in self.lock().values_mut() {
            account.lease = 0;
            account.last_top_up = 0;
            account.refill_failed = false;
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

    /// Takes `amount` from the free part of the lease, if it is there;
    /// else tells the call to wait for the top-up in flight or to run one.
    /// `ahead`: whether a hold that crosses the low-water mark starts a
    /// background refill.
    pub(crate) fn try_hold(self: &Arc<Self>, org: &str, amount: i64, ahead: bool) -> Take {
        with_account(&mut self.lock(), org, |account| {
            let free = account.lease - account.in_use;
            // A hold of this size for each other call waiting to hold (a
            // burst on an empty lease): any top-up started here covers them.
            let waiting = amount.saturating_mul(i64::from(account.claims));
            if free >= amount {
                account.in_use += amount;
                account.last_active = Instant::now();
                let refill = (ahead && account.needs_refill(free - amount)).then(|| {
                    let size = account.last_top_up.saturating_add(waiting);
                    self.register(org, account, size)
                });
                return Take::Held(refill);
            }
            self.waited.fetch_add(1, Ordering::Relaxed);
            account.claims += 1;
            let claim = Claim {
                book: Arc::clone(self),
                account: org.to_owned(),
            };
            match &account.refill {
                Some(done) => Take::Wait(done.clone(), claim),
                None => Take::Short {
                    missing: amount - free,
                    waiting,
                    refill: self.register(org, account, 0),
                    claim,
                },
            }
        })
    }

    /// Registers a top-up as the account's one in flight (`size` > 0: a
    /// background refill of that size).
    fn register(self: &Arc<Self>, org: &str, account: &mut LocalAccount, size: i64) -> Refill {
        let (done, waiting) = watch::channel(None);
        account.refill = Some(waiting);
        Refill {
            book: Arc::clone(self),
            account: org.to_owned(),
            size,
            finished: false,
            done,
        }
    }

    pub fn counters(&self) -> LeaseCounters {
        LeaseCounters {
            top_ups: self.top_ups.load(Ordering::Relaxed),
            calls_waited: self.waited.load(Ordering::Relaxed),
        }
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
    account.is_unused() && account.last_active.elapsed() >= min_idle
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

/// The two kinds of lease: of organization balances and of key budgets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Book {
    Credits,
    Budgets,
}

impl Inner {
    pub(crate) fn book(&self, book: Book) -> &Arc<LeaseBook> {
        match book {
            Book::Credits => &self.leases,
            Book::Budgets => &self.budget_leases,
        }
    }

    /// Ends a top-up that `granted` (see [`Refill::finish`]). If no call is
    /// in flight or waiting for it any more and `lease_idle` is zero, asks
    /// the committer to return the lease at once, as a release does.
    fn end_refill(&self, book: Book, refill: Refill, granted: i64, background: bool) {
        let account = refill.account.clone();
        if !refill.finish(granted, background) || !self.options.lease_idle.is_zero() {
            return;
        }
        let _ = self.committer.send(match book {
            Book::Credits => Job::Nudge(account),
            Book::Budgets => Job::NudgeBudget(account),
        });
    }

    /// Gives back a hold, `charged` of it consumed; asks the committer to
    /// return the lease if nothing is in flight any more. Returns the part
    /// of `charged` taken out of the lease (see [`LocalAccount::consume`]).
    pub(crate) fn release(&self, org: &str, held: i64, charged: i64) -> i64 {
        let (from_lease, idle) = with_account(&mut self.leases.lock(), org, |account| {
            let from_lease = account.consume(held, charged);
            (from_lease, account.is_unused())
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
    /// after a top-up of the lease from the organization's balance (its own,
    /// or one in flight). Fails with `InsufficientCredits`, changing
    /// nothing, when the balance cannot cover it.
    pub async fn reserve(&self, organization_id: &str, amount: i64) -> Result<Hold, BillingError> {
        let amount = amount.max(0);
        // Made only when the lease needs a top-up, not on every call.
        let top_up = || {
            let (billing, org) = (self.clone(), organization_id.to_owned());
            move |n| {
                let (billing, org) = (billing.clone(), org.clone());
                async move { billing.top_up(&org, n).await }
            }
        };
        if self
            .hold_from(Book::Credits, organization_id, amount, top_up)
            .await?
        {
            return Ok(Hold {
                organization_id: organization_id.to_owned(),
                amount,
                budget: None,
                billing: Some(self.clone()),
            });
        }
        let available = self.available(organization_id).await?;
        Err(BillingError::InsufficientCredits {
            needed: amount,
            available,
        })
    }

    /// Holds `amount` of `account` in a lease book, topping the lease up
    /// with what `top_up` makes (a function that moves what it is given
    /// into the lease in the database, all or nothing, and returns what it
    /// granted) when short or low.
    /// Returns `false`, holding nothing, when this call's own top-up
    /// brought nothing (the database refused it: what is left cannot cover
    /// the call) or other calls kept taking what each top-up brought.
    pub(crate) async fn hold_from<M, F, Fut>(
        &self,
        book: Book,
        account: &str,
        amount: i64,
        top_up: M,
    ) -> Result<bool, BillingError>
    where
        M: Fn() -> F,
        F: Fn(i64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64, BillingError>> + Send + 'static,
    {
        let multiplier = self.inner.options.lease_multiplier.max(1);
        let leases = self.inner.book(book);
        let (mut own, mut waits) = (0, 0);
        // Kept until the next try: the lease the call waited for stays its.
        let mut _claim: Option<Claim> = None;
        loop {
            // The others may have returned the lease this instance holds:
            // no hold from it (a hold of nothing spends nothing).
            if amount > 0 && self.inner.fence.is_closed() {
                return Err(self.inner.fence.refusal());
            }
            match leases.try_hold(account, amount, multiplier > 1) {
                Take::Held(refill) => {
                    if let Some(refill) = refill {
                        self.refill_in_background(book, refill, top_up());
                    }
                    return Ok(true);
                }
                Take::Wait(mut done, claim) => {
                    _claim = Some(claim);
                    waits += 1;
                    if waits > MAX_WAITS {
                        return Ok(false);
                    }
                    // Ends when the top-up ends (its sender is dropped), or
                    // at the database timeout: the top-up goes on without us.
                    crate::within(self.inner.options.db_timeout, async {
                        while done.changed().await.is_ok() {}
                        Ok(())
                    })
                    .await?;
                    if let Some(message) = done.borrow().clone() {
                        return Err(BillingError::Unavailable(message));
                    }
                }
                Take::Short {
                    missing,
                    waiting,
                    refill,
                    claim,
                } => {
                    _claim = Some(claim);
                    own += 1;
                    if own > MAX_OWN_TOP_UPS {
                        return Ok(false);
                    }
                    // This call's look-ahead and the others' holds: a burst
                    // of calls on an empty lease (a replica starting under
                    // load) waits for two top-ups, not one per `multiplier`.
                    let ahead = missing.saturating_mul(multiplier).saturating_add(waiting);
                    if self.refill(book, refill, top_up(), ahead, missing).await? == 0 {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Starts a refill of the lease's last top-up size in the background,
    /// unless the billing is stopping or a flush waits for the refills in
    /// flight (a later hold starts it then). A refill that brings nothing
    /// stops the background refills until a call's own top-up succeeds.
    fn refill_in_background<F, Fut>(&self, book: Book, refill: Refill, top_up: F)
    where
        F: Fn(i64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64, BillingError>> + Send + 'static,
    {
        let Ok(gate) = Arc::clone(&self.inner.refills).try_read_owned() else {
            return;
        };
        if *gate || self.inner.fence.is_closed() {
            return;
        }
        let billing = self.clone();
        tokio::spawn(async move {
            let size = refill.size;
            let leases = billing.inner.book(book);
            leases.top_ups.fetch_add(1, Ordering::Relaxed);
            let result = top_up(size).await;
            refill.report(&result);
            let granted = match result {
                Ok(granted) => granted,
                Err(e) => {
                    tracing::warn!(error = %e, "a background lease refill failed");
                    0
                }
            };
            billing.inner.end_refill(book, refill, granted, true);
            drop(gate);
        });
    }

    /// Runs a call's own top-up of `ahead` (else, refused, of `missing`)
    /// and waits for it, at most the database timeout. It runs in a task of
    /// its own, so that neither a call dropped mid-way (its client gone)
    /// nor one that stopped waiting can leave a granted top-up out of the
    /// lease: a top-up that ends after its call left makes the lease idle,
    /// and it goes back to the balance. Returns what was granted.
    async fn refill<F, Fut>(
        &self,
        book: Book,
        refill: Refill,
        top_up: F,
        ahead: i64,
        missing: i64,
    ) -> Result<i64, BillingError>
    where
        F: Fn(i64) -> Fut + Send + 'static,
        Fut: Future<Output = Result<i64, BillingError>> + Send + 'static,
    {
        // A flush waiting for the top-ups in flight holds new ones back.
        let deadline = tokio::time::Instant::now() + self.inner.options.db_timeout;
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        let gate = Arc::clone(&self.inner.refills).read_owned();
        let gate = crate::within(left(), async { Ok(gate.await) }).await?;
        if *gate {
            return Err(BillingError::ShutDown);
        }
        if self.inner.fence.is_closed() {
            return Err(self.inner.fence.refusal());
        }
        let billing = self.clone();
        let task = tokio::spawn(async move {
            let leases = billing.inner.book(book);
            leases.top_ups.fetch_add(1, Ordering::Relaxed);
            let mut result = top_up(ahead).await;
            if matches!(result, Ok(0)) && ahead > missing {
                leases.top_ups.fetch_add(1, Ordering::Relaxed);
                result = top_up(missing).await;
            }
            refill.report(&result);
            // A call still waiting holds from it next (its claim keeps the
            // lease from being idle); with none left, the lease goes back.
            billing
                .inner
                .end_refill(book, refill, *result.as_ref().unwrap_or(&0), false);
            drop(gate);
            result
        });
        match crate::within(left(), async { Ok(task.await) }).await? {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(BillingError::ShutDown),
        }
    }

    /// Moves `amount` of the organization's spendable balance into this
    /// instance's lease, all or nothing. Returns what was granted (0 or `amount`).
    async fn top_up(&self, organization_id: &str, amount: i64) -> Result<i64, BillingError> {
        crate::top_up_once(
            amount,
            |id, commit_sent| self.top_up_now(organization_id, amount, id, commit_sent),
            || self.last_top_up_id(organization_id),
        )
        .await
    }

    async fn top_up_now(
        &self,
        organization_id: &str,
        amount: i64,
        top_up_id: String,
        commit_sent: crate::CommitSent,
    ) -> Result<i64, BillingError> {
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
            "INSERT INTO credit_leases (instance_id, organization_id, amount, updated_at, top_up_id) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (instance_id, organization_id) \
             DO UPDATE SET amount = credit_leases.amount + excluded.amount, \
             updated_at = excluded.updated_at, top_up_id = excluded.top_up_id",
        )
        .bind(self.instance_id())
        .bind(organization_id)
        .bind(amount)
        .bind(now)
        .bind(top_up_id)
        .execute(&mut *tx)
        .await?;
        commit_sent.mark();
        tx.commit().await?;
        Ok(amount)
    }

    /// The id of the last top-up of this instance's lease of the
    /// organization's balance, once no top-up of it is open any more.
    pub(crate) async fn last_top_up_id(
        &self,
        organization_id: &str,
    ) -> Result<Option<String>, BillingError> {
        let mut tx = self.db().begin_write().await?;
        // Waits for an open top-up, which holds this row until it ends.
        sqlx::query(
            "UPDATE credit_accounts SET updated_at = updated_at WHERE organization_id = $1",
        )
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        let id: Option<Option<String>> = sqlx::query_scalar(
            "SELECT top_up_id FROM credit_leases WHERE instance_id = $1 AND organization_id = $2",
        )
        .bind(self.instance_id())
        .bind(organization_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.rollback().await?;
        Ok(id.flatten())
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

    /// Counters of this instance's credit leases: top-ups run, calls that waited.
    pub fn lease_counters(&self) -> LeaseCounters {
        self.inner.leases.counters()
    }

    /// Counters of this instance's key-budget leases.
    pub fn budget_lease_counters(&self) -> LeaseCounters {
        self.inner.budget_leases.counters()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_topped_up_for_a_waiting_call_is_not_returned_before_it_holds() {
        let book = Arc::new(LeaseBook::default());
        let Take::Short {
            missing,
            refill,
            claim,
            ..
        } = book.try_hold("org", 3, false)
        else {
            panic!("an empty lease is short");
        };
        assert_eq!(missing, 3);

        // The top-up ends; the committer looks for idle leases before the
        // call is scheduled again.
        let idle = refill.finish(missing, false);
        assert!(!idle);
        assert_eq!(book.take_idle_lease("org", Duration::ZERO), 0);
        assert!(book.idle_organizations(Duration::ZERO).is_empty());

        assert!(matches!(book.try_hold("org", 3, false), Take::Held(None)));
        drop(claim);
        assert_eq!(book.lock()["org"].in_use, 3);
    }

    #[test]
    fn a_claim_dropped_with_its_call_leaves_the_lease_idle() {
        let book = Arc::new(LeaseBook::default());
        let Take::Short { refill, claim, .. } = book.try_hold("org", 3, false) else {
            panic!("an empty lease is short");
        };
        refill.finish(3, false);
        drop(claim);

        assert_eq!(book.take_idle_lease("org", Duration::ZERO), 3);
    }
}
