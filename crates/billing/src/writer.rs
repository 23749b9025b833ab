//! The settlement writer: commits the settlements of concurrent calls in
//! one transaction (group commit), and returns idle leases while at it.

use crate::budgets::BudgetHold;
use crate::leases::LeaseBook;
use crate::usage::UsageEntry;
use crate::{Billing, BillingError};
use sqlx::Row;
use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::{Db, time};

/// Settlements waiting for the writer, at most; callers wait beyond that.
pub(crate) const QUEUE: usize = 8192;
/// Settlements committed in one transaction, at most.
const MAX_BATCH: usize = 512;
/// Attempts at a batch before its callers are told it failed.
const ATTEMPTS: u32 = 5;

// `Settle` is nearly every job sent: boxing it would add an allocation per
// call to spare the rare small variants a few bytes of queue slot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    Settle {
        organization_id: String,
        charged: i64,
        entry: UsageEntry,
        budget: Option<BudgetHold>,
        done: oneshot::Sender<Result<(), String>>,
    },
    /// A key budget's lease may have become idle: return it if so.
    NudgeBudget(String),
    /// An organization may have become idle: return its lease if so.
    Nudge(String),
    /// Answered once everything queued before it is written.
    Flush(oneshot::Sender<()>),
}

pub(crate) async fn run(
    db: Db,
    instance_id: String,
    leases: Arc<LeaseBook>,
    budget_leases: Arc<LeaseBook>,
    lease_idle: Duration,
    mut jobs: mpsc::Receiver<Job>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let books = Books {
        leases: &leases,
        budget_leases: &budget_leases,
    };
    while jobs.recv_many(&mut batch, MAX_BATCH).await > 0 {
        write_batch(&db, &instance_id, books, lease_idle, &mut batch).await;
    }
}

struct Settlement<'a> {
    charged: i64,
    entry: &'a UsageEntry,
}

/// This instance's leases: of organizations' balances, and of key budgets.
#[derive(Clone, Copy)]
struct Books<'a> {
    leases: &'a LeaseBook,
    budget_leases: &'a LeaseBook,
}

async fn write_batch(
    db: &Db,
    instance_id: &str,
    books: Books<'_>,
    lease_idle: Duration,
    batch: &mut Vec<Job>,
) {
    let leases = books.leases;
    // Per organization, in arrival order: its settlements, and the lease
    // to return if nothing is in flight any more.
    let mut orgs: Vec<&str> = Vec::new();
    let mut settlements: HashMap<&str, Vec<Settlement<'_>>> = HashMap::new();
    // Per budget account: (charged, returned).
    let mut budgets: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for job in batch.iter() {
        let org = match job {
            Job::Settle {
                organization_id,
                charged,
                entry,
                budget,
                ..
            } => {
                if let Some(hold) = budget {
                    budgets.entry(hold.account.as_str()).or_default().0 += *charged;
                }
                settlements
                    .entry(organization_id)
                    .or_default()
                    .push(Settlement {
                        charged: *charged,
                        entry,
                    });
                organization_id.as_str()
            }
            Job::Nudge(org) => org.as_str(),
            Job::NudgeBudget(account) => {
                budgets.entry(account.as_str()).or_default();
                continue;
            }
            Job::Flush(_) => continue,
        };
        if !orgs.contains(&org) {
            orgs.push(org);
        }
    }
    let returns: HashMap<&str, i64> = orgs
        .iter()
        .map(|org| (*org, leases.take_idle_lease(org, lease_idle)))
        .collect();
    for (account, (_, returned)) in budgets.iter_mut() {
        *returned = books.budget_leases.take_idle_lease(account, lease_idle);
    }

    let mut outcome = Err(String::new());
    let mut delay = Duration::from_millis(20);
    for attempt in 1..=ATTEMPTS {
        outcome = write(db, instance_id, &orgs, &settlements, &returns, &budgets)
            .await
            .map_err(|e| e.to_string());
        match &outcome {
            Ok(()) => break,
            Err(e) if attempt < ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "writing settlements failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, "writing settlements failed; their usage is lost and their leases stay reserved until this instance stops");
                for (org, amount) in &returns {
                    leases.restore_lease(org, *amount);
                }
                for (account, (_, returned)) in &budgets {
                    books.budget_leases.restore_lease(account, *returned);
                }
            }
        }
    }
    drop(settlements);
    drop(budgets);
    for job in batch.drain(..) {
        match job {
            Job::Settle { done, .. } => {
                let _ = done.send(outcome.clone());
            }
            Job::Flush(done) => {
                let _ = done.send(());
            }
            Job::Nudge(_) | Job::NudgeBudget(_) => {}
        }
    }
}

async fn write(
    db: &Db,
    instance_id: &str,
    orgs: &[&str],
    settlements: &HashMap<&str, Vec<Settlement<'_>>>,
    returns: &HashMap<&str, i64>,
    budgets: &BTreeMap<&str, (i64, i64)>,
) -> Result<(), BillingError> {
    let now = time::now_millis();
    let mut ledger: Vec<LedgerRow<'_>> = Vec::new();
    let mut usage: Vec<UsageRow<'_>> = Vec::new();
    let mut tx = db.pool().begin().await?;
    for org in orgs {
        let calls = settlements.get(org).map(Vec::as_slice).unwrap_or(&[]);
        let charged: i64 = calls.iter().map(|s| s.charged).sum();
        let returned = returns.get(org).copied().unwrap_or(0);
        if calls.is_empty() && returned == 0 {
            continue;
        }
        // The write comes first so SQLite takes its write lock at once.
        let row = sqlx::query(
            "UPDATE credit_accounts SET balance = balance - $1, reserved = reserved - $2, updated_at = $3 \
             WHERE organization_id = $4 RETURNING balance",
        )
        .bind(charged)
        .bind(charged + returned)
        .bind(now)
        .bind(org)
        .fetch_optional(&mut *tx)
        .await?;
        let balance: i64 = match row {
            Some(row) => row.try_get("balance")?,
            // No account (never granted credits): only calls that cost
            // nothing, such as BYOK calls without a fee, get here; they
            // leave a usage record and no ledger row.
            None if charged == 0 && returned == 0 => 0,
            None => return Err(sqlx::Error::RowNotFound.into()),
        };
        sqlx::query(
            "UPDATE credit_leases SET amount = amount - $1, updated_at = $2 \
             WHERE instance_id = $3 AND organization_id = $4",
        )
        .bind(charged + returned)
        .bind(now)
        .bind(instance_id)
        .bind(org)
        .execute(&mut *tx)
        .await?;
        if returned > 0 {
            sqlx::query("DELETE FROM credit_leases WHERE instance_id = $1 AND organization_id = $2 AND amount = 0")
                .bind(instance_id)
                .bind(org)
                .execute(&mut *tx)
                .await?;
        }
        // Each ledger row shows the balance right after its own charge.
        let mut running = balance + charged;
        for call in calls {
            running -= call.charged;
            if call.charged != 0 {
                ledger.push(LedgerRow {
                    org,
                    amount: -call.charged,
                    balance_after: running,
                    request_id: &call.entry.request_id,
                });
            }
            usage.push(UsageRow {
                org,
                charged: call.charged,
                entry: call.entry,
            });
        }
    }
    crate::budgets::apply(&mut tx, instance_id, budgets, now).await?;
    insert_ledger_rows(&mut tx, &ledger, now).await?;
    insert_usage_rows(&mut tx, &usage, now).await?;
    tx.commit().await?;
    Ok(())
}

struct LedgerRow<'a> {
    org: &'a str,
    amount: i64,
    balance_after: i64,
    request_id: &'a str,
}

struct UsageRow<'a> {
    org: &'a str,
    charged: i64,
    entry: &'a UsageEntry,
}

/// Rows per multi-row `INSERT`: far below both backends' parameter limits.
const ROWS_PER_INSERT: usize = 256;

/// `($1, $2, …), ($n+1, …)` for `rows` rows of `columns` placeholders: only
/// numbered placeholders go into the SQL text, every value is bound.
fn placeholders(rows: usize, columns: usize) -> String {
    let mut sql = String::with_capacity(rows * columns * 5);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..columns {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * columns + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// A multi-row `INSERT`'s SQL, built once per row count: every batch of a
/// size sends the same text (and so reuses its prepared statement).
struct InsertSql {
    head: &'static str,
    columns: usize,
    by_rows: Mutex<Vec<Option<Arc<str>>>>,
}

impl InsertSql {
    /// `head` is `INSERT INTO t (a, b, …) VALUES `: the placeholders per row
    /// are counted from its column list, so the two cannot disagree.
    const fn new(head: &'static str) -> InsertSql {
        InsertSql {
            head,
            columns: column_count(head),
            by_rows: Mutex::new(Vec::new()),
        }
    }

    fn for_rows(&self, rows: usize) -> Arc<str> {
        let build =
            || -> Arc<str> { format!("{}{}", self.head, placeholders(rows, self.columns)).into() };
        let Ok(mut by_rows) = self.by_rows.lock() else {
            return build();
        };
        if by_rows.len() <= rows {
            by_rows.resize(rows + 1, None);
        }
        by_rows[rows].get_or_insert_with(build).clone()
    }
}

/// The columns named between the first `(` and the next `)` of `sql`.
const fn column_count(sql: &str) -> usize {
    let bytes = sql.as_bytes();
    let mut i = 0;
    let mut inside = false;
    let mut columns = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'(' if !inside => {
                inside = true;
                columns = 1;
            }
            b',' if inside => columns += 1,
            b')' if inside => return columns,
            _ => {}
        }
        i += 1;
    }
    columns
}

static LEDGER_INSERT: InsertSql = InsertSql::new(
    "INSERT INTO ledger_entries (organization_id, kind, amount, balance_after, request_id, created_at) VALUES ",
);

static USAGE_INSERT: InsertSql = InsertSql::new(
    "INSERT INTO usage_records (request_id, organization_id, api_key_id, model, provider, \
     prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, \
     list_cost_usd_micros, byok, stream, status, latency_ms, created_at) VALUES ",
);

async fn insert_ledger_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[LedgerRow<'_>],
    now: i64,
) -> Result<(), BillingError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = LEDGER_INSERT.for_rows(chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = query
                .bind(row.org)
                .bind("usage")
                .bind(row.amount)
                .bind(row.balance_after)
                .bind(row.request_id)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

async fn insert_usage_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[UsageRow<'_>],
    now: i64,
) -> Result<(), BillingError> {
    for chunk in rows.chunks(ROWS_PER_INSERT) {
        let sql = USAGE_INSERT.for_rows(chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            let e = row.entry;
            query = query
                .bind(&e.request_id)
                .bind(row.org)
                .bind(e.api_key_id.as_deref())
                .bind(&e.model)
                .bind(&e.provider)
                .bind(e.usage.prompt_tokens)
                .bind(e.usage.completion_tokens)
                .bind(e.usage.cached_prompt_tokens)
                .bind(e.usage.cache_write_tokens)
                .bind(row.charged)
                .bind(e.list_cost_usd_micros)
                .bind(e.byok)
                .bind(e.stream)
                .bind(e.status.as_str())
                .bind(e.latency_ms)
                .bind(now);
        }
        query.execute(&mut **tx).await?;
    }
    Ok(())
}

impl Billing {
    /// Charges a finished call: its real cost, never more than its hold, out
    /// of this instance's lease; the balance, the ledger row and the usage
    /// record are committed together before this returns. Returns the
    /// amount charged.
    pub async fn settle(&self, hold: crate::Hold, entry: UsageEntry) -> Result<i64, BillingError> {
        let organization_id = hold.organization_id.clone();
        let held = hold.amount;
        let budget = hold.consume();
        let charged = entry.cost.clamp(0, held);
        self.inner.release(&organization_id, held, charged);
        if let Some(budget) = &budget {
            self.inner.release_budget(budget, charged);
        }
        let (done, committed) = oneshot::channel();
        self.inner
            .writer
            .send(Job::Settle {
                organization_id,
                charged,
                entry,
                budget,
                done,
            })
            .await
            .map_err(|_| BillingError::ShutDown)?;
        committed
            .await
            .map_err(|_| BillingError::ShutDown)?
            .map_err(BillingError::SettlementFailed)?;
        Ok(charged)
    }

    /// Gives back a hold unused (the call failed and cost nothing), and
    /// waits until an idle lease is returned to the balance.
    pub async fn release(&self, hold: crate::Hold) -> Result<(), BillingError> {
        let organization_id = hold.organization_id.clone();
        let held = hold.amount;
        if let Some(budget) = hold.consume() {
            self.inner.release_budget(&budget, 0);
        }
        self.inner.release(&organization_id, held, 0);
        self.flush().await
    }

    /// Waits until every settlement queued so far is written.
    pub async fn flush(&self) -> Result<(), BillingError> {
        let (done, flushed) = oneshot::channel();
        self.inner
            .writer
            .send(Job::Flush(done))
            .await
            .map_err(|_| BillingError::ShutDown)?;
        flushed.await.map_err(|_| BillingError::ShutDown)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_number_every_value() {
        assert_eq!(super::placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }

    #[test]
    fn inserts_have_a_placeholder_per_bound_column() {
        // insert_ledger_rows binds 6 values a row, insert_usage_rows 15.
        assert_eq!(super::LEDGER_INSERT.columns, 6);
        assert_eq!(super::USAGE_INSERT.columns, 15);
        assert_eq!(super::column_count("INSERT INTO t (a) VALUES "), 1);
    }
}
