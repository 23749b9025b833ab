//! Changing an API key after creation (`PATCH …/api-keys/{key_id}`): a
//! partial update, `null` removing a limit, validation as at creation, other
//! organizations' keys hidden, and the change as the data plane sees it, on
//! this replica at once and on another within a second, budget leases
//! included.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_tests::replica::Replica;
use tollgate_tests::{ADMIN_TOKEN, Fault, TestApp, chat_body, expect_error, message_of};

fn now_secs() -> i64 {
    tollgate_core::time::now_secs()
}

async fn patch_key(app: &TestApp, org: &str, key_id: &str, body: &Value) -> reqwest::Response {
    app.admin_patch(
        &format!("/api/v1/organizations/{org}/api-keys/{key_id}"),
        body,
    )
    .await
}

/// The key as `GET …/api-keys` lists it.
async fn listed(app: &TestApp, org: &str, key_id: &str) -> Value {
    let body: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == key_id)
        .unwrap()
        .clone()
}

/// A key with every limit, a budget and an expiry: `(id, key)`.
async fn limited_key(app: &TestApp, org: &str) -> (String, String) {
    let response = app
        .create_key_with(
            org,
            &json!({
                "name": "limited",
                "rpm_limit": 60,
                "tpm_limit": 100000,
                "max_concurrency": 4,
                "budget": {"amount": 5000000, "period": "monthly"},
                "expires_at": now_secs() + 86_400,
            }),
        )
        .await;
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    (
        created["id"].as_str().unwrap().to_owned(),
        created["key"].as_str().unwrap().to_owned(),
    )
}

/// The secret part of a key, `tg-<id>_<secret>`.
fn secret_of(key: &str) -> &str {
    key.rsplit_once('_').map(|(_, s)| s).unwrap_or(key)
}

async fn chat_status(app: &TestApp, key: &str) -> u16 {
    app.chat(key, &chat_body("gpt-4o-mini"))
        .await
        .status()
        .as_u16()
}

/// `spent` and `reserved` of the key's only budget period row, once what
/// was settled so far is committed.
async fn budget_row(app: &TestApp, org: &str, key_id: &str) -> (i64, i64) {
    // Reading the key list waits until this instance's settlements are committed.
    listed(app, org, key_id).await;
    sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(spent), 0) AS BIGINT), CAST(COALESCE(SUM(reserved), 0) AS BIGINT) \
         FROM api_key_budget_periods WHERE api_key_id = $1",
    )
    .bind(key_id)
    .fetch_one(&app.raw_db().await)
    .await
    .unwrap()
}

#[tokio::test]
async fn a_partial_update_changes_only_the_fields_it_names() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (key_id, key) = limited_key(&app, &org).await;
    let before = listed(&app, &org, &key_id).await;

    let response = patch_key(&app, &org, &key_id, &json!({"rpm_limit": 120})).await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(!text.contains(secret_of(&key)), "the secret leaked: {text}");
    let answered: Value = serde_json::from_str(&text).unwrap();
    assert!(answered.get("key").is_none(), "{answered}");
    let mut expected = before.clone();
    expected["rpm_limit"] = json!(120);
    assert_eq!(answered, expected, "only rpm_limit changed");
    assert_eq!(listed(&app, &org, &key_id).await, expected);
    assert_eq!(
        app.models(&key).await.status(),
        200,
        "the same secret works"
    );

    let renamed = patch_key(&app, &org, &key_id, &json!({"name": "renamed"})).await;

    assert_eq!(renamed.status(), 200);
    expected["name"] = json!("renamed");
    assert_eq!(listed(&app, &org, &key_id).await, expected);
}

#[tokio::test]
async fn null_removes_a_limit_the_budget_and_the_expiry() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (key_id, _) = limited_key(&app, &org).await;

    let response = patch_key(
        &app,
        &org,
        &key_id,
        &json!({"rpm_limit": null, "max_concurrency": null, "budget": null, "expires_at": null}),
    )
    .await;

    assert_eq!(response.status(), 200);
    let shown = listed(&app, &org, &key_id).await;
    for field in ["rpm_limit", "max_concurrency", "budget", "expires_at"] {
        assert!(shown[field].is_null(), "{field} in {shown}");
    }
    assert_eq!(shown["tpm_limit"], 100000, "left out, left alone: {shown}");
    assert_eq!(shown["name"], "limited");
}

#[tokio::test]
async fn invalid_values_are_400_naming_the_field_and_change_nothing() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (key_id, _) = limited_key(&app, &org).await;
    let before = listed(&app, &org, &key_id).await;
    let cases = [
        (json!({"name": "", "rpm_limit": 5}), "name"),
        (json!({"name": "ok", "rpm_limit": 0}), "rpm_limit"),
        (json!({"tpm_limit": -5, "name": "ok"}), "tpm_limit"),
        (json!({"max_concurrency": "many"}), "max_concurrency"),
        (
            json!({"budget": {"amount": 0, "period": "daily"}}),
            "amount",
        ),
        (
            json!({"budget": {"amount": 10, "period": "yearly"}}),
            "period",
        ),
        (json!({"budget": {"period": "daily"}}), "amount"),
        (json!({"expires_at": "tomorrow"}), "expires_at"),
        (json!({"expires_at": -1, "name": "ok"}), "expires_at"),
        (json!({"scopes": []}), "scopes"),
        (json!({"scopes": ["root"]}), "scopes"),
        (json!({"key": "tg-new"}), "key"),
    ];

    for (body, field) in cases {
        let response = patch_key(&app, &org, &key_id, &body).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains(field), "{body}: {error}");
    }
    assert_eq!(listed(&app, &org, &key_id).await, before, "nothing changed");
}

#[tokio::test]
async fn another_organizations_unknown_or_revoked_key_is_404() {
    let app = TestApp::spawn().await;
    let org_a = app.create_org("usd").await;
    let org_b = app.create_org("usd").await;
    let (key_id, _) = limited_key(&app, &org_a).await;
    let before = listed(&app, &org_a, &key_id).await;
    let (revoked_id, _) = app.create_key(&org_a).await;
    app.admin_delete(&format!(
        "/api/v1/organizations/{org_a}/api-keys/{revoked_id}"
    ))
    .await;
    let change = json!({"rpm_limit": 1, "name": "hijacked"});

    let foreign = patch_key(&app, &org_b, &key_id, &change).await;
    let unknown = patch_key(
        &app,
        &org_a,
        "key_0123456789abcdef0123456789abcdef",
        &change,
    )
    .await;
    let revoked = patch_key(&app, &org_a, &revoked_id, &change).await;

    let foreign = expect_error(foreign, 404).await;
    let unknown = expect_error(unknown, 404).await;
    assert_eq!(foreign, unknown, "another organization's key looks unknown");
    let revoked = expect_error(revoked, 404).await;
    assert!(message_of(&revoked).contains("revoked"), "{revoked}");
    assert_eq!(listed(&app, &org_a, &key_id).await, before);
    assert_eq!(
        listed(&app, &org_a, &revoked_id).await["rpm_limit"],
        json!(null)
    );
}

#[tokio::test]
async fn a_new_rpm_limit_applies_to_the_next_calls() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (key_id, key) = app.create_key(&org).await;
    assert_eq!(chat_status(&app, &key).await, 200);

    assert_eq!(
        patch_key(&app, &org, &key_id, &json!({"rpm_limit": 2}))
            .await
            .status(),
        200
    );

    assert_eq!(chat_status(&app, &key).await, 200);
    assert_eq!(chat_status(&app, &key).await, 200);
    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert!(refused.headers().contains_key("retry-after"));
    expect_error(refused, 429).await;

    assert_eq!(
        patch_key(&app, &org, &key_id, &json!({"rpm_limit": null}))
            .await
            .status(),
        200
    );
    assert_eq!(chat_status(&app, &key).await, 200, "no limit any more");
}

#[tokio::test]
async fn an_expiry_in_the_past_makes_the_key_fail_with_401_expired() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (key_id, key) = app.create_key(&org).await;
    assert_eq!(app.models(&key).await.status(), 200);

    let response = patch_key(&app, &org, &key_id, &json!({"expires_at": now_secs() - 60})).await;

    assert_eq!(response.status(), 200);
    let error = expect_error(app.models(&key).await, 401).await;
    assert!(message_of(&error).contains("expired"), "{error}");
    patch_key(&app, &org, &key_id, &json!({"expires_at": null})).await;
    assert_eq!(app.models(&key).await.status(), 200, "no expiry any more");
}

#[tokio::test]
async fn a_raised_budget_admits_calls_at_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (key_id, key) = app.budgeted_key(&org, 1, "total").await;
    assert_eq!(chat_status(&app, &key).await, 200);
    assert_eq!(chat_status(&app, &key).await, 402);

    let response = patch_key(
        &app,
        &org,
        &key_id,
        &json!({"budget": {"amount": 3, "period": "total"}}),
    )
    .await;

    assert_eq!(response.status(), 200);
    let answered: Value = response.json().await.unwrap();
    assert_eq!(answered["budget"]["amount"], 3);
    assert_eq!(
        answered["budget"]["spent"], 1,
        "what was spent still counts"
    );
    assert_eq!(chat_status(&app, &key).await, 200);
    assert_eq!(chat_status(&app, &key).await, 200);
    assert_eq!(chat_status(&app, &key).await, 402);
    assert_eq!(app.balance(&org).await, 97);
}

/// Leases stay with the instance while idle, so a lowered budget meets
/// budget already leased under the old amount.
async fn app_keeping_idle_leases() -> TestApp {
    TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.lease_idle_ms = 60_000;
    })
    .await
}

#[tokio::test]
async fn a_lowered_budget_refuses_the_next_calls_though_budget_is_leased() {
    let app = app_keeping_idle_leases().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (key_id, key) = app.budgeted_key(&org, 100, "total").await;
    assert_eq!(chat_status(&app, &key).await, 200);
    assert_eq!(chat_status(&app, &key).await, 200);
    let (spent, leased) = budget_row(&app, &org, &key_id).await;
    assert_eq!(spent, 2);
    assert!(leased > 0, "budget is leased to this instance");

    let response = patch_key(
        &app,
        &org,
        &key_id,
        &json!({"budget": {"amount": 1, "period": "total"}}),
    )
    .await;

    assert_eq!(response.status(), 200);
    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    let error = expect_error(refused, 402).await;
    assert_eq!(error["code"], "insufficient_credits");
    assert_eq!(error["param"], "budget");
    assert!(message_of(&error).starts_with("API key budget"), "{error}");
    assert_eq!(app.mock.request_count(), 2);
    assert_eq!(budget_row(&app, &org, &key_id).await.0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_in_flight_when_the_budget_is_lowered_overspend_it_by_their_holds_at_most() {
    let app = app_keeping_idle_leases().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let (key_id, key) = app.budgeted_key(&org, 100, "total").await;
    assert_eq!(chat_status(&app, &key).await, 200);
    for _ in 0..3 {
        app.mock
            .push_fault(Fault::Latency(Duration::from_millis(800)));
    }
    let in_flight: Vec<_> = (0..3)
        .map(|_| {
            let (client, url, key) = (
                app.client.clone(),
                app.url("/v1/chat/completions"),
                key.clone(),
            );
            tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(key)
                    .json(&chat_body("gpt-4o-mini"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let started = Instant::now();
    while app.mock.request_count() < 4 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the calls reach the provider"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (spent, leased) = budget_row(&app, &org, &key_id).await;

    let response = patch_key(
        &app,
        &org,
        &key_id,
        &json!({"budget": {"amount": 2, "period": "total"}}),
    )
    .await;

    assert_eq!(response.status(), 200);
    assert_eq!(
        chat_status(&app, &key).await,
        402,
        "no new call is admitted"
    );
    for call in in_flight {
        assert_eq!(call.await.unwrap(), 200, "admitted before the change");
    }
    let listed = listed(&app, &org, &key_id).await;
    assert_eq!(
        listed["budget"]["spent"], 4,
        "the calls in flight are charged"
    );
    assert_eq!(spent, 1);
    assert!(
        4 - 2 <= leased,
        "past the new budget by no more than was leased when it was lowered"
    );
    assert_eq!(chat_status(&app, &key).await, 402);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_budget_reaches_another_replica_within_one_second() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = tollgate_tests::TestDatabase::create(&dir.0).await;
    let mock = tollgate_tests::MockProvider::start().await;
    let master_key = tollgate_tests::test_master_key();
    let keep_leases = |s: &mut tollgate_api::Settings| s.lease_idle_ms = 60_000;
    let a = Replica::start_with(&dir.0, &db.url, &mock, &master_key, keep_leases).await;
    let b = Replica::start_with(&dir.0, &db.url, &mock, &master_key, keep_leases).await;
    let http = tollgate_tests::client();
    let admin =
        |method: reqwest::Method, url: String| http.request(method, url).bearer_auth(ADMIN_TOKEN);
    let org: Value = admin(reqwest::Method::POST, a.url("/api/v1/organizations"))
        .json(&json!({"name": "Acme", "billing_mode": "requests"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap();
    let granted = admin(
        reqwest::Method::POST,
        a.url(&format!("/api/v1/organizations/{org}/credits/grants")),
    )
    .json(&json!({"amount": 1000}))
    .send()
    .await
    .unwrap();
    assert_eq!(granted.status(), 201);
    let created: Value = admin(
        reqwest::Method::POST,
        a.url(&format!("/api/v1/organizations/{org}/api-keys")),
    )
    .json(&json!({"name": "shared", "budget": {"amount": 100, "period": "total"}}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let (key_id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let chat_on_b = || async {
        http.post(b.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat_body("gpt-4o-mini"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    // Replica B has cached the key and leased part of its budget.
    assert_eq!(chat_on_b().await, 200);
    let spent_of = || async {
        let listed: Value = admin(
            reqwest::Method::GET,
            a.url(&format!("/api/v1/organizations/{org}/api-keys")),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        listed["data"][0]["budget"]["spent"].as_i64().unwrap()
    };

    let changed = admin(
        reqwest::Method::PATCH,
        a.url(&format!("/api/v1/organizations/{org}/api-keys/{key_id}")),
    )
    .json(&json!({"budget": {"amount": 1, "period": "total"}}))
    .send()
    .await
    .unwrap();
    assert_eq!(changed.status(), 200);
    let started = Instant::now();

    // Fewer calls than B leased: only the change itself can refuse them.
    while chat_on_b().await != 402 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still admits calls past the lowered budget after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let spent = spent_of().await;
    assert!(spent <= 1 + 15, "at most what B had leased: {spent}");
}
