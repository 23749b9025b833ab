//! Routing: fallbacks across candidates, the `models` fallback list, the
//! context-window filter and `x-tollgate-attempts`.

use serde_json::{Value, json};
use tollgate_tests::{Fault, TestApp, chat_body, expect_error};

fn attempts(response: &reqwest::Response) -> &str {
    response.headers()["x-tollgate-attempts"].to_str().unwrap()
}

#[tokio::test]
async fn a_first_answer_took_one_attempt() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;

    let ok = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(ok.status(), 200);
    assert_eq!(attempts(&ok), "1");
}

#[tokio::test]
async fn a_rate_limited_first_candidate_falls_back_and_the_answer_says_so() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(429));

    let ok = app
        .chat(
            &key,
            &json!({"model": "auto", "power_level": "balanced",
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;

    assert_eq!(ok.status(), 200);
    assert_eq!(attempts(&ok), "2");
    assert_eq!(ok.headers()["x-tollgate-model"], "big-model");
    assert_eq!(app.usage(&org).await[0]["model"], "big-model");
}

#[tokio::test]
async fn the_models_list_sets_the_fallbacks_of_a_custom_request() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(500));

    let ok = app
        .chat(
            &key,
            &json!({"model": "cheap-model", "models": ["big-model", "gpt-4o-mini"],
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;

    assert_eq!(ok.status(), 200);
    assert_eq!(attempts(&ok), "2");
    assert_eq!(ok.headers()["x-tollgate-model"], "big-model");
    let seen = app.mock.requests();
    assert_eq!(seen[0].body["model"], "cheap-model");
    assert_eq!(seen[1].body["model"], "big-model-2025");
    assert!(
        seen.iter().all(|r| r.body.get("models").is_none()),
        "`models` is Tollgate's: never forwarded"
    );
    assert_eq!(app.usage(&org).await[0]["model"], "big-model");
}

#[tokio::test]
async fn without_a_models_list_a_custom_request_does_not_fall_back() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(500));

    let failed = app.chat(&key, &chat_body("cheap-model")).await;

    assert_eq!(failed.headers()["x-tollgate-attempts"], "1");
    expect_error(failed, 502).await;
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test]
async fn a_bad_models_list_is_refused() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    let with = |models: Value| json!({"model": "cheap-model", "models": models, "messages": [{"role": "user", "content": "hi"}]});

    let not_a_list = app.chat(&key, &with(json!("big-model"))).await;
    let unknown = app.chat(&key, &with(json!(["no-such-model"]))).await;

    let error = expect_error(not_a_list, 400).await;
    assert!(error["message"].as_str().unwrap().contains("models"));
    let error = expect_error(unknown, 404).await;
    assert!(error["message"].as_str().unwrap().contains("no-such-model"));
    assert_eq!(app.mock.request_count(), 0);
}

const SMALL_CONTEXT_CONFIG: &str = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
models:
  - { id: tiny, provider: mock, context_window: 100, max_output_tokens: 50,
      price: { input_per_mtok: 0.05, output_per_mtok: 0.10 } }
  - { id: roomy, provider: mock, context_window: 100000, max_output_tokens: 1000,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
power_levels:
  eco: [tiny, roomy]
"#;

#[tokio::test]
async fn a_candidate_whose_context_window_is_too_small_is_skipped_without_a_call() {
    let app = TestApp::spawn_with_config(SMALL_CONTEXT_CONFIG).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    // ~250 tokens at 4 bytes a token: more than tiny's 100.
    let long = "word ".repeat(200);

    let ok = app
        .chat(
            &key,
            &json!({"model": "auto", "power_level": "eco", "messages": [{"role": "user", "content": long}]}),
        )
        .await;

    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["x-tollgate-model"], "roomy");
    assert_eq!(attempts(&ok), "1");
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test]
async fn max_tokens_counts_toward_the_context_window() {
    let app = TestApp::spawn_with_config(SMALL_CONTEXT_CONFIG).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;

    let short = app
        .chat(&key, &json!({"model": "auto", "power_level": "eco", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}))
        .await;
    let long = app
        .chat(&key, &json!({"model": "auto", "power_level": "eco", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}))
        .await;

    assert_eq!(short.headers()["x-tollgate-model"], "tiny");
    assert_eq!(long.headers()["x-tollgate-model"], "roomy");
}

#[tokio::test]
async fn a_prompt_too_long_for_every_candidate_is_a_400() {
    let app = TestApp::spawn_with_config(SMALL_CONTEXT_CONFIG).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    let long = "word ".repeat(200);

    let refused = app
        .chat(
            &key,
            &json!({"model": "tiny", "messages": [{"role": "user", "content": long}]}),
        )
        .await;

    let error = expect_error(refused, 400).await;
    assert_eq!(error["code"], "context_length_exceeded");
    assert_eq!(app.mock.request_count(), 0);
}

fn eco() -> Value {
    json!({"model": "auto", "power_level": "eco", "messages": [{"role": "user", "content": "hi"}]})
}

fn last_model_called(app: &TestApp) -> String {
    let seen = app.mock.requests();
    seen.last().unwrap().body["model"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_deployment_in_cooldown_is_skipped_without_a_call_and_comes_back_after() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.cooldown_failures = 2;
        s.cooldown_ms = 400;
    })
    .await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    // Two failures in a row of eco's first model (cheap-model).
    for _ in 0..2 {
        app.mock.push_fault(Fault::status(503));
        let fallback = app.chat(&key, &eco()).await;
        assert_eq!(fallback.headers()["x-tollgate-model"], "gpt-4o-mini");
        assert_eq!(attempts(&fallback), "2");
    }
    let calls_before = app.mock.request_count();

    let skipped = app.chat(&key, &eco()).await;

    assert_eq!(skipped.headers()["x-tollgate-model"], "gpt-4o-mini");
    assert_eq!(attempts(&skipped), "1", "cheap-model was not called");
    assert_eq!(app.mock.request_count(), calls_before + 1);
    assert_eq!(last_model_called(&app), "gpt-4o-mini");

    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let back = app.chat(&key, &eco()).await;
    assert_eq!(back.headers()["x-tollgate-model"], "cheap-model");
}

#[tokio::test]
async fn a_provider_s_retry_after_starts_a_cooldown_at_once() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.cooldown_failures = 5;
    })
    .await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: Some(1),
    });
    assert_eq!(
        app.chat(&key, &eco()).await.headers()["x-tollgate-model"],
        "gpt-4o-mini"
    );

    let skipped = app.chat(&key, &eco()).await;
    assert_eq!(attempts(&skipped), "1");
    assert_eq!(last_model_called(&app), "gpt-4o-mini");

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let back = app.chat(&key, &eco()).await;
    assert_eq!(back.headers()["x-tollgate-model"], "cheap-model");
}

#[tokio::test]
async fn when_every_candidate_is_cooling_down_the_answer_is_503_with_retry_after() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.cooldown_failures = 1;
        s.cooldown_ms = 5_000;
    })
    .await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(500));
    expect_error(app.chat(&key, &chat_body("cheap-model")).await, 502).await;

    let refused = app.chat(&key, &chat_body("cheap-model")).await;

    assert!(refused.headers().contains_key("retry-after"));
    assert_eq!(refused.headers()["x-tollgate-attempts"], "0");
    expect_error(refused, 503).await;
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test]
async fn a_retry_round_after_a_backoff_rescues_a_lone_model() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.routing_retries = 2;
    })
    .await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(503));
    app.mock.push_fault(Fault::status(503));

    let ok = app.chat(&key, &chat_body("cheap-model")).await;

    assert_eq!(ok.status(), 200);
    assert_eq!(attempts(&ok), "3");
    assert_eq!(app.usage(&org).await.len(), 1);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn a_client_error_is_not_retried() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.routing_retries = 2;
    })
    .await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(400));

    let refused = app.chat(&key, &chat_body("cheap-model")).await;

    expect_error(refused, 400).await;
    assert_eq!(app.mock.request_count(), 1);
}

#[tokio::test]
async fn routing_health_shows_each_deployment_to_the_platform_admin() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.cooldown_failures = 1;
        s.cooldown_ms = 60_000;
    })
    .await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(500));
    assert_eq!(app.chat(&key, &eco()).await.status(), 200);

    let health: Value = app
        .admin_get("/api/v1/routing/health")
        .await
        .json()
        .await
        .unwrap();
    let by_name = |name: &str| {
        health["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["deployment"] == name)
            .unwrap_or_else(|| panic!("{name} in {health}"))
            .clone()
    };

    let failed = by_name("mock/cheap-model");
    assert_eq!(failed["state"], "cooldown");
    assert_eq!(failed["failures"], 1);
    assert!(failed["cooldown_remaining_ms"].as_u64().unwrap() > 50_000);
    let ok = by_name("mock/gpt-4o-mini");
    assert_eq!(ok["state"], "healthy");
    assert!(ok["latency_ms"].as_f64().unwrap() >= 0.0);
    assert_eq!(ok["error_rate"], 0.0);
    // Organizations' keys are not admins.
    let refused = app.get_with_key(&key, "/api/v1/routing/health").await;
    assert!(matches!(refused.status().as_u16(), 401 | 403));
}

/// A chat call with the client's own timeout header.
async fn chat_within(app: &TestApp, key: &str, timeout: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header("x-tollgate-timeout-ms", timeout)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_provider_slower_than_the_clients_timeout_is_a_504_in_time_and_costs_nothing() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock
        .push_fault(Fault::Latency(std::time::Duration::from_secs(5)));

    let started = std::time::Instant::now();
    let response = chat_within(&app, &key, "300", &chat_body("gpt-4o-mini")).await;

    assert!(started.elapsed() < std::time::Duration::from_secs(3));
    let error = expect_error(response, 504).await;
    assert_eq!(error["code"], "provider_timeout", "{error}");
    assert_eq!(app.balance(&org).await, 10_000_000);
    assert!(app.usage(&org).await.is_empty());
}

#[tokio::test]
async fn a_call_within_the_clients_timeout_is_answered() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;

    let ok = chat_within(&app, &key, "5000", &chat_body("gpt-4o-mini")).await;

    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn a_malformed_client_timeout_is_a_400_naming_the_header() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;

    for bad in ["soon", "0", "-5", "99999999999"] {
        let response = chat_within(&app, &key, bad, &chat_body("gpt-4o-mini")).await;
        let error = expect_error(response, 400).await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("x-tollgate-timeout-ms"),
            "{bad}: {error}"
        );
    }
    assert_eq!(app.mock.request_count(), 0);
}
