//! `POST /v1/embeddings`: OpenAI's shape, billed by input tokens.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body, expect_error, message_of};

/// `n` whitespace-separated words: the mock counts `n` input tokens.
fn words(n: usize) -> String {
    vec!["lorem"; n].join(" ")
}

#[tokio::test]
async fn embeddings_answer_in_openai_shape() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;

    let response = app
        .embeddings(
            &key,
            &json!({"model": "text-embedding-3-small", "input": ["first text", "second"]}),
        )
        .await;

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    assert_eq!(headers["x-tollgate-model"], "text-embedding-3-small");
    assert_eq!(headers["x-tollgate-provider"], "mock");
    assert_eq!(headers["x-tollgate-byok"], "false");
    assert!(headers.contains_key("x-tollgate-request-id"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        let vector = item["embedding"].as_array().unwrap();
        assert!(!vector.is_empty());
        assert!(vector.iter().all(Value::is_f64), "{item}");
    }
    assert_eq!(body["usage"]["prompt_tokens"], 3);
    assert_eq!(body["usage"]["total_tokens"], 3);
}

#[tokio::test]
async fn embeddings_bill_input_tokens_at_list_price_rounded_up() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    // 101 tokens at 0.02 USD per Mtok: 2.02 micro-dollars, charged 3.
    let response = app
        .embeddings(
            &key,
            &json!({"model": "text-embedding-3-small", "input": words(101)}),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-cost"], "3");
    assert_eq!(app.balance(&org).await, 1_000_000 - 3);
    assert_eq!(app.credits(&org).await["reserved"], 0);
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["model"], "text-embedding-3-small");
    assert_eq!(usage[0]["prompt_tokens"], 101);
    assert_eq!(usage[0]["completion_tokens"], 0);
    assert_eq!(usage[0]["cost"], 3);
    let ledger = app.transactions(&org).await;
    assert_eq!(ledger[0]["kind"], "usage");
    assert_eq!(ledger[0]["amount"], -3);
}

#[tokio::test]
async fn embeddings_in_tokens_mode_charge_the_input_tokens() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("tokens", 1_000).await;

    let response = app
        .embeddings(
            &key,
            &json!({"model": "text-embedding-3-small", "input": words(40)}),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(app.balance(&org).await, 1_000 - 40);
}

#[tokio::test]
async fn chat_model_used_for_embeddings_is_400() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    let response = app
        .embeddings(&key, &json!({"model": "gpt-4o-mini", "input": "hello"}))
        .await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("gpt-4o-mini"), "{error}");
    assert_eq!(app.mock.request_count(), 0);
    assert_eq!(app.balance(&org).await, 1_000_000);
}

#[tokio::test]
async fn embedding_model_used_for_chat_is_400() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;

    let response = app.chat(&key, &chat_body("text-embedding-3-small")).await;

    expect_error(response, 400).await;
    assert_eq!(app.mock.request_count(), 0);
}

#[tokio::test]
async fn missing_or_empty_input_is_400_naming_input() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    for body in [
        json!({"model": "text-embedding-3-small"}),
        json!({"model": "text-embedding-3-small", "input": ""}),
        json!({"model": "text-embedding-3-small", "input": []}),
        json!({"model": "text-embedding-3-small", "input": 42}),
    ] {
        let response = app.embeddings(&key, &body).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("input"), "{body}: {error}");
    }
    assert_eq!(app.mock.request_count(), 0);
    assert_eq!(app.balance(&org).await, 1_000_000);
}

#[tokio::test]
async fn unknown_embedding_model_is_404() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;

    let response = app
        .embeddings(
            &key,
            &json!({"model": "text-embedding-99", "input": "hello"}),
        )
        .await;

    let error = expect_error(response, 404).await;
    assert_eq!(error["code"], "model_not_found");
}

#[tokio::test]
async fn embeddings_need_an_api_key() {
    let app = TestApp::spawn().await;

    let response = app
        .client
        .post(app.url("/v1/embeddings"))
        .json(&json!({"model": "text-embedding-3-small", "input": "hello"}))
        .send()
        .await
        .unwrap();

    expect_error(response, 401).await;
    assert_eq!(app.mock.request_count(), 0);
}

#[tokio::test]
async fn embeddings_fall_back_to_the_next_model_when_a_provider_fails() {
    let config = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
models:
  - { id: emb-a, provider: mock, mode: embedding, price: { input_per_mtok: 0.02 } }
  - { id: emb-b, provider: mock, mode: embedding, price: { input_per_mtok: 0.02 } }
"#;
    let app = TestApp::spawn_with_config(config).await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    app.mock
        .push_fault(tollgate_mock_provider::Fault::status(500));

    let response = app
        .embeddings(
            &key,
            &json!({"model": "emb-a", "models": ["emb-b"], "input": words(3)}),
        )
        .await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-model"], "emb-b");
    assert_eq!(response.headers()["x-tollgate-attempts"], "2");
    let sent = app.mock.requests().pop().unwrap();
    assert!(
        sent.body.get("models").is_none(),
        "gateway options stay home"
    );
    assert_eq!(app.usage(&org).await.len(), 1);
}
