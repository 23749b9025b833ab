//! Operations endpoints (`/health`, `/ready`, `/metrics`) and the answers
//! to requests that reach no handler: unknown paths and oversized bodies.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body, expect_error};

/// TestApp's `max_body_bytes`.
const BODY_LIMIT: usize = 1024 * 1024;

/// A chat request whose JSON body is a little over `BODY_LIMIT` bytes.
fn oversized_chat_body() -> String {
    json!({
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "a".repeat(BODY_LIMIT + 1024)}]
    })
    .to_string()
}

#[tokio::test]
async fn health_and_ready_answer_ok() {
    let app = TestApp::spawn().await;

    for path in ["/health", "/ready"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();

        assert_eq!(response.status(), 200, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"status": "ok"}), "{path}");
    }
}

#[tokio::test]
async fn metrics_count_provider_attempts_by_model_and_outcome() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let response = app.client.get(app.url("/metrics")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain")
            || content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    let sample = text
        .lines()
        .find(|line| {
            line.starts_with("tollgate_provider_attempts")
                && line.contains(r#"model="gpt-4o-mini""#)
                && line.contains(r#"outcome="ok""#)
        })
        .unwrap_or_else(|| panic!("no provider call sample in:\n{text}"));
    let value = sample.rsplit(' ').next().unwrap();
    assert_eq!(value.parse::<f64>().unwrap(), 1.0, "{sample}");
}

#[tokio::test]
async fn metrics_answer_classic_text_unless_openmetrics_is_asked_for() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let classic = app.client.get(app.url("/metrics")).send().await.unwrap();
    let openmetrics = app
        .client
        .get(app.url("/metrics"))
        .header(
            "accept",
            "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
        )
        .send()
        .await
        .unwrap();

    let content_type =
        |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type(&classic).starts_with("text/plain; version=0.0.4"));
    assert!(content_type(&openmetrics).starts_with("application/openmetrics-text"));
    let classic = classic.text().await.unwrap();
    let openmetrics = openmetrics.text().await.unwrap();
    assert!(
        classic.contains("# TYPE tollgate_provider_attempts_total counter"),
        "{classic}"
    );
    assert!(!classic.contains("# EOF"));
    assert!(openmetrics.contains("# TYPE tollgate_provider_attempts counter"));
    assert!(openmetrics.ends_with("# EOF\n"));
    assert!(classic.contains("tollgate_gateway_overhead_seconds_bucket"));
    assert!(
        classic.contains(
            r#"tollgate_http_requests_total{route="/v1/chat/completions",status="200",code=""} 1"#
        ),
        "{classic}"
    );
}

#[tokio::test]
async fn metrics_count_failed_provider_attempts() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    app.mock.push_fault(tollgate_tests::Fault::status(500));
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        502
    );

    let text = app.metrics().await;

    assert!(
        text.lines()
            .any(|line| line.starts_with("tollgate_provider_attempts")
                && line.contains(r#"model="gpt-4o-mini""#)
                && line.contains(r#"outcome="error""#)),
        "{text}"
    );
}

#[tokio::test]
async fn unknown_path_is_404_in_the_error_shape() {
    let app = TestApp::spawn().await;

    for path in ["/nope", "/v1/completions-of-the-future", "/api/v1/nothing"] {
        let response = app.client.get(app.url(path)).send().await.unwrap();

        assert!(response.headers().contains_key("x-tollgate-request-id"));
        expect_error(response, 404).await;
    }
}

#[tokio::test]
async fn oversized_management_body_is_413_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "a".repeat(BODY_LIMIT + 1024), "billing_mode": "usd"});

    let response = app.admin_post("/api/v1/organizations", &body).await;

    assert!(response.headers().contains_key("x-tollgate-request-id"));
    expect_error(response, 413).await;
}

#[tokio::test]
async fn oversized_chat_body_is_413_in_the_error_shape_and_not_relayed() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    let response = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(oversized_chat_body())
        .send()
        .await
        .unwrap();

    assert!(response.headers().contains_key("x-tollgate-request-id"));
    expect_error(response, 413).await;
    assert_eq!(app.mock.request_count(), 0);
    assert_eq!(app.balance(&org).await, 1_000_000);
}

#[tokio::test]
async fn oversized_embeddings_body_is_413_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    let body = json!({"model": "text-embedding-3-small", "input": "a".repeat(BODY_LIMIT + 1024)});

    let response = app.embeddings(&key, &body).await;

    expect_error(response, 413).await;
    assert_eq!(app.mock.request_count(), 0);
}

#[tokio::test]
async fn body_just_under_the_limit_is_accepted() {
    // ~260k tokens at 4 bytes a token: a model whose context window holds
    // them, or routing would rightly refuse the call as too long.
    let config = tollgate_tests::DEFAULT_CONFIG.replace(
        "{ id: gpt-4o-mini, provider: mock,",
        "{ id: gpt-4o-mini, provider: mock, context_window: 1000000,",
    );
    let app = TestApp::spawn_with_config(&config).await;
    let (_, key) = app.funded_org("tokens", 10_000_000).await;
    let content = "word ".repeat((BODY_LIMIT - 1024) / 5);
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 5, "messages": [{"role": "user", "content": content}]});
    assert!(body.to_string().len() < BODY_LIMIT);

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_method_is_405_in_the_error_shape() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .get(app.url("/v1/chat/completions"))
        .send()
        .await
        .unwrap();

    expect_error(response, 405).await;
}
