//! The committer: writes journaled settlements to the database in batches
//! (group commit), returns idle leases while at it, and never gives up on a
//! settlement: a failing database is retried with backoff for as long as it
//! takes, and a commit whose outcome is unknown is resolved by reading back
//! its request ids (`usage_records.request_id` is unique), never by guessing.

use crate::BillingError;
use crate::journal::{Journal, Orphan, Settlement};
use crate::leases::LeaseBook;
use crate::usage::UsageEntry;
use sqlx::Row;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tollgate_core::batch::Gather;
use tollgate_core::db::Backend;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::sql::{InsertSql, ROWS_PER_INSERT, Script, chunks, placeholders};
use tollgate_core::{Db, time};

/// Settlements committed in one transaction, at most.
pub(crate) const MAX_BATCH: usize = 512;
/// Longest wait for one batch's transaction before it counts as failed
/// (its outcome is then read back): a vanished PostgreSQL never answers.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two attempts at a failing batch.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Attempts at a batch failing with an error that is not the database
/// being away (so will not heal by waiting), before each of its
/// settlements is tried alone.
const PERMANENT_ATTEMPTS: u32 = 3;

/// Failed settlement writes: the first is logged, then a summary at most
/// every half minute (an outage fails every retry), each counted in
/// `tollgate_dependency_errors_total{dependency="database"}`.
static WRITE_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "writing settlements failed; they are journaled and retried until the database takes them",
);

// `Settle` is nearly every job sent: boxing it would add an allocation per
// call to spare the rare small variants a few bytes of queue slot.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Job {
    Settle {
        /// Boxed: a settlement is far larger than the other jobs.
        settlement: Box<Settlement>,
        /// The journal segment it was appended to; `None` if journaling failed.
        segment: Option<u64>,
        /// Sent once the settlement is durable: at once when journaled,
        /// else after its commit.
        ack: Option<oneshot::Sender<()>>,
    },
    /// A key budget's lease may have become idle: return it if so.
    NudgeBudget(String),
    /// An organization may have become idle: return its lease if so.
    Nudge(String),
    /// Answered once everything queued before it is committed.
    Flush(oneshot::Sender<()>),
}

/// What the committer task works with.
pub(crate) struct Committer {
    pub db: Db,
    pub instance_id: String,
    pub leases: Arc<LeaseBook>,
    pub budget_leases: Arc<LeaseBook>,
    pub lease_idle: Duration,
    pub journal: Option<Arc<Journal>>,
    /// At most one commit per interval: later settlements join the next batch.
    pub interval: Duration,
}

pub(crate) async fn run(committer: Committer, mut jobs: mpsc::UnboundedReceiver<Job>) {
    let mut gather = Gather::new(committer.interval, MAX_BATCH);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while gather.next(&mut jobs, &mut batch).await {
        committer.write_batch(&mut batch).await;
    }
}

/// Lease returns of this instance in one batch: of balances by
/// organization, of key budgets by budget account.
#[derive(Default)]
pub(crate) struct Returns {
    pub credits: HashMap<String, i64>,
    pub budgets: BTreeMap<String, i64>,
}

impl Returns {
    fn is_empty(&self) -> bool {
        self.credits.values().all(|a| *a == 0) && self.budgets.values().all(|a| *a == 0)
    }
}

impl Committer {
    async fn write_batch(&self, batch: &mut Vec<Job>) {
        let mut returns = Returns::default();
        let mut settlements: Vec<&Settlement> = Vec::new();
        for job in batch.iter() {
            match job {
                Job::Settle { settlement, .. } => {
                    settlements.push(settlement.as_ref());
                    if settlement.instance_id == self.instance_id {
                        returns
                            .credits
                            .entry(settlement.organization_id.clone())
                            .or_default();
                    }
                    if let Some(budget) = &settlement.budget {
                        returns.budgets.entry(budget.account.clone()).or_default();
                    }
                }
                Job::Nudge(org) => {
                    returns.credits.entry(org.clone()).or_default();
                }
                Job::NudgeBudget(account) => {
                    returns.budgets.entry(account.clone()).or_default();
                }
                Job::Flush(_) => {}
            }
        }
        for (org, amount) in returns.credits.iter_mut() {
            *amount = self.leases.take_idle_lease(org, self.lease_idle);
        }
        for (account, amount) in returns.budgets.iter_mut() {
            *amount = self.budget_leases.take_idle_lease(account, self.lease_idle);
        }
        let skipped: HashSet<String> =
            commit(&self.db, &self.instance_id, settlements, returns, false)
                .await
                .into_iter()
                .map(|s| s.entry.request_id.clone())
                .collect();
        let mut by_segment: BTreeMap<u64, u64> = BTreeMap::new();
        let mut acks = Vec::new();
        let mut flushes = Vec::new();
        for job in batch.drain(..) {
            match job {
                Job::Settle {
                    settlement,
                    segment,
                    ack,
                } => {
                    // A skipped settlement stays in its segment, for the
                    // next start's replay.
                    if let Some(seq) = segment
                        && !skipped.contains(&settlement.entry.request_id)
                    {
                        *by_segment.entry(seq).or_default() += 1;
                    }
                    acks.extend(ack);
                }
                Job::Flush(done) => flushes.push(done),
                Job::Nudge(_) | Job::NudgeBudget(_) => {}
            }
        }
        if let Some(journal) = &self.journal {
            for (seq, n) in by_segment {
                journal.committed(seq, n);
            }
        }
        for done in acks.into_iter().chain(flushes) {
            let _ = done.send(());
        }
    }
}

/// Commits `settlements` (each exactly once) and this instance's lease
/// `returns`, retrying for as long as the database is away. With
/// `read_back`, settlements already in the database are left out first
/// (replay). Returns the settlements that failed for good (logged): they
/// stay in the journal.
pub(crate) async fn commit<'s>(
    db: &Db,
    instance_id: &str,
    mut pending: Vec<&'s Settlement>,
    mut returns: Returns,
    mut read_back: bool,
) -> Vec<&'s Settlement> {
    let mut delay = Duration::from_millis(20);
    let mut attempts = 0u32;
    loop {
        if read_back {
            match committed_request_ids(db, &pending).await {
                Ok(committed) => {
                    if !committed.is_empty() {
                        tracing::info!(
                            settlements = committed.len(),
                            "settlements whose commit had an unknown outcome are in the database: read back, not written again"
                        );
                        pending.retain(|s| !committed.contains(&s.entry.request_id));
                        // They were in the same transaction as the returns.
                        returns = Returns::default();
                    }
                    read_back = false;
                }
                Err(e) => {
                    WRITE_FAILED.failed(&e);
                    attempts += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        if pending.is_empty() && returns.is_empty() {
            return Vec::new();
        }
        let mut at_commit = false;
        let outcome = tokio::time::timeout(
            WRITE_TIMEOUT,
            write(db, instance_id, &pending, &returns, &mut at_commit),
        )
        .await;
        let (error, transient) = match outcome {
            Ok(Ok(())) => {
                if attempts > 0 {
                    WRITE_FAILED.recovered();
                    tracing::info!(attempts, "settlements written after the database came back");
                }
                return Vec::new();
            }
            Ok(Err(e)) => {
                let transient = is_transient(&e);
                (e.to_string(), transient)
            }
            Err(_) => {
                at_commit = true;
                ("the database did not answer in time".to_owned(), true)
            }
        };
        if at_commit {
            if pending.is_empty() {
                // Nothing to read back: count the returns as done, the
                // safe side (a lease left reserved is never overspent).
                tracing::warn!(error = %error, "returning idle leases had an unknown outcome; counted as done");
                return Vec::new();
            }
            read_back = true;
        }
        attempts += 1;
        WRITE_FAILED.failed(&error);
        if !transient && attempts >= PERMANENT_ATTEMPTS {
            return commit_one_by_one(db, instance_id, pending, returns).await;
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(MAX_BACKOFF);
    }
}

/// A batch that keeps failing for a reason other than the database being
/// away: each settlement alone, so that one bad record cannot hold up the
/// rest. Returns those that still fail.
async fn commit_one_by_one<'s>(
    db: &Db,
    instance_id: &str,
    pending: Vec<&'s Settlement>,
    returns: Returns,
) -> Vec<&'s Settlement> {
    let mut failed = Vec::new();
    let mut at_commit = false;
    if let Err(e) = write(db, instance_id, &[], &returns, &mut at_commit).await {
        tracing::error!(error = %e, "returning idle leases failed; they stay reserved until this instance stops");
    }
    for settlement in pending {
        let one = [settlement];
        let result = match committed_request_ids(db, &one).await {
            Ok(done) if !done.is_empty() => Ok(()),
            _ => write(db, instance_id, &one, &Returns::default(), &mut at_commit).await,
        };
        if let Err(e) = result {
            tracing::error!(
                error = %e,
                request_id = %settlement.entry.request_id,
                organization_id = %settlement.organization_id,
                charged = settlement.charged,
                "a settlement cannot be written; it stays in the journal and is retried at the next start"
            );
            failed.push(settlement);
        }
    }
    failed
}

/// Errors that waiting heals: the database unreachable, restarting, busy,
/// or a transaction that lost a deadlock or serialization race.
fn is_transient(e: &BillingError) -> bool {
    match e {
        BillingError::Unavailable(_) => true,
        BillingError::Db(e) => {
            tollgate_core::db::is_unavailable(e)
                || e.as_database_error()
                    .and_then(|d| d.code().map(|c| c.into_owned()))
                    .is_some_and(|c| matches!(c.as_str(), "40001" | "40P01" | "5" | "6" | "517"))
        }
        _ => false,
    }
}

/// Which of `settlements` the database already has (by request id).
async fn committed_request_ids(
    db: &Db,
    settlements: &[&Settlement],
) -> Result<HashSet<String>, BillingError> {
    let mut found = HashSet::new();
    for chunk in settlements.chunks(ROWS_PER_INSERT) {
        let sql = format!(
            "SELECT request_id FROM usage_records WHERE request_id IN {}",
            placeholders(db.backend(), 1, chunk.len())
        );
        let mut query = sqlx::query(&sql);
        for s in chunk {
            query = query.bind(&s.entry.request_id);
        }
        let rows = tokio::time::timeout(WRITE_TIMEOUT, query.fetch_all(db.pool()))
            .await
            .map_err(|_| {
                BillingError::Unavailable("the database did not answer in time".into())
            })??;
        for row in rows {
            found.insert(row.try_get::<String, _>("request_id")?);
        }
    }
    Ok(found)
}

/// Replays the journals of dead instances: commits every settlement the
/// database does not have yet, then deletes the journal. Runs before this
/// instance returns any lease, so that a dead instance's settlements are
/// charged to its lease while it is still reserved.
pub(crate) async fn replay(
    db: &Db,
    instance_id: &str,
    orphans: Vec<Orphan>,
) -> Result<usize, BillingError> {
    let mut replayed = 0;
    for orphan in orphans {
        let settlements = orphan.settlements()?;
        let mut failed = 0;
        for chunk in settlements.chunks(MAX_BATCH) {
            let before = chunk.len();
            let refs: Vec<&Settlement> = chunk.iter().collect();
            let left = commit(db, instance_id, refs, Returns::default(), true).await;
            failed += left.len();
            replayed += before - left.len();
        }
        if failed > 0 {
            tracing::error!(
                instance_id = %orphan.instance_id,
                failed,
                "some journaled settlements could not be written; the journal is kept for the next start"
            );
            continue;
        }
        if !settlements.is_empty() {
            tracing::info!(instance_id = %orphan.instance_id, settlements = settlements.len(), "replayed the settlement journal of an earlier instance");
        }
        orphan.remove()?;
    }
    Ok(replayed)
}

async fn write(
    db: &Db,
    instance_id: &str,
    settlements: &[&Settlement],
    returns: &Returns,
    at_commit: &mut bool,
) -> Result<(), BillingError> {
    let script = settlement_script(instance_id, settlements, returns, time::now_millis());
    script.commit(db, at_commit).await?;
    Ok(())
}

/// The statements that commit `settlements` and this instance's lease
/// `returns`: per lease holder and organization the account (opened if a
/// charge finds none: it is owed all the same), the lease and the ledger
/// rows; then the key budgets and the usage rows.
fn settlement_script<'a>(
    instance_id: &'a str,
    settlements: &[&'a Settlement],
    returns: &'a Returns,
    now: i64,
) -> Script<'a> {
    // Per (lease holder, organization), in arrival order.
    let mut keys: Vec<(&str, &str)> = Vec::new();
    let mut calls: HashMap<(&str, &str), Vec<&Settlement>> = HashMap::new();
    for s in settlements {
        let key = (s.instance_id.as_str(), s.organization_id.as_str());
        let list = calls.entry(key).or_default();
        if list.is_empty() {
            keys.push(key);
        }
        list.push(s);
    }
    for (org, amount) in &returns.credits {
        let key = (instance_id, org.as_str());
        if *amount != 0 && !calls.contains_key(&key) {
            calls.insert(key, Vec::new());
            keys.push(key);
        }
    }
    // Per (budget account, lease holder): (charged, from lease, returned).
    let mut budgets: BTreeMap<(&str, &str), (i64, i64, i64)> = BTreeMap::new();
    for s in settlements {
        if let Some(b) = &s.budget {
            let e = budgets
                .entry((b.account.as_str(), s.instance_id.as_str()))
                .or_default();
            e.0 += s.charged;
            e.1 += b.from_lease;
        }
    }
    for (account, amount) in &returns.budgets {
        if *amount != 0 {
            budgets
                .entry((account.as_str(), instance_id))
                .or_default()
                .2 += amount;
        }
    }

    let mut script = Script::new();
    let mut usage: Vec<UsageRow<'_>> = Vec::new();
    for key in &keys {
        let (holder, org) = *key;
        let calls = calls.get(key).map(Vec::as_slice).unwrap_or(&[]);
        let from_lease: i64 = calls.iter().map(|s| s.from_lease).sum();
        let returned = if holder == instance_id {
            returns.credits.get(org).copied().unwrap_or(0)
        } else {
            0
        };
        if calls.is_empty() && returned == 0 {
            continue;
        }
        charge_account(&mut script, holder, org, calls, from_lease + returned, now);
        script.push(
            "UPDATE credit_leases SET amount = amount - ?, updated_at = ? \
             WHERE instance_id = ? AND organization_id = ?",
            [
                (from_lease + returned).into(),
                now.into(),
                holder.into(),
                org.into(),
            ],
        );
        if returned > 0 {
            script.push(
                "DELETE FROM credit_leases WHERE instance_id = ? AND organization_id = ? AND amount = 0",
                [holder.into(), org.into()],
            );
        }
        add_ledger_rows(&mut script, org, calls, now);
        usage.extend(calls.iter().map(|call| UsageRow {
            org,
            charged: call.charged,
            entry: &call.entry,
        }));
    }
    crate::budgets::apply(&mut script, &budgets, now);
    add_usage_rows(&mut script, &usage, now);
    script
}

/// The ledger rows of `calls` (one lease holder and organization), after
/// their account's update: each with the balance right after its own
/// charge, the account's new balance plus the charges that follow it.
fn add_ledger_rows<'a>(script: &mut Script<'a>, org: &'a str, calls: &[&'a Settlement], now: i64) {
    let mut ledger: Vec<LedgerRow<'_>> = Vec::new();
    let mut later: i64 = calls.iter().map(|s| s.charged).sum();
    for call in calls {
        later -= call.charged;
        if call.charged != 0 {
            ledger.push(LedgerRow {
                amount: -call.charged,
                later,
                request_id: &call.entry.request_id,
            });
        }
    }
    for chunk in chunks(&ledger, LEDGER_ROWS_PER_INSERT) {
        let rows = chunk.iter().enumerate().flat_map(|(i, row)| {
            [
                row.amount.into(),
                row.later.into(),
                row.request_id.into(),
                i64::try_from(i).unwrap_or(i64::MAX).into(),
            ]
        });
        let values = std::iter::once(now.into())
            .chain(rows)
            .chain(std::iter::once(org.into()));
        script.push(ledger_insert(chunk.len()), values);
    }
}

fn add_usage_rows<'a>(script: &mut Script<'a>, usage: &[UsageRow<'a>], now: i64) {
    for chunk in USAGE_INSERT.chunks(usage) {
        script.push(
            USAGE_INSERT.anonymous(chunk.len()),
            chunk.iter().flat_map(|row| {
                let e = row.entry;
                [
                    e.request_id.as_str().into(),
                    row.org.into(),
                    e.api_key_id.as_deref().into(),
                    e.model.as_str().into(),
                    e.provider.as_str().into(),
                    e.usage.prompt_tokens.into(),
                    e.usage.completion_tokens.into(),
                    e.usage.cached_prompt_tokens.into(),
                    e.usage.cache_write_tokens.into(),
                    row.charged.into(),
                    e.list_cost_usd_micros.into(),
                    e.byok.into(),
                    e.stream.into(),
                    e.status.as_str().into(),
                    e.latency_ms.into(),
                    now.into(),
                ]
            }),
        );
    }
}

/// Lowers the organization's balance by what `calls` were charged and its
/// `reserved` by `unreserve`, the part that came out of `holder`'s lease.
/// If that lease is gone (returned by another instance after `holder`
/// died), it no longer counts in `reserved`: only the balance changes. A
/// charge to an organization without an account (a call beyond any hold,
/// such as a BYOK call's fee) opens the account: it is owed all the same.
fn charge_account<'a>(
    script: &mut Script<'a>,
    holder: &'a str,
    org: &'a str,
    calls: &[&Settlement],
    unreserve: i64,
    now: i64,
) {
    const UNRESERVE: &str = "CASE WHEN EXISTS (SELECT 1 FROM credit_leases \
         WHERE instance_id = ? AND organization_id = ?) THEN ? ELSE 0 END";
    if calls.iter().all(|s| s.charged == 0) {
        script.push(
            format!(
                "UPDATE credit_accounts SET reserved = reserved - {UNRESERVE}, updated_at = ? \
                 WHERE organization_id = ?"
            ),
            [
                holder.into(),
                org.into(),
                unreserve.into(),
                now.into(),
                org.into(),
            ],
        );
        return;
    }
    let charged: i64 = calls.iter().map(|s| s.charged).sum();
    script.push(
        format!(
            "INSERT INTO credit_accounts (organization_id, balance, updated_at) VALUES (?, ?, ?) \
             ON CONFLICT (organization_id) DO UPDATE SET balance = credit_accounts.balance - ?, \
             reserved = credit_accounts.reserved - {UNRESERVE}, updated_at = ?"
        ),
        [
            org.into(),
            (-charged).into(),
            now.into(),
            charged.into(),
            holder.into(),
            org.into(),
            unreserve.into(),
            now.into(),
        ],
    );
}

struct LedgerRow<'a> {
    amount: i64,
    /// The charges of the calls after this one in the batch (same lease
    /// holder and organization).
    later: i64,
    request_id: &'a str,
}

struct UsageRow<'a> {
    org: &'a str,
    charged: i64,
    entry: &'a UsageEntry,
}

/// Ledger rows per statement at most (a power of two: see [`chunks`]).
const LEDGER_ROWS_PER_INSERT: usize = 128;

/// The ledger insert of `rows` rows of the organization whose account the
/// script has just updated, in order: binds the time, then per row the
/// amount, the charges after it (its `balance_after` is the new balance
/// plus those), its request id and its place, then the organization.
fn ledger_insert(rows: usize) -> String {
    format!(
        "INSERT INTO ledger_entries (organization_id, kind, amount, balance_after, request_id, created_at) \
         SELECT a.organization_id, 'usage', v.column1, a.balance + v.column2, v.column3, ? \
         FROM credit_accounts a, (VALUES {}) AS v WHERE a.organization_id = ? ORDER BY v.column4",
        placeholders(Backend::Sqlite, rows, 4)
    )
}

static USAGE_INSERT: InsertSql = InsertSql::new(
    "INSERT INTO usage_records (request_id, organization_id, api_key_id, model, provider, \
     prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, \
     list_cost_usd_micros, byok, stream, status, latency_ms, created_at) VALUES ",
);

#[cfg(test)]
mod tests {
    #[test]
    fn inserts_have_a_placeholder_per_bound_value() {
        // settlement_script binds 16 values a usage row; to a ledger insert
        // the time, 4 a row and the organization.
        assert_eq!(super::USAGE_INSERT.columns(), 16);
        assert_eq!(super::ledger_insert(3).matches('?').count(), 2 + 3 * 4);
    }
}
