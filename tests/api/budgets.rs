//! Per-API-key budgets: a key never spends past its budget in the current
//! period, however many calls run at once, and a refusal names the limit hit.

use serde_json::Value;
use tollgate_tests::{TestApp, chat_body, expect_error, message_of};

async fn listed_key(app: &TestApp, org: &str, key_id: &str) -> Value {
    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap()
        .clone()
}

#[tokio::test]
async fn a_key_past_its_budget_gets_402_naming_the_key_budget() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (_, key) = app.budgeted_key(&org, 2, "daily").await;

    for _ in 0..2 {
        assert_eq!(
            app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
            200
        );
    }
    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    let error = expect_error(refused, 402).await;
    assert_eq!(error["code"], "insufficient_credits");
    assert_eq!(error["param"], "budget");
    assert!(message_of(&error).starts_with("API key budget"), "{error}");
    assert_eq!(
        app.balance(&org).await,
        98,
        "the organization paid two calls"
    );
    assert_eq!(
        app.mock.request_count(),
        2,
        "the refused call never reached the provider"
    );
}

#[tokio::test]
async fn a_low_balance_gets_402_naming_the_organization_balance() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 1).await;
    let (_, key) = app.budgeted_key(&org, 50, "monthly").await;

    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    let error = expect_error(refused, 402).await;
    assert_eq!(error["code"], "insufficient_credits");
    assert!(error.get("param").is_none(), "{error}");
    assert!(
        message_of(&error).starts_with("organization balance"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_calls_never_overspend_a_key_budget() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 1_000).await;
    let (key_id, key) = app.budgeted_key(&org, 7, "weekly").await;

    let calls = (0..40).map(|_| {
        let app = &app;
        let key = key.clone();
        async move {
            app.chat(&key, &chat_body("gpt-4o-mini"))
                .await
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(calls).await;

    let ok = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(
        ok + statuses.iter().filter(|s| **s == 402).count(),
        40,
        "{statuses:?}"
    );
    assert_eq!(ok, 7, "exactly the budget's worth of calls succeed");
    assert_eq!(app.balance(&org).await, 1_000 - 7);
    let listed = listed_key(&app, &org, &key_id).await;
    assert_eq!(listed["budget"]["spent"], 7);
    let db = app.raw_db().await;
    let reserved: i64 = sqlx::query_scalar(
        "SELECT CAST(COALESCE(SUM(reserved), 0) AS BIGINT) FROM api_key_budget_periods WHERE api_key_id = $1",
    )
    .bind(&key_id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        reserved, 0,
        "every budget lease went back once the calls settled"
    );
}

#[tokio::test]
async fn the_key_list_shows_the_spend_in_the_current_period_and_when_it_resets() {
    let app = TestApp::spawn().await;
    let org = app.create_org("tokens").await;
    app.grant(&org, 1_000_000).await;
    let (daily_id, daily) = app.budgeted_key(&org, 100_000, "daily").await;
    let (total_id, _) = app.budgeted_key(&org, 5, "total").await;

    let answer = app.chat(&daily, &chat_body("gpt-4o-mini")).await;
    assert_eq!(answer.status(), 200);
    let cost: i64 = answer.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let listed = listed_key(&app, &org, &daily_id).await;
    assert_eq!(listed["budget"]["amount"], 100_000);
    assert_eq!(listed["budget"]["period"], "daily");
    assert_eq!(listed["budget"]["spent"], cost);
    let now = tollgate_core::time::now_secs();
    let resets_at = listed["budget"]["resets_at"].as_i64().unwrap();
    assert!(resets_at > now && resets_at <= now + 86_400, "{listed}");
    assert_eq!(resets_at % 86_400, 0, "a day starts at 00:00 UTC");
    let total = listed_key(&app, &org, &total_id).await;
    assert_eq!(total["budget"]["spent"], 0);
    assert!(total["budget"]["resets_at"].is_null(), "{total}");
}

#[tokio::test]
async fn a_daily_budget_starts_over_in_the_next_utc_day() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (key_id, key) = app.budgeted_key(&org, 1, "daily").await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        402
    );

    // As if that spend had been yesterday (UTC): today's period has a row of its own.
    sqlx::query("UPDATE api_key_budget_periods SET period_start = period_start - 86400000 WHERE api_key_id = $1")
        .bind(&key_id)
        .execute(&app.raw_db().await)
        .await
        .unwrap();

    assert_eq!(listed_key(&app, &org, &key_id).await["budget"]["spent"], 0);
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        402
    );
    assert_eq!(app.balance(&org).await, 98);
}
