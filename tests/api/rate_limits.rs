//! Rate limits of API keys and organizations: 429 with `Retry-After` and the
//! `x-ratelimit-*` headers, in-process and shared through Redis.

use serde_json::{Value, json};
use std::time::Duration;
use tollgate_tests::replica::Replica;
use tollgate_tests::{
    ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider, TestApp, TestDatabase, chat_at_once, chat_body,
    client, expect_error, org_key_at, test_master_key,
};

/// The machine's Redis; tests keep apart by a unique key prefix each.
const REDIS_URL: &str = "redis://127.0.0.1:6379";

fn unique_prefix() -> String {
    format!("tollgate-test-{}", uuid::Uuid::new_v4())
}

async fn key_with(app: &TestApp, org: &str, body: Value) -> String {
    let created: Value = app.create_key_with(org, &body).await.json().await.unwrap();
    created["key"].as_str().unwrap().to_owned()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .unwrap_or_else(|| panic!("no `{name}` header"))
        .to_str()
        .unwrap()
}

#[tokio::test]
async fn answers_carry_the_ratelimit_headers_openai_clients_read() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let key = key_with(
        &app,
        &org,
        json!({"name": "k", "rpm_limit": 5, "tpm_limit": 100000}),
    )
    .await;

    let ok = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(ok.status(), 200);
    assert_eq!(header(&ok, "x-ratelimit-limit-requests"), "5");
    assert_eq!(header(&ok, "x-ratelimit-remaining-requests"), "4");
    assert!(header(&ok, "x-ratelimit-reset-requests").ends_with('s'));
    assert_eq!(header(&ok, "x-ratelimit-limit-tokens"), "100000");
    let remaining: i64 = header(&ok, "x-ratelimit-remaining-tokens").parse().unwrap();
    assert!(remaining < 100000);
}

#[tokio::test]
async fn a_key_without_limits_gets_no_ratelimit_headers() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("requests", 10).await;

    let ok = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(ok.status(), 200);
    assert!(!ok.headers().contains_key("x-ratelimit-limit-requests"));
}

#[tokio::test]
async fn a_refusal_is_a_429_in_the_error_shape_with_retry_after_and_headers() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let key = key_with(&app, &org, json!({"name": "k", "rpm_limit": 1})).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    let retry_after: u64 = header(&refused, "retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(header(&refused, "x-ratelimit-limit-requests"), "1");
    assert_eq!(header(&refused, "x-ratelimit-remaining-requests"), "0");
    let error = expect_error(refused, 429).await;
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "rate_limit_error");
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test]
async fn a_tpm_limit_refuses_once_the_minute_s_tokens_are_spent() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    // Any call is admitted into an empty minute; its real usage then fills it.
    let key = key_with(&app, &org, json!({"name": "k", "tpm_limit": 5})).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(header(&refused, "x-ratelimit-remaining-tokens"), "0");
    let error = expect_error(refused, 429).await;
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("tokens per minute")
    );
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_refuses_a_call_while_another_is_in_flight() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let key = key_with(&app, &org, json!({"name": "k", "max_concurrency": 1})).await;
    app.mock
        .push_fault(tollgate_tests::Fault::Latency(Duration::from_millis(800)));
    let slow = {
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
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;

    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert!(refused.headers().contains_key("retry-after"));
    let error = expect_error(refused, 429).await;
    assert!(error["message"].as_str().unwrap().contains("concurrent"));
    assert_eq!(slow.await.unwrap(), 200);
    // The lease came back with the answer.
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
}

#[tokio::test]
async fn the_organization_limit_covers_all_its_keys() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.org_rpm_limit = Some(2)).await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let a = key_with(&app, &org, json!({"name": "a"})).await;
    let b = key_with(&app, &org, json!({"name": "b"})).await;
    assert_eq!(app.chat(&a, &chat_body("gpt-4o-mini")).await.status(), 200);
    assert_eq!(app.chat(&b, &chat_body("gpt-4o-mini")).await.status(), 200);

    let refused = app.chat(&a, &chat_body("gpt-4o-mini")).await;

    let error = expect_error(refused, 429).await;
    assert!(error["message"].as_str().unwrap().contains("organization"));
    // Another organization is not affected.
    let (_other, c) = app.funded_org("requests", 10).await;
    assert_eq!(app.chat(&c, &chat_body("gpt-4o-mini")).await.status(), 200);
}

#[tokio::test]
async fn the_messages_endpoint_is_limited_too() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let key = key_with(&app, &org, json!({"name": "k", "rpm_limit": 1})).await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 16,
        "messages": [{"role": "user", "content": "Hi"}]});
    let send = || {
        app.client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &key)
            .json(&body)
            .send()
    };
    assert_eq!(send().await.unwrap().status(), 200);

    let refused = send().await.unwrap();

    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));
    let error: Value = refused.json().await.unwrap();
    assert_eq!(error["type"], "error");
}

/// Two gateways on one database and one Redis: the key's limit holds for
/// the pair, not once per replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_sharing_redis_hold_the_limit_exactly() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let master_key = test_master_key();
    let prefix = unique_prefix();
    let shared = |s: &mut tollgate_api::Settings| {
        s.redis_url = Some(REDIS_URL.to_owned());
        s.redis_prefix = prefix.clone();
    };
    let a = Replica::start_with(&dir.0, &db.url, &mock, &master_key, shared).await;
    let b = Replica::start_with(&dir.0, &db.url, &mock, &master_key, shared).await;
    let http = client();
    let key = org_key_at(
        &http,
        &a.url(""),
        "requests",
        100,
        json!({"name": "shared", "rpm_limit": 4}),
    )
    .await;

    // Ten calls at once, five on each replica.
    let answers = chat_at_once(&http, &[&a.url(""), &b.url("")], &key, 10).await;

    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited = answers.iter().filter(|(s, _)| *s == 429).count();
    assert_eq!((ok, limited), (4, 6), "{answers:?}");
    assert_eq!(mock.request_count(), 4);
}

#[tokio::test]
async fn with_redis_down_limits_fall_back_to_the_process() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        s.redis_url = Some("redis://127.0.0.1:1".to_owned());
        s.redis_prefix = unique_prefix();
    })
    .await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let key = key_with(&app, &org, json!({"name": "k", "rpm_limit": 1})).await;

    let first = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    let second = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(first.status(), 200, "calls go on without Redis");
    expect_error(second, 429).await;
}

/// A deployment that fails on one replica is skipped by the other too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooldown_reaches_the_other_replica_through_redis() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let master_key = test_master_key();
    let prefix = unique_prefix();
    let shared = |s: &mut tollgate_api::Settings| {
        s.redis_url = Some(REDIS_URL.to_owned());
        s.redis_prefix = prefix.clone();
        s.cooldown_failures = 1;
        s.cooldown_ms = 20_000;
    };
    let a = Replica::start_with(&dir.0, &db.url, &mock, &master_key, shared).await;
    let b = Replica::start_with(&dir.0, &db.url, &mock, &master_key, shared).await;
    let http = client();
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
    http.post(a.url(&format!("/api/v1/organizations/{org}/credits/grants")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"amount": 100}))
        .send()
        .await
        .unwrap();
    let created: Value = http
        .post(a.url(&format!("/api/v1/organizations/{org}/api-keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    let call = |url: String| {
        let http = http.clone();
        async move {
            http.post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&chat_body("cheap-model"))
                .send()
                .await
                .unwrap()
        }
    };
    mock.push_fault(tollgate_tests::Fault::status(500));
    expect_error(call(a.url("")).await, 502).await;

    // Sharing runs four times a second; a busy machine may take longer.
    // Replica b's own health view shows the cooldown once it has it.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let health: Value = http
            .get(b.url("/api/v1/routing/health"))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let cooling = health["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["deployment"] == "mock/cheap-model" && d["state"] == "cooldown");
        if cooling {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "replica b never learned the cooldown: {health}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let skipped = call(b.url("")).await;

    assert!(skipped.headers().contains_key("retry-after"));
    expect_error(skipped, 503).await;
    assert_eq!(mock.request_count(), 1, "replica b sent nothing");
}
