//! How far a `usage.batch` cursor may go: the usage record id up to which
//! every record has committed. Both the worker (the bound of a summary) and
//! subscription creation (the cursor's start) read it here, so that neither
//! puts a cursor above a record that commits later.

use crate::{WebhookError, Webhooks};
use tollgate_core::Backend;

/// How long [`Webhooks::settled_usage_id`] waits for the transactions
/// inserting usage records to end.
const USAGE_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '1s'";

impl Webhooks {
    /// The largest usage record id, of `organization_id`'s records or of all
    /// when `None`, such that every record with an id up to it has committed
    /// (or never will, its transaction having rolled back): a cursor set to
    /// it passes no record that could still appear.
    ///
    /// On PostgreSQL an id is taken from the sequence when a transaction
    /// inserts, not when it commits: a record with a lower id can commit after
    /// one with a higher id was read, and a cursor moved past both would never
    /// send it. `SHARE` conflicts with the `ROW EXCLUSIVE` lock that an
    /// inserting transaction takes before its ids and holds until it ends, so
    /// the lock is granted once every transaction that took an id has ended,
    /// and the largest id visible then bounds the committed ones; later
    /// inserts get larger ids (the identity's sequence caches no ids per
    /// session). Its wait is bounded because new inserts queue behind a
    /// waiting `SHARE` request: a stuck inserting transaction fails this read
    /// (the worker tries again next round) instead of stalling every
    /// settlement.
    ///
    /// The lock is held in a transaction of its own, for the one index lookup,
    /// and released before this returns: callers use the id in later
    /// statements or transactions, which is safe because whatever is inserted
    /// after the lock gets a larger id.
    ///
    /// SQLite has one writer at a time, so its ids commit in order and the
    /// largest id it shows is settled: no lock.
    pub(crate) async fn settled_usage_id(
        &self,
        organization_id: Option<&str>,
    ) -> Result<i64, WebhookError> {
        let mut tx = self.db().pool().begin().await?;
        if self.db().backend() == Backend::Postgres {
            sqlx::query(USAGE_LOCK_TIMEOUT).execute(&mut *tx).await?;
            sqlx::query("LOCK TABLE usage_records IN SHARE MODE")
                .execute(&mut *tx)
                .await?;
        }
        let max: i64 = match organization_id {
            None => {
                sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM usage_records")
                    .fetch_one(&mut *tx)
                    .await?
            }
            Some(org) => {
                sqlx::query_scalar(
                    "SELECT CAST(COALESCE(MAX(id), 0) AS BIGINT) FROM usage_records \
                     WHERE organization_id = $1",
                )
                .bind(org)
                .fetch_one(&mut *tx)
                .await?
            }
        };
        tx.commit().await?;
        Ok(max)
    }
}
