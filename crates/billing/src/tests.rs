//! Settlement durability against a real SQLite database: replay of a dead
//! instance's journal, commits whose outcome was lost, and usage beyond
//! the hold.

use crate::journal::{Settlement, segment_path};
use crate::writer::{Returns, commit};
use crate::{Billing, BillingOptions, UsageEntry, UsageStatus};
use std::path::PathBuf;
use std::time::Duration;
use tollgate_core::Db;
use tollgate_core::money::TokenUsage;

struct Fixture {
    db: Db,
    dir: PathBuf,
    org: String,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn fixture() -> Fixture {
    let dir = std::env::temp_dir().join(tollgate_core::ids::new_id("billing-test"));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}", dir.join("t.db").display());
    let db = Db::connect(&url, 1).await.unwrap();
    db.migrate().await.unwrap();
    let org = tollgate_core::ids::new_id("org");
    sqlx::query(
        "INSERT INTO organizations (id, name, billing_mode, created_at, updated_at) VALUES ($1, 'Acme', 'requests', 0, 0)",
    )
    .bind(&org)
    .execute(db.pool())
    .await
    .unwrap();
    Fixture { db, dir, org }
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
