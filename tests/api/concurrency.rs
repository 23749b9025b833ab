//! The credit invariant under concurrency: the balance never goes below
//! zero, the ledger sums to it, and every success is charged exactly once.

use serde_json::json;
use tollgate_tests::{TestApp, chat_body};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_calls_never_overspend_a_balance_for_ten() {
    let app = TestApp::spawn().await;
    // requests mode: each call holds and costs exactly one credit.
    let (org, key) = app.funded_org("requests", 10).await;

    let calls = (0..50).map(|_| {
        let body = chat_body("gpt-4o-mini");
        let app = &app;
        let key = key.clone();
        async move { app.chat(&key, &body).await.status().as_u16() }
    });
    let statuses = futures::future::join_all(calls).await;

    let ok = statuses.iter().filter(|s| **s == 200).count();
    let refused = statuses.iter().filter(|s| **s == 402).count();
    assert_eq!(ok + refused, 50, "{statuses:?}");
    assert_eq!(ok, 10, "exactly the balance's worth of calls succeed");
    assert_eq!(app.balance(&org).await, 0);
    assert_eq!(app.credits(&org).await["reserved"], 0);
    let ledger_sum: i64 = app
        .transactions(&org)
        .await
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(ledger_sum, 0, "the ledger sums to the balance");
    assert_eq!(app.usage(&org).await.len(), ok);
    assert_eq!(
        app.mock.request_count(),
        ok,
        "refused calls never reach the provider"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_usd_calls_keep_the_ledger_equal_to_the_balance() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 5_000).await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]});

    let calls = (0..60).map(|_| {
        let app = &app;
        let key = key.clone();
        let body = body.clone();
        async move {
            let r = app.chat(&key, &body).await;
            (
                r.status().as_u16(),
                r.headers()
                    .get("x-tollgate-cost")
                    .map(|v| v.to_str().unwrap().parse::<i64>().unwrap()),
            )
        }
    });
    let results = futures::future::join_all(calls).await;

    let spent: i64 = results.iter().filter_map(|(_, cost)| *cost).sum();
    assert!(
        results.iter().all(|(s, _)| *s == 200 || *s == 402),
        "{results:?}"
    );
    let balance = app.balance(&org).await;
    assert!(balance >= 0);
    assert_eq!(
        balance,
        5_000 - spent,
        "successes times cost equals the spend"
    );
    let ledger_sum: i64 = app
        .transactions(&org)
        .await
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(ledger_sum, balance);
}
