//! Credits: grants (idempotent), the balance and the ledger, which always
//! sums to the balance.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body, expect_error, message_of};

fn ledger_sum(entries: &[Value]) -> i64 {
    entries.iter().map(|e| e["amount"].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn grant_answers_201_with_the_balance_in_the_organizations_unit() {
    let app = TestApp::spawn().await;

    for (mode, unit) in [
        ("usd", "usd_micros"),
        ("tokens", "tokens"),
        ("requests", "requests"),
    ] {
        let org = app.create_org(mode).await;

        let response = app.grant_with(&org, &json!({"amount": 2500})).await;

        assert_eq!(response.status(), 201, "{mode}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["balance"], 2500, "{mode}");
        assert_eq!(body["unit"], unit, "{mode}");
    }
}

#[tokio::test]
async fn grants_add_up() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    app.grant(&org, 1_000).await;
    let second = app.grant(&org, 250).await;

    assert_eq!(second["balance"], 1_250);
    assert_eq!(app.balance(&org).await, 1_250);
}

#[tokio::test]
async fn credits_show_balance_reserved_and_unit() {
    let app = TestApp::spawn().await;
    let org = app.create_org("tokens").await;
    app.grant(&org, 777).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/credits"))
        .await;

    assert_eq!(response.status(), 200);
    let credits: Value = response.json().await.unwrap();
    assert_eq!(credits["balance"], 777);
    assert_eq!(credits["reserved"], 0);
    assert_eq!(credits["unit"], "tokens");
}

#[tokio::test]
async fn new_organization_has_a_zero_balance() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;

    let credits = app.credits(&org).await;

    assert_eq!(credits["balance"], 0);
    assert_eq!(credits["reserved"], 0);
    assert_eq!(credits["unit"], "requests");
}

#[tokio::test]
async fn credits_of_an_unknown_organization_are_404() {
    let app = TestApp::spawn().await;

    let read = app
        .admin_get("/api/v1/organizations/org_missing/credits")
        .await;
    let granted = app.grant_with("org_missing", &json!({"amount": 10})).await;
    let ledger = app
        .admin_get("/api/v1/organizations/org_missing/credits/transactions")
        .await;

    expect_error(read, 404).await;
    expect_error(granted, 404).await;
    expect_error(ledger, 404).await;
}

#[tokio::test]
async fn replayed_grant_gets_the_same_answer_and_grants_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let body = json!({"amount": 5_000, "idempotency_key": "topup-42", "reason": "top-up"});

    let first = app.grant_with(&org, &body).await;
    let first_status = first.status();
    let first_body: Value = first.json().await.unwrap();
    let again = app.grant_with(&org, &body).await;

    assert_eq!(first_status, 201);
    assert_eq!(again.status(), first_status);
    assert_eq!(again.json::<Value>().await.unwrap(), first_body);
    assert_eq!(app.balance(&org).await, 5_000);
    assert_eq!(app.transactions(&org).await.len(), 1);
}

#[tokio::test]
async fn replay_answers_the_first_outcome_even_after_other_grants() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let body = json!({"amount": 100, "idempotency_key": "k1"});
    let first: Value = app.grant_with(&org, &body).await.json().await.unwrap();
    app.grant(&org, 900).await;

    let again: Value = app.grant_with(&org, &body).await.json().await.unwrap();

    assert_eq!(again, first, "the stored answer, not the current balance");
    assert_eq!(app.balance(&org).await, 1_000);
}

#[tokio::test]
async fn reused_idempotency_key_with_another_body_is_409_and_grants_nothing() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant_with(&org, &json!({"amount": 100, "idempotency_key": "once"}))
        .await;

    let other_amount = app
        .grant_with(&org, &json!({"amount": 200, "idempotency_key": "once"}))
        .await;

    let error = expect_error(other_amount, 409).await;
    assert!(message_of(&error).contains("idempotency_key"), "{error}");
    assert_eq!(app.balance(&org).await, 100);
    assert_eq!(app.transactions(&org).await.len(), 1);
}

#[tokio::test]
async fn idempotency_keys_belong_to_one_organization() {
    let app = TestApp::spawn().await;
    let org_a = app.create_org("usd").await;
    let org_b = app.create_org("usd").await;
    let body = json!({"amount": 300, "idempotency_key": "invoice-1"});

    let a = app.grant_with(&org_a, &body).await;
    let b = app.grant_with(&org_b, &body).await;

    assert_eq!(a.status(), 201);
    assert_eq!(b.status(), 201);
    assert_eq!(app.balance(&org_a).await, 300);
    assert_eq!(app.balance(&org_b).await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_identical_grants_are_granted_exactly_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let body = json!({"amount": 1_000, "idempotency_key": "burst"});

    let grants = (0..10).map(|_| {
        let app = &app;
        let org = &org;
        let body = &body;
        async move {
            let response = app.grant_with(org, body).await;
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        }
    });
    let answers = futures::future::join_all(grants).await;

    for (status, text) in &answers {
        assert_eq!(*status, 201, "{text}");
        let body: Value = serde_json::from_str(text).unwrap();
        assert_eq!(body["balance"], 1_000, "every answer is the one grant");
    }
    assert_eq!(app.balance(&org).await, 1_000);
    let ledger = app.transactions(&org).await;
    assert_eq!(ledger.len(), 1, "{ledger:?}");
}

#[tokio::test]
async fn grant_amount_must_be_a_positive_integer() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for amount in [json!(0), json!(-5), json!(1.5), json!("100"), json!(null)] {
        let response = app.grant_with(&org, &json!({"amount": amount})).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("amount"), "{amount}: {error}");
    }
    let missing = app.grant_with(&org, &json!({"reason": "gift"})).await;
    let error = expect_error(missing, 400).await;
    assert!(message_of(&error).contains("amount"), "{error}");
    assert_eq!(app.balance(&org).await, 0);
    assert!(app.transactions(&org).await.is_empty());
}

#[tokio::test]
async fn transactions_are_newest_first_with_kind_amount_and_balance_after() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant_with(&org, &json!({"amount": 100, "reason": "welcome"}))
        .await;
    app.grant(&org, 200).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/credits/transactions"))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let entries = body["data"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["kind"], "grant");
    assert_eq!(entries[0]["amount"], 200);
    assert_eq!(entries[0]["balance_after"], 300);
    assert_eq!(entries[1]["kind"], "grant");
    assert_eq!(entries[1]["amount"], 100);
    assert_eq!(entries[1]["balance_after"], 100);
    assert_eq!(entries[1]["reason"], "welcome");
}

#[tokio::test]
async fn ledger_sums_to_the_balance_after_grants_and_calls() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, key) = app.create_key(&org).await;
    app.grant(&org, 500_000).await;

    for round in 0..3 {
        let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;
        assert_eq!(response.status(), 200, "call {round}");
        app.grant(&org, 1_000 + round).await;
    }
    let refused = app.chat(&key, &chat_body("no-such-model")).await;
    assert_eq!(refused.status(), 404);

    let balance = app.balance(&org).await;
    let ledger = app.transactions(&org).await;
    assert_eq!(ledger_sum(&ledger), balance);
    assert_eq!(ledger[0]["balance_after"], balance);
    let usage_entries = ledger.iter().filter(|e| e["kind"] == "usage").count();
    let grant_entries = ledger.iter().filter(|e| e["kind"] == "grant").count();
    assert_eq!((usage_entries, grant_entries), (3, 4));
    // Each entry's balance_after follows from the one before it.
    for pair in ledger.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        assert_eq!(
            newer["balance_after"].as_i64().unwrap(),
            older["balance_after"].as_i64().unwrap() + newer["amount"].as_i64().unwrap(),
            "{newer} after {older}"
        );
    }
}

#[tokio::test]
async fn limit_pages_the_ledger_with_has_more() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant(&org, 1).await;
    app.grant(&org, 2).await;

    let first: Value = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/credits/transactions?limit=1"
        ))
        .await
        .json()
        .await
        .unwrap();
    let all: Value = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/credits/transactions?limit=2"
        ))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(first["data"].as_array().unwrap().len(), 1);
    assert_eq!(first["data"][0]["amount"], 2);
    assert_eq!(first["has_more"], true);
    assert_eq!(all["data"].as_array().unwrap().len(), 2);
    assert_eq!(all["has_more"], false);
}

#[tokio::test]
async fn before_cursor_walks_the_ledger_without_gaps_or_repeats() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    for amount in 1..=5 {
        app.grant(&org, amount).await;
    }

    let mut seen = Vec::new();
    let mut path = format!("/api/v1/organizations/{org}/credits/transactions?limit=2");
    loop {
        let page: Value = app.admin_get(&path).await.json().await.unwrap();
        let entries = page["data"].as_array().unwrap();
        seen.extend(entries.iter().map(|e| e["amount"].as_i64().unwrap()));
        if page["has_more"] != true {
            break;
        }
        let last = match &entries.last().unwrap()["id"] {
            Value::String(id) => id.clone(),
            id => id.to_string(),
        };
        path = format!("/api/v1/organizations/{org}/credits/transactions?limit=2&before={last}");
    }

    assert_eq!(seen, [5, 4, 3, 2, 1]);
}

#[tokio::test]
async fn out_of_range_limit_is_400_naming_limit() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for query in ["limit=0", "limit=-1", "limit=1001", "limit=ten"] {
        let response = app
            .admin_get(&format!(
                "/api/v1/organizations/{org}/credits/transactions?{query}"
            ))
            .await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("limit"), "{query}: {error}");
    }
}
