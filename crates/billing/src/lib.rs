//! Billing: credit accounts, holds, settlement, the ledger and usage records.
//!
//! Every call follows reserve → call → settle, and the design keeps the
//! database off the request's critical path without ever overspending:
//!
//! 1. **Leases.** A gateway instance sets part of an organization's balance
//!    aside in the database with one conditional `UPDATE` that succeeds only
//!    while `balance - reserved - lease + overdraft_limit >= 0`
//!    (`reserved` is the sum of all instances' leases). The database applies
//!    it atomically (a row lock on PostgreSQL, the single writer on SQLite),
//!    so the leases of all instances together never exceed what the
//!    organization can spend.
//! 2. **Holds.** Each call holds its maximum possible cost out of its
//!    instance's lease, in memory; when the lease is short, the instance
//!    tops it up (step 1) or the call gets 402. Leases are refilled ahead
//!    in the background, one top-up in flight per lease, so that steady
//!    traffic never waits for the database (see `leases`).
//! 3. **Settlement.** The real cost (the provider's usage, in full) is
//!    charged out of the lease: the balance and `reserved` drop together,
//!    and the ledger row and usage record are written in the same
//!    transaction. A call waits only until its settlement is in the local
//!    journal (`journal`), which survives a killed process; the committer
//!    (`writer`) commits the settlements of concurrent calls in one
//!    transaction (group commit) in the background, retries for as long as
//!    the database is away, and at start the journals of dead instances
//!    are replayed, so an answered call is always billed exactly once.
//! 4. **Return.** When an instance has no call in flight for an
//!    organization, its next commit returns the lease. Instances heartbeat;
//!    the leases of an instance that stopped (killed, lost) are returned by
//!    any other instance, or at the next start on SQLite, so no balance
//!    stays blocked.
//!
//! Hence: balance ≥ −overdraft_limit always, the ledger sums to the balance,
//! and every settled call has exactly one usage record.
//!
//! API-key budgets work the same way, per key and budget period (see
//! `budgets`): the budget's leases never exceed what is left of it, so a
//! key's `spent` never exceeds its budget.

mod accounts;
mod budgets;
mod instances;
mod journal;
mod leases;
mod pricing;
#[cfg(test)]
mod tests;
mod usage;
mod writer;

pub use accounts::{CreditsView, GrantOutcome, LedgerEntry, MAX_OVERDRAFT_LIMIT};
pub use budgets::{BudgetSpending, KeyBudget};
pub use journal::{FSYNC_INTERVAL, JournalError};
pub use leases::{Hold, LeaseCounters, REFILL_LOW_WATER_DIVISOR};
pub use pricing::{
    PricingRule, byok_charge, charge_for, marked_up_charge_for, max_charge_for,
    max_marked_up_charge_for,
};
pub use usage::{UsageEntry, UsageFilter, UsageGroup, UsageRecord, UsageStatus, UsageSummaryRow};

use journal::{BudgetCharge, Journal, Settlement};
use leases::LeaseBook;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::Db;
use writer::Job;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("insufficient credits: this call may cost up to {needed}, {available} available")]
    InsufficientCredits { needed: i64, available: i64 },
    /// The key's budget for its current period cannot cover this call
    /// (the organization's balance may still be enough).
    #[error(
        "this call may cost up to {needed}; the key's {} budget of {limit} has {available} left ({spent} spent)",
        period.as_str()
    )]
    BudgetExceeded {
        api_key_id: String,
        period: tollgate_core::BudgetPeriod,
        limit: i64,
        spent: i64,
        needed: i64,
        available: i64,
    },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("idempotency key already used with a different request")]
    IdempotencyConflict,
    #[error("the settlement could not be written: {0}")]
    SettlementFailed(String),
    #[error("billing is shut down")]
    ShutDown,
    /// The database is unreachable or too slow to answer: the call can be
    /// tried again shortly.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Db(sqlx::Error),
}

impl From<sqlx::Error> for BillingError {
    fn from(e: sqlx::Error) -> Self {
        if tollgate_core::db::is_unavailable(&e) {
            BillingError::Unavailable(e.to_string())
        } else {
            BillingError::Db(e)
        }
    }
}

/// Longest a lease top-up's transaction may take. A call waits for it at
/// most the database timeout (`BillingOptions::db_timeout`), but the
/// transaction itself is not abandoned then: dropped once its `COMMIT` was
/// sent, it could commit all the same, and what it set aside would stay
/// reserved with no lease in memory to return it. Run to its end, what it
/// granted joins the lease and goes back to the balance when idle.
pub(crate) const TOP_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a lease top-up whose commit had an unknown outcome is read back
/// before the gateway gives up knowing it.
const RESOLVE_FOR: Duration = Duration::from_secs(60);

/// Set by a lease top-up just before it sends its `COMMIT`: from then on,
/// a failure leaves its outcome unknown.
#[derive(Clone, Default)]
pub(crate) struct CommitSent(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl CommitSent {
    pub(crate) fn mark(&self) {
        self.0.store(true, std::sync::atomic::Ordering::Release);
    }

    fn is_marked(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::Acquire)
    }
}

/// Runs a lease top-up's transaction, `top_up(id, commit_sent)`, which
/// writes `id` beside the lease it tops up and marks `commit_sent` before
/// it sends its `COMMIT`. When it fails after that (the connection lost, or
/// [`TOP_UP_TIMEOUT`] passed), the database may have committed it all the
/// same: `read_id` then reads the lease's last top-up id back, retried for
/// up to [`RESOLVE_FOR`] while the database is away, and the top-up counts
/// as granted if the id is its own. Only if that never succeeds does what
/// it may have set aside stay reserved until this instance stops (the safe
/// side: never spent twice), with a warning.
///
/// `read_id` must first lock the row the top-up updated, so that it waits
/// for the top-up's own transaction to end if that is still open.
pub(crate) async fn top_up_once<T, TFut, R, RFut>(
    amount: i64,
    top_up: T,
    read_id: R,
) -> Result<i64, BillingError>
where
    T: FnOnce(String, CommitSent) -> TFut,
    TFut: std::future::Future<Output = Result<i64, BillingError>>,
    R: Fn() -> RFut,
    RFut: std::future::Future<Output = Result<Option<String>, BillingError>>,
{
    let id = tollgate_core::ids::new_id("topup");
    let commit_sent = CommitSent::default();
    let result = within(TOP_UP_TIMEOUT, top_up(id.clone(), commit_sent.clone())).await;
    let error = match result {
        Err(error) if commit_sent.is_marked() => error,
        done => return done,
    };
    let deadline = tokio::time::Instant::now() + RESOLVE_FOR;
    let mut delay = Duration::from_millis(50);
    loop {
        match within(TOP_UP_TIMEOUT, read_id()).await {
            Ok(found) if found.as_deref() == Some(id.as_str()) => {
                tracing::info!(error = %error, "a lease top-up whose commit had an unknown outcome was committed: read back");
                return Ok(amount);
            }
            Ok(_) => return Err(error),
            Err(_) if tokio::time::Instant::now() + delay < deadline => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::warn!(
                    error = %error,
                    read_back = %e,
                    "a lease top-up failed after its commit was sent and could not be read back; if it went through, what it set aside stays reserved until this instance stops"
                );
                return Err(error);
            }
        }
    }
}

/// Runs one database operation, failing with `Unavailable` after `limit`
/// instead of waiting for a database that does not answer.
pub(crate) async fn within<T>(
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, BillingError>>,
) -> Result<T, BillingError> {
    tokio::time::timeout(limit, op)
        .await
        .map_err(|_| BillingError::Unavailable("the database did not answer in time".into()))?
}

/// Settlements of this process whose charge exceeded their hold.
static BEYOND_HOLD: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Settlements of this process whose provider usage exceeded the call's
/// hold (each also logged as a warning): the excess may take a balance
/// below its overdraft limit, so this is what to alert on (exported as
/// `tollgate_settlements_beyond_hold_total`).
pub fn settlements_beyond_hold() -> u64 {
    BEYOND_HOLD.load(std::sync::atomic::Ordering::Relaxed)
}

/// How billing behaves on this instance.
#[derive(Debug, Clone)]
pub struct BillingOptions {
    /// A lease top-up asks for this many times the missing amount, so that
    /// the next calls hold from memory. 1 disables look-ahead, and the
    /// refills ahead in the background with it.
    pub lease_multiplier: i64,
    /// A lease with no call in flight for this long goes back to the
    /// balance. Zero returns it as soon as the last call settles.
    pub lease_idle: std::time::Duration,
    /// On a single node (SQLite), every other instance is dead at start, so
    /// their leases are returned at once instead of after the heartbeat timeout.
    pub single_node: bool,
    /// An instance silent (no heartbeat) for this long is taken for dead,
    /// and the other instances return its credit and budget leases.
    pub instance_timeout: std::time::Duration,
    /// Where the settlement journal lives. `None`: no journal, each
    /// settlement waits for its commit (for in-memory databases).
    pub journal_dir: Option<PathBuf>,
    /// At most one settlement commit per interval; later settlements join
    /// the next batch. Reads of balances, the ledger and usage through
    /// another instance may lag by this plus one commit.
    pub commit_interval: Duration,
    /// Longest wait for the database on a call's path (a lease top-up)
    /// before the call is refused with `Unavailable`.
    pub db_timeout: Duration,
}

impl Default for BillingOptions {
    fn default() -> Self {
        BillingOptions {
            lease_multiplier: 16,
            lease_idle: std::time::Duration::from_secs(1),
            single_node: false,
            instance_timeout: std::time::Duration::from_secs(30),
            journal_dir: None,
            commit_interval: Duration::from_millis(10),
            db_timeout: Duration::from_millis(1500),
        }
    }
}

/// The billing service of one gateway instance. Cheap to clone.
#[derive(Clone)]
pub struct Billing {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    instance_id: String,
    options: BillingOptions,
    leases: Arc<LeaseBook>,
    /// Leases of API-key budgets, by [`budgets::account`].
    budget_leases: Arc<LeaseBook>,
    /// The committer's queue: settlements, lease nudges and flushes, in order.
    committer: mpsc::UnboundedSender<Job>,
    journal: Option<Arc<Journal>>,
    /// Held (read) by every lease top-up in flight; `true` once billing is
    /// stopping. A flush, the stop or a registration again takes it
    /// (write) to wait for them.
    refills: Arc<tokio::sync::RwLock<bool>>,
    /// Closed while this instance's last heartbeat is too old to spend
    /// from its leases (see `instances`).
    fence: instances::Fence,
}

impl Billing {
    /// Registers this instance, replays the settlement journals of dead
    /// instances (before any lease is returned), and starts the journal
    /// and the committer.
    pub async fn start(db: Db, options: BillingOptions) -> Result<Billing, BillingError> {
        let fence = instances::Fence::new(options.instance_timeout, options.single_node);
        let instance_id = instances::register(&db).await?;
        let journal = match &options.journal_dir {
            Some(dir) => {
                let journal = Arc::new(Journal::open(dir, &instance_id)?);
                let orphans = journal::orphans(dir, &instance_id)?;
                writer::replay(&db, &instance_id, orphans).await?;
                Some(journal)
            }
            None => None,
        };
        if options.single_node {
            let returned = instances::return_leases_of_others(&db, &instance_id).await?;
            if returned > 0 {
                tracing::info!(
                    leases = returned,
                    "returned the credit leases of an earlier run"
                );
            }
        }
        let (committer, jobs) = mpsc::unbounded_channel();
        let leases = Arc::new(LeaseBook::default());
        let budget_leases = Arc::new(LeaseBook::default());
        // The committer owns no `Billing`: it stops when the last one is dropped.
        tokio::spawn(writer::run(
            writer::Committer {
                db: db.clone(),
                instance_id: instance_id.clone(),
                leases: leases.clone(),
                budget_leases: budget_leases.clone(),
                lease_idle: options.lease_idle,
                journal: journal.clone(),
                interval: options.commit_interval,
            },
            jobs,
        ));
        if let Some(journal) = &journal {
            journal::start_tidying(journal)?;
        }
        Ok(Billing {
            inner: Arc::new(Inner {
                db,
                instance_id,
                options,
                leases,
                budget_leases,
                committer,
                journal,
                refills: Arc::default(),
                fence,
            }),
        })
    }

    /// Charges a finished call: the provider's usage in full, out of this
    /// instance's lease (beyond it, when the usage exceeds the hold, the
    /// balance goes down further). Returns the amount charged as soon as
    /// the settlement is journaled; it is committed to the database (the
    /// balance, the ledger row and the usage record together) in the
    /// background.
    pub async fn settle(&self, hold: Hold, entry: UsageEntry) -> Result<i64, BillingError> {
        let organization_id = hold.organization_id.clone();
        let held = hold.amount;
        let budget = hold.consume();
        let charged = entry.cost.max(0);
        let from_lease = self.inner.release(&organization_id, held, charged);
        let budget = budget.map(|b| BudgetCharge {
            from_lease: self.inner.release_budget(&b, charged),
            account: b.account,
        });
        if charged > held {
            BEYOND_HOLD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                organization_id = %organization_id,
                request_id = %entry.request_id,
                held,
                charged,
                beyond_lease = charged - from_lease,
                "a provider's usage exceeded the call's hold; the excess is charged too"
            );
        }
        let settlement = Box::new(Settlement {
            instance_id: self.inner.instance_id.clone(),
            organization_id,
            charged,
            from_lease,
            budget,
            entry,
        });
        let segment = self
            .inner
            .journal
            .as_ref()
            .and_then(|journal| journal.append(&settlement));
        // Unjournaled (no journal, or its write failed), the settlement is
        // durable only once committed: the answer waits for that.
        let (ack, durable) = match segment {
            Some(_) => (None, None),
            None => {
                let (ack, durable) = oneshot::channel();
                (Some(ack), Some(durable))
            }
        };
        self.send(Job::Settle {
            settlement,
            segment,
            ack,
        })?;
        if let Some(durable) = durable {
            durable.await.map_err(|_| BillingError::ShutDown)?;
        }
        Ok(charged)
    }

    fn send(&self, job: Job) -> Result<(), BillingError> {
        self.inner
            .committer
            .send(job)
            .map_err(|_| BillingError::ShutDown)
    }

    /// Gives back a hold unused (the call failed and cost nothing). With
    /// `lease_idle` zero, waits (at most the database timeout) until the
    /// idle lease is returned to the balance.
    pub async fn release(&self, hold: Hold) -> Result<(), BillingError> {
        let organization_id = hold.organization_id.clone();
        let held = hold.amount;
        if let Some(budget) = hold.consume() {
            self.inner.release_budget(&budget, 0);
        }
        self.inner.release(&organization_id, held, 0);
        if self.inner.options.lease_idle.is_zero() {
            // Bounded: the call's answer never waits on a database that is away.
            let _ = tokio::time::timeout(self.inner.options.db_timeout, self.flush()).await;
        }
        Ok(())
    }

    /// Waits until the lease top-ups in flight have ended and every
    /// settlement and lease return queued so far is committed.
    pub async fn flush(&self) -> Result<(), BillingError> {
        // A top-up ending with its lease idle queues the lease's return first.
        drop(self.inner.refills.write().await);
        self.flush_queue().await
    }

    /// Waits until every settlement and lease return queued so far is committed.
    async fn flush_queue(&self) -> Result<(), BillingError> {
        let (done, flushed) = oneshot::channel();
        self.send(Job::Flush(done))?;
        flushed.await.map_err(|_| BillingError::ShutDown)
    }

    /// Waits until this instance's settlements so far are committed, at
    /// most `limit`; `Unavailable` if they are not by then (the database
    /// is away). A read after it sees every call this instance answered.
    pub async fn committed_within(&self, limit: Duration) -> Result<(), BillingError> {
        within(limit, self.flush()).await
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Settlements journaled but not yet committed to the database: the
    /// settlement backlog (it grows while the database is away).
    pub fn settlement_queue_depth(&self) -> u64 {
        self.inner.journal.as_ref().map_or(0, |j| j.uncommitted())
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }

    /// Why this instance is fenced (it may not spend from its leases, so
    /// calls that need credit get 503), or `None` when it is not. Never on
    /// a single node.
    pub fn fenced(&self) -> Option<String> {
        self.inner.fence.reason()
    }
}
