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
//!    tops it up (step 1) or the call gets 402.
//! 3. **Settlement.** The real cost, never more than the hold, is charged
//!    out of the lease: the balance and `reserved` drop together, and the
//!    ledger row and usage record are written in the same transaction. A
//!    writer task commits the settlements of concurrent calls in one
//!    transaction (group commit); each call waits for its commit before it
//!    answers, so an answered call is always billed.
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
mod leases;
mod pricing;
mod usage;
mod writer;

pub use accounts::{CreditsView, GrantOutcome, LedgerEntry, MAX_OVERDRAFT_LIMIT};
pub use budgets::{BudgetSpending, KeyBudget};
pub use leases::Hold;
pub use pricing::{
    PricingRule, byok_charge, charge_for, marked_up_charge_for, max_charge_for,
    max_marked_up_charge_for,
};
pub use usage::{UsageEntry, UsageFilter, UsageGroup, UsageRecord, UsageStatus, UsageSummaryRow};

use leases::LeaseBook;
use std::sync::Arc;
use tokio::sync::mpsc;
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
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How billing behaves on this instance.
#[derive(Debug, Clone)]
pub struct BillingOptions {
    /// A lease top-up asks for this many times the missing amount, so that
    /// the next calls hold from memory. 1 disables look-ahead.
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
}

impl Default for BillingOptions {
    fn default() -> Self {
        BillingOptions {
            lease_multiplier: 16,
            lease_idle: std::time::Duration::from_secs(1),
            single_node: false,
            instance_timeout: std::time::Duration::from_secs(30),
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
    writer: mpsc::Sender<Job>,
}

impl Billing {
    /// Registers this instance and starts its settlement writer.
    pub async fn start(db: Db, options: BillingOptions) -> Result<Billing, BillingError> {
        let instance_id = instances::register(&db).await?;
        if options.single_node {
            let returned = instances::return_leases_of_others(&db, &instance_id).await?;
            if returned > 0 {
                tracing::info!(
                    leases = returned,
                    "returned the credit leases of an earlier run"
                );
            }
        }
        let (writer, jobs) = mpsc::channel(writer::QUEUE);
        let leases = Arc::new(LeaseBook::default());
        let budget_leases = Arc::new(LeaseBook::default());
        // The writer owns no `Billing`: it stops when the last one is dropped.
        tokio::spawn(writer::run(
            db.clone(),
            instance_id.clone(),
            leases.clone(),
            budget_leases.clone(),
            options.lease_idle,
            jobs,
        ));
        Ok(Billing {
            inner: Arc::new(Inner {
                db,
                instance_id,
                options,
                leases,
                budget_leases,
                writer,
            }),
        })
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    pub fn instance_id(&self) -> &str {
        &self.inner.instance_id
    }
}
