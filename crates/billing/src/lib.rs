//! Billing: credit accounts, holds, settlement, the ledger and usage records.
//!
//! Every call follows reserve → call → settle:
//! 1. [`Billing::reserve`] places a hold for the call's maximum possible cost
//!    with one conditional `UPDATE` that succeeds only while
//!    `balance - reserved - hold + overdraft_limit >= 0`. The database applies
//!    it atomically (a row lock on PostgreSQL, the single writer on SQLite), so
//!    no number of concurrent calls on any number of replicas can reserve more
//!    than the balance covers.
//! 2. [`Billing::settle`] charges the real cost, never more than the hold, and
//!    in the same transaction releases the hold, appends the ledger row and
//!    writes the usage record. The balance therefore never goes below
//!    `-overdraft_limit`, and the ledger always sums to the balance.
//! 3. Holds belong to a gateway instance that heartbeats; the holds of an
//!    instance that stopped heartbeating (killed, lost) are released by any
//!    other instance or by the next start, so no balance stays blocked.

mod accounts;
mod holds;
mod pricing;
mod usage;

pub use accounts::{CreditsView, GrantOutcome, LedgerEntry};
pub use holds::{Hold, Instance};
pub use pricing::{charge_for, max_charge_for};
pub use usage::{UsageEntry, UsageRecord, UsageStatus};

use tollgate_core::Db;

#[derive(Debug, thiserror::Error)]
pub enum BillingError {
    #[error("insufficient credits: this call may cost up to {needed}, {available} available")]
    InsufficientCredits { needed: i64, available: i64 },
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("idempotency key already used with a different request")]
    IdempotencyConflict,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// The billing service on one database.
#[derive(Clone)]
pub struct Billing {
    db: Db,
}

impl Billing {
    pub fn new(db: Db) -> Billing {
        Billing { db }
    }
}
