//! Organization settings (markup, overdraft limit, allowed models, rate
//! limits, default power level), deletion, members and invitations, API
//! key scopes, and who may do each (table-driven).

use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_tests::replica::Replica;
use tollgate_tests::users::PASSWORD;
use tollgate_tests::{
    ADMIN_TOKEN, CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, DEFAULT_CONFIG, TestApp, chat_body,
    expect_error, message_of,
};

async fn patch(app: &TestApp, token: &str, org: &str, body: &Value) -> reqwest::Response {
    app.send(
        Method::PATCH,
        &format!("/api/v1/organizations/{org}"),
        token,
        Some(body),
    )
    .await
}

/// PATCHes as the platform admin, which must succeed; the organization after.
async fn configure(app: &TestApp, org: &str, body: &Value) -> Value {
    let response = patch(app, ADMIN_TOKEN, org, body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn key_with(app: &TestApp, org: &str, body: &Value) -> Value {
    let response = app.create_key_with(org, body).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn messages(app: &TestApp, key: &str) -> reqwest::Response {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", key)
        .json(&json!({"model": "gpt-4o-mini", "max_tokens": 16,
            "messages": [{"role": "user", "content": "Say hello"}]}))
        .send()
        .await
        .unwrap()
}

fn embedding_body() -> Value {
    json!({"model": "text-embedding-3-small", "input": "hello"})
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

// ---- settings ----

#[tokio::test]
async fn new_organizations_have_the_default_settings() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let body: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}"))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(body["markup_percent"], 0);
    assert_eq!(body["overdraft_limit"], 0);
    assert_eq!(body["allowed_models"], Value::Null);
    assert_eq!(body["rpm_limit"], Value::Null);
    assert_eq!(body["tpm_limit"], Value::Null);
    assert_eq!(body["max_concurrency"], Value::Null);
}

#[tokio::test]
async fn settings_are_changed_returned_and_cleared() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let body = configure(
        &app,
        &org,
        &json!({"markup_percent": 25, "overdraft_limit": 5000,
            "allowed_models": ["gpt-4o-mini", "cheap-model", "gpt-4o-mini"],
            "rpm_limit": 60, "tpm_limit": 10000, "max_concurrency": 4}),
    )
    .await;
    assert_eq!(body["markup_percent"], 25);
    assert_eq!(body["overdraft_limit"], 5000);
    assert_eq!(
        body["allowed_models"],
        json!(["gpt-4o-mini", "cheap-model"])
    );
    assert_eq!(body["rpm_limit"], 60);
    assert_eq!(body["tpm_limit"], 10000);
    assert_eq!(body["max_concurrency"], 4);
    let credits = app.credits(&org).await;
    assert_eq!(credits["overdraft_limit"], 5000);

    let body = configure(
        &app,
        &org,
        &json!({"allowed_models": null, "rpm_limit": null, "name": "Renamed"}),
    )
    .await;
    assert_eq!(body["allowed_models"], Value::Null);
    assert_eq!(body["rpm_limit"], Value::Null);
    assert_eq!(body["tpm_limit"], 10000, "untouched fields stay");
    assert_eq!(body["markup_percent"], 25);
}

#[tokio::test]
async fn invalid_settings_are_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for (body, field) in [
        (json!({"markup_percent": 1001}), "markup_percent"),
        (json!({"markup_percent": -1}), "markup_percent"),
        (json!({"markup_percent": 1.5}), "markup_percent"),
        (json!({"overdraft_limit": -1}), "overdraft_limit"),
        (
            json!({"allowed_models": ["no-such-model"]}),
            "allowed_models",
        ),
        (json!({"allowed_models": "gpt-4o-mini"}), "allowed_models"),
        (json!({"rpm_limit": 0}), "rpm_limit"),
        (json!({"tpm_limit": -5}), "tpm_limit"),
        (json!({"max_concurrency": 0}), "max_concurrency"),
    ] {
        let error = expect_error(patch(&app, ADMIN_TOKEN, &org, &body).await, 400).await;
        assert!(message_of(&error).contains(field), "{body}: {error}");
    }
    let body: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["markup_percent"], 0, "nothing changed");
    assert_eq!(body["overdraft_limit"], 0);
}

#[tokio::test]
async fn a_markup_raises_the_usd_charge_rounded_up_once() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    configure(&app, &org, &json!({"markup_percent": 50})).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    // List: 5 × 0.15 + 11 × 0.60 = 7.35 µ$ (8 once rounded); × 1.5 = 11.025 → 12.
    assert_eq!(header(&response, "x-tollgate-cost"), "12");
    assert_eq!(app.balance(&org).await, 1_000_000 - 12);
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["cost"], 12);
    assert_eq!(usage[0]["list_cost_usd_micros"], 8);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn a_markup_does_not_apply_in_tokens_mode() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("tokens", 100_000).await;
    configure(&app, &org, &json!({"markup_percent": 200})).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    let tokens = CHAT_PROMPT_TOKENS + CHAT_COMPLETION_TOKENS;
    assert_eq!(header(&response, "x-tollgate-cost"), tokens.to_string());
    assert_eq!(app.balance(&org).await, 100_000 - tokens);
}

#[tokio::test]
async fn a_markup_does_not_apply_to_byok_calls() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.byok_fee_percent = 100).await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    app.add_credential(&org, "mock", tollgate_tests::byok::BYOK_KEY)
        .await;
    configure(&app, &org, &json!({"markup_percent": 50})).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-byok"), "true");
    // The fee (here 100 %) is a share of the list cost, 8, without markup.
    assert_eq!(header(&response, "x-tollgate-cost"), "8");
}

#[tokio::test]
async fn calls_may_take_the_balance_down_to_the_overdraft_limit_and_no_further() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("requests", 2).await;
    configure(&app, &org, &json!({"overdraft_limit": 3})).await;

    for _ in 0..5 {
        let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;
        assert_eq!(response.status(), 200);
    }
    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    let error = expect_error(refused, 402).await;
    assert_eq!(error["code"], "insufficient_credits");
    assert_eq!(app.balance(&org).await, -3);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn a_model_outside_the_allowed_list_is_refused_with_403() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    configure(&app, &org, &json!({"allowed_models": ["gpt-4o-mini"]})).await;

    let error = expect_error(app.chat(&key, &chat_body("big-model")).await, 403).await;
    assert_eq!(error["code"], "model_not_allowed");
    assert!(message_of(&error).contains("big-model"));
    let mut with_fallback = chat_body("gpt-4o-mini");
    with_fallback["models"] = json!(["big-model"]);
    expect_error(app.chat(&key, &with_fallback).await, 403).await;
    expect_error(app.embeddings(&key, &embedding_body()).await, 403).await;
    assert_eq!(app.mock.requests().len(), 0, "no provider was called");

    let allowed = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(allowed.status(), 200);
}

#[tokio::test]
async fn auto_only_considers_allowed_models() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    // precision is [big-model, gpt-4o-mini].
    configure(&app, &org, &json!({"allowed_models": ["gpt-4o-mini"]})).await;
    let mut body = chat_body("auto");
    body["power_level"] = json!("precision");

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-model"), "gpt-4o-mini");
    assert_eq!(header(&response, "x-tollgate-attempts"), "1");

    configure(&app, &org, &json!({"allowed_models": ["cheap-model"]})).await;
    let error = expect_error(app.chat(&key, &body).await, 403).await;
    assert_eq!(error["code"], "model_not_allowed");
}

#[tokio::test]
async fn the_model_list_shows_only_allowed_models() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 0).await;
    configure(
        &app,
        &org,
        &json!({"allowed_models": ["cheap-model", "text-embedding-3-small"]}),
    )
    .await;

    let body: Value = app.models(&key).await.json().await.unwrap();

    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["auto", "cheap-model", "text-embedding-3-small"]);
}

#[tokio::test]
async fn an_organization_rate_limit_is_shared_by_its_keys_and_changes_at_once() {
    let app = TestApp::spawn().await;
    let (org, first) = app.funded_org("requests", 100).await;
    let (_, second) = app.create_key(&org).await;
    let (_, other_org_key) = app.funded_org("requests", 100).await;
    configure(&app, &org, &json!({"rpm_limit": 2})).await;

    assert_eq!(
        app.chat(&first, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.chat(&second, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let refused = app.chat(&first, &chat_body("gpt-4o-mini")).await;
    assert!(refused.headers().contains_key("retry-after"));
    let error = expect_error(refused, 429).await;
    assert!(message_of(&error).contains("organization"), "{error}");
    let other = app.chat(&other_org_key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(other.status(), 200, "another organization is not limited");

    configure(&app, &org, &json!({"rpm_limit": null})).await;
    let response = app.chat(&second, &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 200, "the platform default: unlimited");
}

#[tokio::test]
async fn auto_uses_the_organization_default_power_level_unless_the_call_names_one() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    configure(&app, &org, &json!({"default_power_level": "eco"})).await;

    let by_default = app.chat(&key, &chat_body("auto")).await;
    assert_eq!(header(&by_default, "x-tollgate-model"), "cheap-model");

    let mut named = chat_body("auto");
    named["power_level"] = json!("balanced");
    let by_body = app.chat(&key, &named).await;
    assert_eq!(header(&by_body, "x-tollgate-model"), "gpt-4o-mini");

    let by_header = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-tollgate-power-level", "precision")
        .json(&chat_body("auto"))
        .send()
        .await
        .unwrap();
    assert_eq!(header(&by_header, "x-tollgate-model"), "big-model");
}

// ---- deletion ----

#[tokio::test]
async fn a_deleted_organization_disappears_and_its_keys_users_and_credentials_stop() {
    let app = TestApp::spawn_with_sign_in().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let kept = app.create_org("usd").await;
    app.create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let credential = app
        .add_credential(&org, "mock", tollgate_tests::byok::BYOK_KEY)
        .await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let balance = app.balance(&org).await;

    let response = app
        .admin_delete(&format!("/api/v1/organizations/{org}"))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["deleted"], true);
    assert_eq!(body["balance"], balance);
    assert_eq!(body["unit"], "usd_micros");
    let gone = app.admin_get(&format!("/api/v1/organizations/{org}")).await;
    expect_error(gone, 404).await;
    let list: Value = app
        .admin_get("/api/v1/organizations")
        .await
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.as_str()]);
    expect_error(app.chat(&key, &chat_body("gpt-4o-mini")).await, 401).await;
    expect_error(app.login("admin@example.com", PASSWORD).await, 401).await;
    let id = credential["id"].as_str().unwrap();
    let credential: Value = app
        .admin_get(&format!("/api/v1/provider-credentials/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(credential["active"], false);
    let again = app
        .admin_delete(&format!("/api/v1/organizations/{org}"))
        .await;
    expect_error(again, 404).await;

    // The ledger and the usage stay.
    let db = app.raw_db().await;
    let usage: i64 = sqlx::query_scalar(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM usage_records WHERE organization_id = $1",
    )
    .bind(&org)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(usage, 1);
    let ledger: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(amount) AS BIGINT) FROM ledger_entries WHERE organization_id = $1",
    )
    .bind(&org)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(ledger, balance);
}

#[tokio::test]
async fn revoking_a_key_of_a_deleted_organization_is_404() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let (key_id, _) = app.create_key(&org).await;
    let deleted = app
        .admin_delete(&format!("/api/v1/organizations/{org}"))
        .await;
    assert_eq!(deleted.status(), 200);

    let revoked = app
        .admin_delete(&format!("/api/v1/organizations/{org}/api-keys/{key_id}"))
        .await;

    let error = expect_error(revoked, 404).await;
    assert!(message_of(&error).contains("organization"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_organizations_keys_fail_on_another_replica_within_one_second() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = tollgate_tests::TestDatabase::create(&dir.0).await;
    let mock = tollgate_tests::MockProvider::start().await;
    let master_key = tollgate_tests::test_master_key();
    let a = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let b = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let http = tollgate_tests::client();
    let org: Value = http
        .post(a.url("/api/v1/organizations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "Acme", "billing_mode": "usd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap();
    let created: Value = http
        .post(a.url(&format!("/api/v1/organizations/{org}/api-keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let models_on_b = || http.get(b.url("/v1/models")).bearer_auth(key).send();
    assert_eq!(models_on_b().await.unwrap().status(), 200);

    let deleted = http
        .delete(a.url(&format!("/api/v1/organizations/{org}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    let started = Instant::now();

    while models_on_b().await.unwrap().status() != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still accepts the deleted organization's key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_change_reaches_another_replica_within_one_second() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = tollgate_tests::TestDatabase::create(&dir.0).await;
    let mock = tollgate_tests::MockProvider::start().await;
    let master_key = tollgate_tests::test_master_key();
    let a = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let b = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let http = tollgate_tests::client();
    let org: Value = http
        .post(a.url("/api/v1/organizations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "Acme", "billing_mode": "requests"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap();
    let created: Value = http
        .post(a.url(&format!("/api/v1/organizations/{org}/api-keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let models_listed_on_b = || async {
        let body: Value = http
            .get(b.url("/v1/models"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["data"].as_array().unwrap().len()
    };
    // Replica B has cached the key with every model allowed.
    assert_eq!(models_listed_on_b().await, 5);

    let changed = http
        .patch(a.url(&format!("/api/v1/organizations/{org}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"allowed_models": ["gpt-4o-mini"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    let started = Instant::now();

    while models_listed_on_b().await != 2 {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still lists every model after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- members and invitations ----

async fn invite(app: &TestApp, token: &str, org: &str, email: &str, role: &str) -> Value {
    let response = app
        .send(
            Method::POST,
            &format!("/api/v1/organizations/{org}/invitations"),
            token,
            Some(&json!({"email": email, "role": role})),
        )
        .await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn accept(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": token, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
}

async fn members(app: &TestApp, token: &str, org: &str) -> Vec<String> {
    let response = app
        .get_with_key(token, &format!("/api/v1/organizations/{org}/members"))
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_invited_user_accepts_once_and_becomes_a_member() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let admin = app.token_of("admin@example.com").await;

    let invitation = invite(&app, &admin, &org, "Bob@Example.com", "org_member").await;
    assert_eq!(invitation["email"], "bob@example.com");
    assert_eq!(invitation["role"], "org_member");
    let token = invitation["token"].as_str().unwrap();
    assert!(token.starts_with("tginv_"));
    assert!(
        invitation["expires_at"].as_i64().unwrap() > invitation["created_at"].as_i64().unwrap()
    );

    let accepted = accept(&app, token).await;
    assert_eq!(accepted.status(), 201);
    let body: Value = accepted.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["user"]["organization_id"], org);
    let bob = body["access_token"].as_str().unwrap();
    let own_org = app
        .get_with_key(bob, &format!("/api/v1/organizations/{org}"))
        .await;
    assert_eq!(own_org.status(), 200, "the token works");
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 200);
    assert_eq!(
        members(&app, &admin, &org).await,
        ["admin@example.com", "bob@example.com"]
    );

    let error = expect_error(accept(&app, token).await, 400).await;
    assert!(message_of(&error).contains("token"));
    let stored: String = sqlx::query_scalar("SELECT token_hash FROM invitations")
        .fetch_one(&app.raw_db().await)
        .await
        .unwrap();
    assert!(!stored.contains(token), "only a hash is stored");
}

#[tokio::test]
async fn an_expired_or_unknown_invitation_is_refused() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let invitation = invite(&app, ADMIN_TOKEN, &org, "late@example.com", "org_admin").await;
    sqlx::query("UPDATE invitations SET expires_at = 1")
        .execute(&app.raw_db().await)
        .await
        .unwrap();

    let token = invitation["token"].as_str().unwrap();
    expect_error(accept(&app, token).await, 400).await;
    expect_error(accept(&app, "tginv_nope").await, 400).await;
    expect_error(app.login("late@example.com", PASSWORD).await, 401).await;
}

#[tokio::test]
async fn an_invitation_to_a_deleted_organization_cannot_be_accepted() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let invitation = invite(&app, ADMIN_TOKEN, &org, "bob@example.com", "org_member").await;
    let deleted = app
        .admin_delete(&format!("/api/v1/organizations/{org}"))
        .await;
    assert_eq!(deleted.status(), 200);

    let response = accept(&app, invitation["token"].as_str().unwrap()).await;

    expect_error(response, 400).await;
    expect_error(app.login("bob@example.com", PASSWORD).await, 401).await;
}

#[tokio::test]
async fn invitations_are_checked() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_user("taken@example.com", "org_member", Some(&org))
        .await;
    let path = format!("/api/v1/organizations/{org}/invitations");

    for (body, status) in [
        (
            json!({"email": "x@example.com", "role": "platform_admin"}),
            400,
        ),
        (json!({"email": "not an email", "role": "org_member"}), 400),
        (json!({"email": "x@example.com"}), 400),
        (
            json!({"email": "taken@example.com", "role": "org_member"}),
            409,
        ),
    ] {
        expect_error(app.admin_post(&path, &body).await, status).await;
    }
    let missing = app
        .admin_post(
            "/api/v1/organizations/org_missing/invitations",
            &json!({"email": "x@example.com", "role": "org_member"}),
        )
        .await;
    expect_error(missing, 404).await;
    let short = invite(&app, ADMIN_TOKEN, &org, "short@example.com", "org_member").await;
    let response = app
        .client
        .post(app.url("/api/v1/auth/accept-invitation"))
        .json(&json!({"token": short["token"], "password": "short"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 400).await;
    let retry = accept(&app, short["token"].as_str().unwrap()).await;
    assert_eq!(retry.status(), 201, "a refused password does not use it up");
}

async fn invitations(app: &TestApp, token: &str, org: &str, query: &str) -> Value {
    let response = app
        .get_with_key(
            token,
            &format!("/api/v1/organizations/{org}/invitations{query}"),
        )
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

fn emails(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["email"].as_str().unwrap())
        .collect()
}

async fn revoke(app: &TestApp, token: &str, org: &str, id: &str) -> reqwest::Response {
    app.send(
        Method::DELETE,
        &format!("/api/v1/organizations/{org}/invitations/{id}"),
        token,
        None,
    )
    .await
}

#[tokio::test]
async fn pending_invitations_are_listed_newest_first_without_their_tokens() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let admin = app.token_of("admin@example.com").await;
    let first = invite(&app, &admin, &org, "first@example.com", "org_member").await;
    let accepted = invite(&app, &admin, &org, "accepted@example.com", "org_member").await;
    let expired = invite(&app, &admin, &org, "expired@example.com", "org_admin").await;
    let last = invite(&app, &admin, &org, "last@example.com", "org_admin").await;
    let response = accept(&app, accepted["token"].as_str().unwrap()).await;
    assert_eq!(response.status(), 201);
    sqlx::query("UPDATE invitations SET expires_at = 1 WHERE id = $1")
        .bind(expired["id"].as_str().unwrap())
        .execute(&app.raw_db().await)
        .await
        .unwrap();

    let page = invitations(&app, &admin, &org, "").await;

    assert_eq!(emails(&page), ["last@example.com", "first@example.com"]);
    assert_eq!(page["has_more"], false);
    let listed = &page["data"][0];
    for field in [
        "id",
        "organization_id",
        "email",
        "role",
        "expires_at",
        "created_at",
    ] {
        assert_eq!(listed[field], last[field], "{field}");
    }
    assert_eq!(
        listed.as_object().unwrap().len(),
        6,
        "no other field (no token, no hash): {listed}"
    );
    let text = page.to_string();
    for invitation in [&first, &last] {
        assert!(!text.contains(invitation["token"].as_str().unwrap()));
    }
    let hash: String = sqlx::query_scalar("SELECT token_hash FROM invitations WHERE id = $1")
        .bind(last["id"].as_str().unwrap())
        .fetch_one(&app.raw_db().await)
        .await
        .unwrap();
    assert!(!text.contains(&hash), "the stored hash is not listed");

    // Pages of one, as every list of the API.
    let one = invitations(&app, &admin, &org, "?limit=1").await;
    assert_eq!(emails(&one), ["last@example.com"]);
    assert_eq!(one["has_more"], true);
    let cursor = one["next_cursor"].as_str().unwrap();
    // The cursor outlives its invitation.
    assert_eq!(revoke(&app, &admin, &org, cursor).await.status(), 204);
    let next = invitations(&app, &admin, &org, &format!("?limit=1&before={cursor}")).await;
    assert_eq!(emails(&next), ["first@example.com"]);
    assert_eq!(next["has_more"], false);
    assert!(next["next_cursor"].is_null());
}

#[tokio::test]
async fn a_revoked_invitation_can_no_longer_be_accepted() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let admin = app.token_of("admin@example.com").await;
    let invitation = invite(&app, &admin, &org, "bob@example.com", "org_member").await;
    let id = invitation["id"].as_str().unwrap();

    let response = revoke(&app, &admin, &org, id).await;

    assert_eq!(response.status(), 204);
    assert!(response.bytes().await.unwrap().is_empty());
    let refused = expect_error(
        accept(&app, invitation["token"].as_str().unwrap()).await,
        400,
    )
    .await;
    assert!(message_of(&refused).contains("token"));
    expect_error(app.login("bob@example.com", PASSWORD).await, 401).await;
    assert!(emails(&invitations(&app, &admin, &org, "").await).is_empty());
    let again = expect_error(revoke(&app, &admin, &org, id).await, 404).await;
    assert_eq!(again["code"], "not_found");
    // The same email can be invited again, and that invitation works.
    let second = invite(&app, &admin, &org, "bob@example.com", "org_member").await;
    assert_eq!(
        accept(&app, second["token"].as_str().unwrap())
            .await
            .status(),
        201
    );
}

#[tokio::test]
async fn only_a_pending_invitation_can_be_revoked() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let accepted = invite(
        &app,
        ADMIN_TOKEN,
        &org,
        "accepted@example.com",
        "org_member",
    )
    .await;
    assert_eq!(
        accept(&app, accepted["token"].as_str().unwrap())
            .await
            .status(),
        201
    );
    let expired = invite(&app, ADMIN_TOKEN, &org, "expired@example.com", "org_member").await;
    sqlx::query("UPDATE invitations SET expires_at = 1 WHERE id = $1")
        .bind(expired["id"].as_str().unwrap())
        .execute(&app.raw_db().await)
        .await
        .unwrap();

    for id in [
        accepted["id"].as_str().unwrap(),
        expired["id"].as_str().unwrap(),
        "inv_missing",
    ] {
        let error = expect_error(revoke(&app, ADMIN_TOKEN, &org, id).await, 404).await;
        assert_eq!(message_of(&error), "invitation not found", "{id}");
    }
    let missing_org = revoke(&app, ADMIN_TOKEN, "org_missing", "inv_missing").await;
    expect_error(missing_org, 404).await;
    assert_eq!(
        app.login("accepted@example.com", PASSWORD).await.status(),
        200,
        "revoking an accepted invitation leaves its user alone"
    );
}

#[tokio::test]
async fn organizations_never_see_or_revoke_each_others_invitations() {
    let app = TestApp::spawn_with_sign_in().await;
    let a = app.create_org("usd").await;
    let b = app.create_org("usd").await;
    app.create_user("admin-b@example.com", "org_admin", Some(&b))
        .await;
    let admin_b = app.token_of("admin-b@example.com").await;
    let of_a = invite(&app, ADMIN_TOKEN, &a, "for-a@example.com", "org_member").await;
    invite(&app, &admin_b, &b, "for-b@example.com", "org_member").await;
    let id_of_a = of_a["id"].as_str().unwrap();

    assert_eq!(
        emails(&invitations(&app, &admin_b, &b, "").await),
        ["for-b@example.com"]
    );
    assert_eq!(
        emails(&invitations(&app, ADMIN_TOKEN, &a, "").await),
        ["for-a@example.com"]
    );
    let path = format!("/api/v1/organizations/{a}/invitations");
    expect_error(app.get_with_key(&admin_b, &path).await, 403).await;
    // Through its own organization's path, B's admin finds nothing, and
    // neither does the platform admin: the invitation is A's.
    expect_error(revoke(&app, &admin_b, &b, id_of_a).await, 404).await;
    expect_error(revoke(&app, ADMIN_TOKEN, &b, id_of_a).await, 404).await;
    expect_error(revoke(&app, &admin_b, &a, id_of_a).await, 403).await;
    // A's cursor does not page B's list into A's.
    let crossed = invitations(&app, &admin_b, &b, &format!("?before={id_of_a}")).await;
    assert!(emails(&crossed).is_empty());

    assert_eq!(
        accept(&app, of_a["token"].as_str().unwrap()).await.status(),
        201
    );
}

#[tokio::test]
async fn a_removed_member_can_no_longer_sign_in() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let member = app
        .create_user("gone@example.com", "org_member", Some(&org))
        .await;
    let id = member["id"].as_str().unwrap();
    let path = format!("/api/v1/organizations/{org}/members/{id}");

    let response = app.admin_delete(&path).await;

    assert_eq!(response.status(), 200);
    expect_error(app.login("gone@example.com", PASSWORD).await, 401).await;
    assert!(members(&app, ADMIN_TOKEN, &org).await.is_empty());
    expect_error(app.admin_delete(&path).await, 404).await;
}

// ---- API key scopes ----

#[tokio::test]
async fn keys_have_chat_and_embeddings_scopes_by_default() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let plain = key_with(&app, &org, &json!({"name": "plain"})).await;
    let admin = key_with(&app, &org, &json!({"name": "old admin", "admin": true})).await;

    assert_eq!(plain["scopes"], json!(["chat", "embeddings"]));
    assert_eq!(plain["admin"], false);
    assert_eq!(admin["scopes"], json!(["chat", "embeddings", "admin"]));
    let listed: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await
        .json()
        .await
        .unwrap();
    let scopes_of = |id: &Value| {
        listed["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["id"] == *id)
            .unwrap()["scopes"]
            .clone()
    };
    assert_eq!(
        scopes_of(&admin["id"]),
        json!(["chat", "embeddings", "admin"])
    );
    assert_eq!(scopes_of(&plain["id"]), json!(["chat", "embeddings"]));
}

#[tokio::test]
async fn a_key_without_the_chat_scope_cannot_chat() {
    let app = TestApp::spawn().await;
    let (org, _) = app.funded_org("usd", 1_000_000).await;
    let key = key_with(
        &app,
        &org,
        &json!({"name": "emb", "scopes": ["embeddings"]}),
    )
    .await;
    let key = key["key"].as_str().unwrap();

    let error = expect_error(app.chat(key, &chat_body("gpt-4o-mini")).await, 403).await;
    assert_eq!(error["code"], "missing_scope");
    let anthropic = messages(&app, key).await;
    assert_eq!(anthropic.status(), 403);
    let body: Value = anthropic.json().await.unwrap();
    assert_eq!(body["type"], "error");

    assert_eq!(app.embeddings(key, &embedding_body()).await.status(), 200);
}

#[tokio::test]
async fn a_key_without_the_embeddings_scope_cannot_embed() {
    let app = TestApp::spawn().await;
    let (org, _) = app.funded_org("usd", 1_000_000).await;
    let key = key_with(&app, &org, &json!({"name": "chat", "scopes": ["chat"]})).await;
    let key = key["key"].as_str().unwrap();

    expect_error(app.embeddings(key, &embedding_body()).await, 403).await;
    assert_eq!(app.chat(key, &chat_body("gpt-4o-mini")).await.status(), 200);
    assert_eq!(messages(&app, key).await.status(), 200);
}

/// `PATCH …/api-keys/{key_id}` with `scopes` replaces them: the key's next
/// calls are refused or admitted by its new scopes, and `admin` follows.
#[tokio::test]
async fn changed_scopes_apply_to_the_next_calls() {
    let app = TestApp::spawn().await;
    let (org, _) = app.funded_org("usd", 1_000_000).await;
    let created = key_with(&app, &org, &json!({"name": "k"})).await;
    let (id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let path = format!("/api/v1/organizations/{org}/api-keys/{id}");
    assert_eq!(app.chat(key, &chat_body("gpt-4o-mini")).await.status(), 200);

    let narrowed = app
        .admin_patch(&path, &json!({"scopes": ["embeddings", "embeddings"]}))
        .await;

    assert_eq!(narrowed.status(), 200);
    let narrowed: Value = narrowed.json().await.unwrap();
    assert_eq!(narrowed["scopes"], json!(["embeddings"]), "each scope once");
    assert_eq!(narrowed["admin"], false);
    let error = expect_error(app.chat(key, &chat_body("gpt-4o-mini")).await, 403).await;
    assert_eq!(error["code"], "missing_scope");
    assert_eq!(messages(&app, key).await.status(), 403);
    assert_eq!(app.embeddings(key, &embedding_body()).await.status(), 200);

    let widened: Value = app
        .admin_patch(&path, &json!({"scopes": ["chat", "admin"]}))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(widened["scopes"], json!(["chat", "admin"]));
    assert_eq!(widened["admin"], true, "admin follows the admin scope");
    assert_eq!(app.chat(key, &chat_body("gpt-4o-mini")).await.status(), 200);
    expect_error(app.embeddings(key, &embedding_body()).await, 403).await;
    let credential =
        json!({"organization_id": org, "provider": "mock", "api_key": "sk-scoped-5678"});
    assert_eq!(
        app.create_credential_as(key, &credential).await.status(),
        201
    );
}

#[tokio::test]
async fn only_a_key_with_the_admin_scope_manages_credentials() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let admin = key_with(&app, &org, &json!({"name": "a", "scopes": ["admin"]})).await;
    let chat = key_with(&app, &org, &json!({"name": "c", "scopes": ["chat"]})).await;
    let body = json!({"organization_id": org, "provider": "mock", "api_key": "sk-scoped-1234"});

    let refused = app
        .create_credential_as(chat["key"].as_str().unwrap(), &body)
        .await;
    let created = app
        .create_credential_as(admin["key"].as_str().unwrap(), &body)
        .await;

    expect_error(refused, 403).await;
    assert_eq!(created.status(), 201);
    assert_eq!(admin["admin"], true);
}

#[tokio::test]
async fn invalid_scopes_are_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for scopes in [json!([]), json!(["root"]), json!("chat"), json!([1])] {
        let response = app
            .create_key_with(&org, &json!({"name": "k", "scopes": scopes}))
            .await;
        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("scopes"), "{scopes}: {error}");
    }
}

// ---- the audit log ----

#[tokio::test]
async fn an_org_admin_users_credential_changes_are_audited_as_that_user() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let user = app
        .create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let token = app.token_of("admin@example.com").await;

    let created = app
        .create_credential_as(
            &token,
            &json!({"organization_id": org, "provider": "mock", "api_key": "sk-by-user-1234"}),
        )
        .await;
    assert_eq!(created.status(), 201);

    let audit: Value = app
        .admin_get(&format!(
            "/api/v1/provider-credentials/audit?organization_id={org}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        audit["data"][0]["actor"],
        json!({"type": "user", "id": user["id"]})
    );
}

// ---- who may do what ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    AdminToken,
    PlatformUser,
    AdminOfA,
    MemberOfA,
    AdminOfB,
    Nobody,
}

#[derive(Debug, Clone, Copy)]
enum Needs {
    Platform,
    OrgAdmin,
}

impl Needs {
    fn allows(self, caller: Caller) -> bool {
        matches!(
            (self, caller),
            (_, Caller::AdminToken | Caller::PlatformUser) | (Needs::OrgAdmin, Caller::AdminOfA)
        )
    }
}

#[tokio::test]
async fn each_role_can_do_exactly_what_it_should_with_organization_administration() {
    let app = TestApp::spawn_with_sign_in().await;
    let a = app.create_org("usd").await;
    let b = app.create_org("usd").await;
    let spare = app.create_org("usd").await;
    let tokens = app.role_tokens(&a, &b).await;
    let callers = [
        (Caller::AdminToken, ADMIN_TOKEN.to_owned()),
        (Caller::PlatformUser, tokens.platform),
        (Caller::AdminOfA, tokens.admin_of_a),
        (Caller::MemberOfA, tokens.member_of_a),
        (Caller::AdminOfB, tokens.admin_of_b),
        (Caller::Nobody, String::new()),
    ];
    let org = format!("/api/v1/organizations/{a}");
    let table = [
        (
            "PATCH",
            org.clone(),
            Some(json!({"name": "Acme"})),
            Needs::OrgAdmin,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"default_power_level": "eco"})),
            Needs::OrgAdmin,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"markup_percent": 10})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"overdraft_limit": 10})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"allowed_models": ["gpt-4o-mini"]})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"rpm_limit": 100})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"tpm_limit": 100})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"max_concurrency": 9})),
            Needs::Platform,
        ),
        (
            "PATCH",
            org.clone(),
            Some(json!({"name": "Acme", "markup_percent": 0})),
            Needs::Platform,
        ),
        // A missing organization: 404 for those allowed to ask.
        (
            "DELETE",
            "/api/v1/organizations/org_missing".to_owned(),
            None,
            Needs::Platform,
        ),
        ("GET", format!("{org}/members"), None, Needs::OrgAdmin),
        (
            "POST",
            format!("{org}/invitations"),
            Some(json!({"email": "EMAIL", "role": "org_member"})),
            Needs::OrgAdmin,
        ),
        (
            "POST",
            format!("{org}/invitations"),
            Some(json!({"email": "EMAIL", "role": "org_admin"})),
            Needs::OrgAdmin,
        ),
        (
            "DELETE",
            format!("{org}/members/usr_missing"),
            None,
            Needs::OrgAdmin,
        ),
        ("GET", format!("{org}/invitations"), None, Needs::OrgAdmin),
        (
            "DELETE",
            format!("{org}/invitations/inv_missing"),
            None,
            Needs::OrgAdmin,
        ),
        (
            "POST",
            format!("{org}/api-keys"),
            Some(json!({"name": "k", "scopes": ["chat"]})),
            Needs::OrgAdmin,
        ),
    ];

    let mut n = 0;
    for (method, path, body, needs) in &table {
        for (caller, token) in &callers {
            n += 1;
            let mut request = app.client.request(method.parse().unwrap(), app.url(path));
            if *caller != Caller::Nobody {
                request = request.bearer_auth(token);
            }
            if let Some(body) = body {
                let text = body
                    .to_string()
                    .replace("EMAIL", &format!("user{n}@example.com"));
                request = request
                    .header("content-type", "application/json")
                    .body(text);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            if *caller == Caller::Nobody {
                assert_eq!(status, 401, "{caller:?} {method} {path}: {text}");
            } else if needs.allows(*caller) {
                assert!(
                    status < 400 || status == 404,
                    "{caller:?} {method} {path}: expected to be allowed, got {status} {text}"
                );
            } else {
                assert_eq!(status, 403, "{caller:?} {method} {path}: {text}");
            }
        }
    }

    // Deleting a real organization: refused to all but platform admins.
    let path = format!("/api/v1/organizations/{spare}");
    for (caller, token) in &callers[2..5] {
        let response = app.send(Method::DELETE, &path, token, None).await;
        assert_eq!(response.status(), 403, "{caller:?}");
    }
    let response = app.send(Method::DELETE, &path, &callers[1].1, None).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn accepting_an_invitation_needs_no_auth_but_a_valid_token() {
    let app = TestApp::spawn_with_sign_in().await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/accept-invitation"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"token": "tginv_x", "password": PASSWORD}))
        .send()
        .await
        .unwrap();

    expect_error(response, 400).await;
}
