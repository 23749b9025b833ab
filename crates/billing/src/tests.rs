//! Settlement durability against a real database (SQLite, or PostgreSQL
//! with `TOLLGATE_TEST_DATABASE=postgres`): replay of a dead instance's
//! journal, commits whose outcome was lost, and usage beyond the hold.

use crate::journal::{Journal, Settlement, segment_path};
use crate::writer::{Returns, commit};
use crate::{Billing, BillingError, BillingOptions, UsageEntry, UsageStatus};
use std::path::PathBuf;
use std::time::Duration;
use tollgate_core::Db;
use tollgate_core::money::TokenUsage;
use tollgate_core::testing::TestDatabase;

struct Fixture {
    db: Db,
    dir: PathBuf,
    org: String,
    _database: TestDatabase,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(tollgate_core::ids::new_id("billing-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let database = TestDatabase::create(&dir).await;
    let db = Db::connect(&database.url, 1).await.unwrap();
    db.migrate().await.unwrap();
    let org = tollgate_core::ids::new_id("org");
    sqlx::query(
        "INSERT INTO organizations (id, name, billing_mode, created_at, updated_at) VALUES ($1, 'Acme', 'requests', 0, 0)",
    )
    .bind(&org)
    .execute(db.pool())
    .await
    .unwrap();
    Fixture {
        db,
        dir,
        org,
        _database: database,
    }
}

fn options(dir: &std::path::Path) -> BillingOptions {
    BillingOptions {
        journal_dir: Some(dir.join("journal")),
        lease_idle: Duration::ZERO,
        commit_interval: Duration::ZERO,
        ..BillingOptions::default()
    }
}

fn entry(request_id: &str, cost: i64) -> UsageEntry {
    UsageEntry {
        request_id: request_id.to_owned(),
        api_key_id: None,
        model: "m".to_owned(),
        provider: "p".to_owned(),
        usage: TokenUsage::default(),
        cost,
        list_cost_usd_micros: 0,
        byok: false,
        stream: false,
        status: UsageStatus::Ok,
        latency_ms: 1,
    }
}

fn settlement(holder: &str, org: &str, request_id: &str, charged: i64) -> Settlement {
    Settlement {
        instance_id: holder.to_owned(),
        organization_id: org.to_owned(),
        charged,
        from_lease: charged,
        budget: None,
        entry: entry(request_id, charged),
    }
}

async fn scalar(db: &Db, sql: &str, org: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .bind(org)
        .fetch_one(db.pool())
        .await
        .unwrap()
}

/// (balance, reserved, usage records, ledger sum) of the fixture's organization.
async fn books(f: &Fixture) -> (i64, i64, i64, i64) {
    (
        scalar(&f.db, "SELECT balance FROM credit_accounts WHERE organization_id = $1", &f.org).await,
        scalar(&f.db, "SELECT reserved FROM credit_accounts WHERE organization_id = $1", &f.org).await,
        scalar(&f.db, "SELECT COUNT(*) FROM usage_records WHERE organization_id = $1", &f.org).await,
        scalar(
            &f.db,
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM ledger_entries WHERE organization_id = $1",
            &f.org,
        )
        .await,
    )
}

/// A dead instance `holder` with a lease of `lease` on the organization,
/// and a journal segment holding `settlements`.
async fn dead_instance(f: &Fixture, holder: &str, lease: i64, settlements: &[Settlement]) {
    sqlx::query("INSERT INTO credit_leases (instance_id, organization_id, amount, updated_at) VALUES ($1, $2, $3, 0)")
        .bind(holder)
        .bind(&f.org)
        .bind(lease)
        .execute(f.db.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE credit_accounts SET reserved = reserved + $1 WHERE organization_id = $2")
        .bind(lease)
        .bind(&f.org)
        .execute(f.db.pool())
        .await
        .unwrap();
    write_segment(f, holder, settlements);
}

fn write_segment(f: &Fixture, holder: &str, settlements: &[Settlement]) {
    let dir = f.dir.join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    let mut text = String::new();
    for s in settlements {
        text.push_str(&serde_json::to_string(s).unwrap());
        text.push('\n');
    }
    // A torn last line, as a crash mid-write could leave.
    text.push_str("{\"instance_id\":");
    std::fs::write(segment_path(&dir, holder, 0), text).unwrap();
}

#[tokio::test]
async fn a_dead_instances_journal_is_committed_exactly_once_at_start() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    let journaled = [
        settlement("gw_dead", &f.org, "req_1", 3),
        settlement("gw_dead", &f.org, "req_2", 4),
    ];
    dead_instance(&f, "gw_dead", 10, &journaled).await;

    let restarted = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    assert_eq!(
        books(&f).await,
        (93, 3, 2, 93),
        "charged once, out of the dead lease"
    );
    assert!(
        std::fs::read_dir(f.dir.join("journal")).unwrap().all(|e| {
            !e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with("gw_dead")
        }),
        "the replayed journal is removed"
    );

    // The same segment again (a crash after the commit, before the
    // deletion): read back, nothing is charged twice.
    write_segment(&f, "gw_dead", &journaled);
    let again = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    assert_eq!(books(&f).await, (93, 3, 2, 93));
    drop((billing, restarted, again));
}

#[tokio::test]
async fn a_settlement_whose_lease_was_already_returned_charges_only_the_balance() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    // The dead instance's lease was returned by another instance before
    // its journal was replayed: nothing of it is reserved any more.
    write_segment(&f, "gw_gone", &[settlement("gw_gone", &f.org, "req_1", 5)]);

    let restarted = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    assert_eq!(books(&f).await, (95, 0, 1, 95));
    drop((billing, restarted));
}

#[tokio::test]
async fn a_commit_whose_reply_was_lost_is_read_back_not_repeated() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    let batch = [
        settlement("gw_x", &f.org, "req_a", 2),
        settlement("gw_x", &f.org, "req_b", 5),
    ];
    let refs: Vec<&Settlement> = batch.iter().collect();
    assert!(
        commit(&f.db, "gw_x", refs.clone(), Returns::default(), false)
            .await
            .is_empty()
    );

    // The retry after an unknown outcome reads back first.
    let failed = commit(&f.db, "gw_x", refs, Returns::default(), true).await;

    assert!(failed.is_empty());
    assert_eq!(books(&f).await, (93, 0, 2, 93));
}

/// A fixture and a billing started on it, the organization granted 100.
async fn funded() -> (Fixture, Billing) {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    (f, billing)
}

/// Commits `batch` as lease holder `holder`'s, without reading back first;
/// returns the request ids of the settlements that failed for good.
async fn commit_batch(f: &Fixture, holder: &str, batch: &[Settlement]) -> Vec<String> {
    commit(
        &f.db,
        holder,
        batch.iter().collect(),
        Returns::default(),
        false,
    )
    .await
    .into_iter()
    .map(|s| s.entry.request_id.clone())
    .collect()
}

/// The ledger rows of `org`, oldest first: (request id, amount, balance after).
async fn ledger(db: &Db, org: &str) -> Vec<(Option<String>, i64, i64)> {
    sqlx::query_as(
        "SELECT request_id, amount, balance_after FROM ledger_entries WHERE organization_id = $1 ORDER BY id",
    )
    .bind(org)
    .fetch_all(db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn one_batch_of_two_lease_holders_leaves_each_ledger_row_its_own_balance() {
    let (f, billing) = funded().await;
    for holder in ["gw_a", "gw_b"] {
        dead_instance(&f, holder, 10, &[]).await;
    }
    // An organization that never had credits, charged beyond any hold.
    let other = tollgate_core::ids::new_id("org");
    sqlx::query(
        "INSERT INTO organizations (id, name, billing_mode, created_at, updated_at) VALUES ($1, 'Other', 'requests', 0, 0)",
    )
    .bind(&other)
    .execute(f.db.pool())
    .await
    .unwrap();
    let mut beyond = settlement("gw_a", &other, "req_other", 5);
    beyond.from_lease = 0;
    let batch = [
        settlement("gw_a", &f.org, "req_1", 2),
        settlement("gw_b", &f.org, "req_2", 3),
        beyond,
        settlement("gw_a", &f.org, "req_3", 4),
    ];

    let failed = commit_batch(&f, "gw_a", &batch).await;

    assert!(failed.is_empty());
    assert_eq!(books(&f).await, (91, 11, 3, 91));
    // By lease holder, each row the balance right after its own charge.
    let rows = ledger(&f.db, &f.org).await;
    let usage: Vec<(&str, i64, i64)> = rows
        .iter()
        .filter_map(|(id, amount, after)| Some((id.as_deref()?, *amount, *after)))
        .collect();
    assert_eq!(
        usage,
        [("req_1", -2, 98), ("req_3", -4, 94), ("req_2", -3, 91)]
    );
    assert_eq!(
        ledger(&f.db, &other).await,
        [(Some("req_other".to_owned()), -5, -5)],
        "the account is opened and owes the charge"
    );
    assert_eq!(
        scalar(
            &f.db,
            "SELECT balance FROM credit_accounts WHERE organization_id = $1",
            &other
        )
        .await,
        -5
    );
    drop(billing);
}

#[tokio::test]
async fn a_batch_failing_at_its_last_statement_charges_nothing_then_goes_one_by_one() {
    let (f, billing) = funded().await;
    let first = [
        settlement("gw_x", &f.org, "req_a", 2),
        settlement("gw_x", &f.org, "req_b", 5),
    ];
    assert!(commit_batch(&f, "gw_x", &first).await.is_empty());

    // req_b again, unread back: the batch's usage insert (its last
    // statement) fails on the unique request id after the account, the
    // lease and the ledger were written in the same command.
    let second = [
        settlement("gw_x", &f.org, "req_b", 5),
        settlement("gw_x", &f.org, "req_c", 4),
    ];
    let failed = commit_batch(&f, "gw_x", &second).await;

    assert!(
        failed.is_empty(),
        "one by one, req_b is found committed and req_c is written"
    );
    assert_eq!(books(&f).await, (89, 0, 3, 89), "req_b charged once");
    drop(billing);
}

#[tokio::test]
async fn usage_beyond_the_hold_is_charged_in_full() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    let hold = billing.reserve(&f.org, 10).await.unwrap();
    let alerts = crate::settlements_beyond_hold();

    let charged = billing.settle(hold, entry("req_big", 25)).await.unwrap();
    billing.flush().await.unwrap();

    assert_eq!(charged, 25);
    assert!(
        crate::settlements_beyond_hold() > alerts,
        "counted for the alert"
    );
    let (balance, _, records, ledger) = books(&f).await;
    assert_eq!((balance, records, ledger), (75, 1, 75));
    assert_eq!(billing.credits(&f.org).await.unwrap().reserved, 0);
}

#[tokio::test]
async fn a_settlement_is_journaled_before_it_returns_and_the_journal_empties_once_committed() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), options(&f.dir)).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    for i in 0..20 {
        let hold = billing.reserve(&f.org, 1).await.unwrap();
        billing
            .settle(hold, entry(&format!("req_{i}"), 1))
            .await
            .unwrap();
    }
    billing.shutdown().await.unwrap();

    assert_eq!(books(&f).await, (80, 0, 20, 80));
    let left: Vec<_> = std::fs::read_dir(f.dir.join("journal")).unwrap().collect();
    assert!(left.is_empty(), "a clean stop leaves no journal: {left:?}");
}

#[tokio::test]
async fn a_settlement_the_journal_cannot_take_waits_for_its_commit() {
    let f = fixture().await;
    let options = BillingOptions {
        commit_interval: Duration::from_millis(300),
        ..options(&f.dir)
    };
    let billing = Billing::start(f.db.clone(), options).await.unwrap();
    billing.grant(&f.org, 100, None, None).await.unwrap();
    // Segments are opened on the first append: with the directory gone,
    // no settlement can be journaled.
    std::fs::remove_dir_all(f.dir.join("journal")).unwrap();

    let hold = billing.reserve(&f.org, 10).await.unwrap();
    let charged = billing
        .settle(hold, entry("req_unjournaled", 7))
        .await
        .unwrap();

    assert_eq!(charged, 7);
    // Committed before `settle` returned, although commits wait 300 ms.
    let (balance, _, records, ledger) = books(&f).await;
    assert_eq!((balance, records, ledger), (93, 1, 93));
    billing.shutdown().await.unwrap();
}

/// Billing on the fixture with leases kept while idle, the organization
/// granted `granted`.
async fn kept_billing(f: &Fixture, granted: i64) -> Billing {
    let billing = Billing::start(f.db.clone(), kept_leases(&f.dir))
        .await
        .unwrap();
    billing.grant(&f.org, granted, None, None).await.unwrap();
    billing
}

/// Options whose leases stay while idle (as in production), so that
/// steady traffic holds from one lease.
fn kept_leases(dir: &std::path::Path) -> BillingOptions {
    BillingOptions {
        lease_idle: Duration::from_secs(60),
        ..options(dir)
    }
}

/// Polls `done` for up to five seconds.
async fn eventually<F: std::future::Future<Output = bool>>(mut done: impl FnMut() -> F) -> bool {
    for _ in 0..100 {
        if done().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

type HoldCall = tokio::task::JoinHandle<Result<crate::Hold, BillingError>>;

/// `n` calls holding `amount` each at once, each in a task of its own.
fn spawn_holds(billing: &Billing, org: &str, n: usize, amount: i64) -> Vec<HoldCall> {
    (0..n)
        .map(|_| {
            let (billing, org) = (billing.clone(), org.to_owned());
            tokio::spawn(async move { billing.reserve(&org, amount).await })
        })
        .collect()
}

/// The holds of `calls`, each of which must succeed.
async fn all_held(calls: Vec<HoldCall>) -> Vec<crate::Hold> {
    let mut holds = Vec::new();
    for call in calls {
        holds.push(call.await.unwrap().unwrap());
    }
    holds
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_an_empty_lease_make_one_top_up() {
    let f = fixture().await;
    let billing = kept_billing(&f, 10_000).await;

    let holds = all_held(spawn_holds(&billing, &f.org, 8, 10)).await;

    assert_eq!(billing.lease_counters().top_ups, 1);
    // One lease of 16 times the first call's amount, not one per call.
    assert_eq!(billing.local_lease(&f.org), (160, 80));
    drop(holds);
    billing.shutdown().await.unwrap();
    assert_eq!(books(&f).await.1, 0);
}

/// A replica starting under load: a burst of calls finds the lease empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_calls_on_an_empty_lease_waits_for_two_top_ups_not_one_per_sixteen_calls() {
    let f = fixture().await;
    let billing = kept_billing(&f, 100_000).await;
    // The pool's only connection: no top-up lands until every call waits.
    let held = f.db.pool().acquire().await.unwrap();

    let calls = spawn_holds(&billing, &f.org, 64, 10);
    let all_waiting = || async { billing.lease_counters().calls_waited == 64 };
    assert!(
        eventually(all_waiting).await,
        "{:?}",
        billing.lease_counters()
    );
    drop(held);
    let holds = all_held(calls).await;

    // The first top-up (16 times one hold) lets 16 calls hold; the next
    // one covers every call still waiting.
    assert_eq!(
        billing.lease_counters().top_ups,
        2,
        "{:?}",
        billing.lease_counters()
    );
    assert_eq!(billing.local_lease(&f.org).1, 640);
    drop(holds);
    billing.shutdown().await.unwrap();
    assert_eq!(books(&f).await.1, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_calls_hold_from_memory_while_the_lease_is_refilled_in_the_background() {
    let f = fixture().await;
    let billing = kept_billing(&f, 100_000).await;

    for i in 0..80 {
        let hold = billing.reserve(&f.org, 10).await.unwrap();
        billing
            .settle(hold, entry(&format!("req_{i}"), 10))
            .await
            .unwrap();
        // Steady traffic, not a burst: the refill has time to land.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let counters = billing.lease_counters();
    // Only the first call found the lease empty and waited for the database.
    assert_eq!(counters.calls_waited, 1, "{counters:?}");
    // The first top-up of 160, then a refill of 160 at each low-water mark.
    assert!(
        (4..=7).contains(&counters.top_ups),
        "one top-up per 16 calls, not one per call: {counters:?}"
    );
    billing.shutdown().await.unwrap();
    assert_eq!(books(&f).await, (99_200, 0, 80, 99_200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_refilled_in_the_background_then_idle_goes_back_to_the_balance() {
    let f = fixture().await;
    let options = BillingOptions {
        lease_idle: Duration::from_millis(200),
        ..options(&f.dir)
    };
    let billing = Billing::start(f.db.clone(), options).await.unwrap();
    tokio::spawn(billing.clone().maintain(Duration::from_secs(60)));
    billing.grant(&f.org, 1_000, None, None).await.unwrap();

    // The 13th hold of 10 leaves 30 of the first lease of 160: below a
    // quarter of it, so a refill of 160 starts.
    let mut holds = Vec::new();
    for _ in 0..13 {
        holds.push(billing.reserve(&f.org, 10).await.unwrap());
    }
    assert!(eventually(|| async { billing.local_lease(&f.org).0 == 320 }).await);
    assert_eq!(billing.lease_counters().top_ups, 2);
    assert_eq!(books(&f).await.1, 320);
    drop(holds);

    let returned = eventually(|| async { books(&f).await.1 == 0 }).await;
    assert!(
        returned,
        "an idle refilled lease is returned: {:?}",
        books(&f).await
    );
    assert_eq!(billing.local_lease(&f.org), (0, 0));
    assert_eq!(books(&f).await.0, 1_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_in_flight_at_shutdown_is_returned_with_the_lease() {
    let f = fixture().await;
    let billing = kept_billing(&f, 1_000).await;
    let mut holds = Vec::new();
    for _ in 0..13 {
        holds.push(billing.reserve(&f.org, 10).await.unwrap());
    }
    drop(holds);

    // The refill the 13th hold started may still be in flight.
    billing.shutdown().await.unwrap();

    assert_eq!(books(&f).await.1, 0, "nothing stays reserved after a stop");
    assert!(matches!(
        billing.reserve(&f.org, 1_000).await,
        Err(crate::BillingError::ShutDown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refill_that_brings_nothing_leaves_the_calls_to_top_up_themselves() {
    let f = fixture().await;
    // Enough for the first lease of 160 and 40 more, not for a refill of 160.
    let billing = kept_billing(&f, 200).await;

    let mut holds = Vec::new();
    for _ in 0..13 {
        holds.push(billing.reserve(&f.org, 10).await.unwrap());
    }
    assert!(eventually(|| async { billing.lease_counters().top_ups == 2 }).await);
    // The rest of the lease is held without another refill in the background.
    for _ in 0..3 {
        holds.push(billing.reserve(&f.org, 10).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(billing.lease_counters().top_ups, 2);
    // Then the calls top up themselves, by what is missing.
    for _ in 0..4 {
        holds.push(billing.reserve(&f.org, 10).await.unwrap());
    }

    // 200 held: the 21st call is refused, as before.
    assert_eq!(billing.local_lease(&f.org), (200, 200));
    assert!(matches!(
        billing.reserve(&f.org, 10).await,
        Err(crate::BillingError::InsufficientCredits {
            needed: 10,
            available: 0
        })
    ));
    drop(holds);
    billing.shutdown().await.unwrap();
    assert_eq!(books(&f).await, (200, 0, 0, 200));
}

/// A billing of the fixture's organization, granted 10 000, with a key
/// `key_1` whose budget is 1 000 in total (kept leases).
async fn with_key_budget(f: &Fixture) -> (Billing, crate::KeyBudget) {
    sqlx::query(
        "INSERT INTO api_keys (id, organization_id, name, secret_hash, created_at, updated_at) \
         VALUES ('key_1', $1, 'k', 'x', 0, 0)",
    )
    .bind(&f.org)
    .execute(f.db.pool())
    .await
    .unwrap();
    let billing = kept_billing(f, 10_000).await;
    let budget = crate::KeyBudget {
        api_key_id: "key_1".to_owned(),
        amount: 1_000,
        period: tollgate_core::BudgetPeriod::Total,
    };
    (billing, budget)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_an_empty_budget_lease_make_one_budget_top_up() {
    let f = fixture().await;
    let (billing, budget) = with_key_budget(&f).await;

    let calls: Vec<_> = (0..8)
        .map(|_| {
            let (billing, org, budget) = (billing.clone(), f.org.clone(), budget.clone());
            tokio::spawn(async move { billing.reserve_for_key(&org, 10, Some(&budget)).await })
        })
        .collect();
    let holds = all_held(calls).await;

    assert_eq!(billing.budget_lease_counters().top_ups, 1);
    assert_eq!(billing.lease_counters().top_ups, 1);
    drop(holds);
    billing.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_waiting_for_a_top_up_the_database_did_not_answer_fail_fast_with_it() {
    let f = fixture().await;
    let billing = Billing::start(f.db.clone(), kept_leases(&f.dir))
        .await
        .unwrap();
    let tries = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = tries.clone();
    let top_up = move |_| {
        let counted = counted.clone();
        async move {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(200)).await;
            Err::<i64, _>(crate::BillingError::Unavailable("no answer".into()))
        }
    };

    let calls: Vec<_> = (0..5)
        .map(|_| {
            let (billing, top_up) = (billing.clone(), top_up.clone());
            tokio::spawn(async move {
                billing
                    .hold_from(crate::leases::Book::Credits, "org_x", 10, || top_up.clone())
                    .await
            })
        })
        .collect();
    for call in calls {
        let outcome = call.await.unwrap();
        assert!(
            matches!(outcome, Err(crate::BillingError::Unavailable(_))),
            "{outcome:?}"
        );
    }

    // One top-up for the five calls: the others waited for it and got its error.
    assert_eq!(tries.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(billing.local_lease("org_x"), (0, 0));
}

/// Two instances on one database, with a short instance timeout. A's
/// heartbeats stop (as when it is cut off from the database): it stops
/// holding from its lease before B takes it for dead and returns that
/// lease. A's next heartbeat finds its row gone: it drops its lease,
/// registers again and holds from a new one. A call in flight across all
/// this is charged to the balance only, its lease being gone.
#[tokio::test]
async fn an_instance_taken_for_dead_stops_spending_then_registers_again() {
    let f = fixture().await;
    let options = BillingOptions {
        instance_timeout: Duration::from_millis(1200),
        lease_idle: Duration::from_secs(600),
        ..options(&f.dir)
    };
    let a = Billing::start(f.db.clone(), options.clone()).await.unwrap();
    let b = Billing::start(f.db.clone(), options).await.unwrap();
    a.grant(&f.org, 100, None, None).await.unwrap();
    let instances = "SELECT CAST(COUNT(*) AS BIGINT) FROM gateway_instances WHERE $1 <> ''";

    let hold = a.reserve(&f.org, 1).await.unwrap();
    a.settle(hold, entry("req_1", 1)).await.unwrap();
    let in_flight = a.reserve(&f.org, 1).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(
        a.local_lease(&f.org),
        (15, 1),
        "a lease of 16, one call in flight"
    );

    // A's last heartbeat; none for two thirds of the timeout (800 ms)
    // after it, and its lease is fenced.
    a.keep_alive().await;
    drop(a.reserve(&f.org, 1).await.expect("not fenced yet"));
    assert_eq!(a.fenced(), None);
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(matches!(
        a.reserve(&f.org, 1).await,
        Err(BillingError::Unavailable(_))
    ));
    let reason = a.fenced().expect("A says it is fenced");
    assert!(reason.contains("no heartbeat"), "{reason}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(b.return_dead_instances_leases(1200).await.unwrap() > 0);
    assert_eq!(scalar(&f.db, instances, &f.org).await, 1);
    assert_eq!(books(&f).await, (99, 0, 1, 99), "A's lease is returned");

    a.keep_alive().await;
    assert_eq!(
        scalar(&f.db, instances, &f.org).await,
        2,
        "A registered again"
    );
    assert_eq!(a.fenced(), None, "no longer fenced");
    assert_eq!(
        a.local_lease(&f.org),
        (0, 1),
        "A dropped its lease, not its call"
    );
    a.settle(in_flight, entry("req_2", 1)).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(
        books(&f).await,
        (98, 0, 2, 98),
        "charged to the balance only"
    );

    let hold = a.reserve(&f.org, 1).await.unwrap();
    a.settle(hold, entry("req_3", 1)).await.unwrap();
    a.flush().await.unwrap();
    assert_eq!(books(&f).await, (97, 15, 3, 97), "a new lease of 16");
    let leased = scalar(
        &f.db,
        "SELECT CAST(SUM(amount) AS BIGINT) FROM credit_leases WHERE organization_id = $1",
        &f.org,
    )
    .await;
    assert_eq!(leased, 15, "reserved is the sum of the leases");
    drop((a, b));
}

/// Each top-up writes an id of its own beside the lease it tops up, which
/// is what a top-up with an unknown outcome is read back by.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_top_up_leaves_its_id_beside_its_lease_to_be_read_back() {
    let f = fixture().await;
    let (billing, budget) = with_key_budget(&f).await;
    assert_eq!(billing.last_top_up_id(&f.org).await.unwrap(), None);

    let hold = billing
        .reserve_for_key(&f.org, 10, Some(&budget))
        .await
        .unwrap();

    let (credit_id,): (Option<String>,) =
        sqlx::query_as("SELECT top_up_id FROM credit_leases WHERE organization_id = $1")
            .bind(&f.org)
            .fetch_one(f.db.pool())
            .await
            .unwrap();
    let (period_start, budget_id): (i64, Option<String>) = sqlx::query_as(
        "SELECT period_start, top_up_id FROM api_key_budget_leases WHERE api_key_id = 'key_1'",
    )
    .fetch_one(f.db.pool())
    .await
    .unwrap();
    assert!(
        credit_id
            .as_deref()
            .is_some_and(|id| id.starts_with("topup_"))
    );
    assert!(
        budget_id
            .as_deref()
            .is_some_and(|id| id.starts_with("topup_"))
    );
    assert_ne!(credit_id, budget_id);
    assert_eq!(billing.last_top_up_id(&f.org).await.unwrap(), credit_id);
    assert_eq!(
        billing
            .last_budget_top_up_id("key_1", period_start)
            .await
            .unwrap(),
        budget_id
    );
    drop(hold);
    billing.shutdown().await.unwrap();
}

/// A journal of instance `gw_a` in a directory of its own, removed with it.
struct TempJournal {
    dir: PathBuf,
    journal: Journal,
}

impl TempJournal {
    fn new() -> TempJournal {
        let dir = std::env::temp_dir().join(tollgate_core::ids::new_id("journal-test"));
        let journal = Journal::open(&dir, "gw_a").unwrap();
        TempJournal { dir, journal }
    }

    /// Appends a settlement of one unit; returns its segment.
    fn append(&self, request_id: &str) -> u64 {
        let s = settlement("gw_a", "org", request_id, 1);
        self.journal.append(&s).unwrap()
    }

    fn segment(&self, seq: u64) -> PathBuf {
        segment_path(&self.dir, "gw_a", seq)
    }

    /// The segment files, by name.
    fn segment_files(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".journal"))
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempJournal {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn after_each_sync_appends_go_to_a_new_segment_and_a_synced_one_is_never_written_again() {
    let j = TempJournal::new();
    let first = j.append("req_1");
    j.journal.tidy();
    let second = j.append("req_2");
    j.append("req_3");

    assert_ne!(first, second, "the synced segment was closed");
    let synced = std::fs::read_to_string(j.segment(first)).unwrap();
    assert_eq!(synced.lines().count(), 1, "{synced}");
    assert!(synced.contains("req_1"));
    let open = std::fs::read_to_string(j.segment(second)).unwrap();
    assert_eq!(open.lines().count(), 2, "{open}");

    j.journal.tidy();
    let files = j.segment_files();
    j.journal.tidy();
    assert_eq!(
        j.segment_files(),
        files,
        "nothing appended since the last round: no new segment"
    );
}

#[test]
fn a_committed_segment_is_deleted_by_the_journals_thread_not_by_the_committer() {
    let j = TempJournal::new();
    let seq = j.append("req_1");
    j.journal.tidy();
    assert!(j.segment(seq).exists(), "closed, not yet committed: kept");

    j.journal.committed(seq, 1);
    assert!(
        j.segment(seq).exists(),
        "the committer does not delete files"
    );
    assert_eq!(j.journal.uncommitted(), 0);
    j.journal.tidy();
    assert!(
        !j.segment(seq).exists(),
        "deleted in the journal thread's next round"
    );
}
