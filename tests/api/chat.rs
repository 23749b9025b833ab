//! `POST /v1/chat/completions`, plain and streamed, with billing.

use serde_json::{Value, json};
use tollgate_tests::{
    CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, Fault, TestApp, chat_body, sse_data,
};

/// gpt-4o-mini in the test catalog: 0.15 and 0.60 USD per Mtok, rounded up once.
fn mini_cost(prompt: i64, completion: i64) -> i64 {
    (prompt * 150_000 + completion * 600_000 + 999_999) / 1_000_000
}

#[tokio::test]
async fn plain_chat_answers_with_provider_text_and_bills_exact_cost() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let request_id = headers["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(headers["x-tollgate-model"], "gpt-4o-mini");
    assert_eq!(headers["x-tollgate-provider"], "mock");
    assert_eq!(headers["x-tollgate-byok"], "false");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! I am a mock model and this is my answer."
    );
    assert_eq!(body["usage"]["prompt_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(body["usage"]["completion_tokens"], CHAT_COMPLETION_TOKENS);

    let cost = mini_cost(CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS);
    assert_eq!(
        headers["x-tollgate-cost"].to_str().unwrap(),
        cost.to_string()
    );
    assert_eq!(app.balance(&org).await, 1_000_000 - cost);
    assert_eq!(app.credits(&org).await["reserved"], 0);

    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["request_id"], request_id.as_str());
    assert_eq!(usage[0]["cost"], cost);
    assert_eq!(usage[0]["model"], "gpt-4o-mini");
    assert_eq!(usage[0]["provider"], "mock");
    assert_eq!(usage[0]["byok"], false);
    assert_eq!(usage[0]["prompt_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(usage[0]["completion_tokens"], CHAT_COMPLETION_TOKENS);

    let ledger = app.transactions(&org).await;
    assert_eq!(ledger[0]["kind"], "usage");
    assert_eq!(ledger[0]["amount"], -cost);
    assert_eq!(ledger[0]["request_id"], request_id.as_str());
    assert_eq!(ledger[0]["balance_after"], 1_000_000 - cost);
}

#[tokio::test]
async fn provider_gets_the_upstream_model_name_and_the_platform_key() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;

    let response = app
        .chat(&key, &json!({"model": "big-model", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.3}))
        .await;

    assert_eq!(response.status(), 200);
    let seen = app.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some("Bearer sk-platform-key")
    );
    assert_eq!(seen[0].body["model"], "big-model-2025");
    assert_eq!(
        seen[0].body["temperature"], 0.3,
        "unknown fields are passed through"
    );
}

#[tokio::test]
async fn streamed_chat_relays_chunks_and_bills_from_the_final_usage() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let request_id = response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let text = response.text().await.unwrap();
    let events = sse_data(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    let content: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(content, "Hello! I am a mock model and this is my answer.");
    let usage_chunk = chunks.last().unwrap();
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["completion_tokens"],
        CHAT_COMPLETION_TOKENS
    );
    // The upstream was asked for usage whatever the client said.
    assert_eq!(
        app.mock.requests()[0].body["stream_options"]["include_usage"],
        true
    );

    let cost = mini_cost(CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS);
    assert_eq!(app.balance(&org).await, 1_000_000 - cost);
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["request_id"], request_id.as_str());
    assert_eq!(usage[0]["stream"], true);
    assert_eq!(usage[0]["status"], "ok");
    assert_eq!(usage[0]["cost"], cost);
}

#[tokio::test]
async fn stream_without_include_usage_gets_no_usage_chunk_but_is_billed() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);

    let text = app.chat(&key, &body).await.text().await.unwrap();

    let events = sse_data(&text);
    assert_eq!(events.last().unwrap(), "[DONE]");
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event).unwrap();
        assert_ne!(chunk["choices"], json!([]), "no usage-only chunk: {event}");
    }
    assert_eq!(
        app.balance(&org).await,
        1_000_000 - mini_cost(CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS)
    );
}

#[tokio::test]
async fn stream_cut_by_the_provider_ends_cleanly_and_bills_what_was_produced() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("tokens", 1_000_000).await;
    app.mock.push_fault(Fault::CutStreamAfter(3));
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted");
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["status"], "partial");
    // The role chunk and three words came through: four chunks, estimated
    // at a token each, plus the prompt estimate.
    assert_eq!(usage[0]["completion_tokens"], 4);
    let charged = usage[0]["cost"].as_i64().unwrap();
    assert!(charged >= 4);
    assert_eq!(app.balance(&org).await, 1_000_000 - charged);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn client_that_disconnects_mid_stream_is_still_billed() {
    a_client_that_gives_up_before_the_answer_is_still_billed(true).await;
}

#[tokio::test]
async fn client_that_disconnects_before_a_plain_answer_is_still_billed() {
    a_client_that_gives_up_before_the_answer_is_still_billed(false).await;
}

async fn a_client_that_gives_up_before_the_answer_is_still_billed(stream: bool) {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    app.mock
        .push_fault(Fault::Latency(std::time::Duration::from_millis(300)));
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(stream);

    // Give up before the provider has answered.
    let attempt =
        tokio::time::timeout(std::time::Duration::from_millis(100), app.chat(&key, &body)).await;
    assert!(attempt.is_err(), "the client gave up first");

    // The call is settled from the provider's own usage all the same.
    billed_once(&app, &org).await;
}

/// The organization's one usage record, once settled (a call whose client
/// left settles in the background): the whole answer's cost, taken from a
/// balance of 1 000 000, nothing left reserved.
async fn billed_once(app: &TestApp, org: &str) -> Value {
    let mut usage = Vec::new();
    for _ in 0..50 {
        usage = app.usage(org).await;
        if !usage.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(usage.len(), 1, "the usage record is never lost");
    let cost = mini_cost(CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS);
    assert_eq!(usage[0]["cost"], cost);
    assert_eq!(app.balance(org).await, 1_000_000 - cost);
    assert_eq!(app.credits(org).await["reserved"], 0);
    usage.remove(0)
}

#[tokio::test]
async fn client_that_leaves_after_the_first_chunk_is_billed_for_the_whole_answer() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    app.mock
        .push_fault(Fault::SlowStream(std::time::Duration::from_millis(40)));
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);

    let mut response = app.chat(&key, &body).await;
    assert_eq!(response.status(), 200);
    let first = response.chunk().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "), "{first:?}");
    drop(response);

    // The provider goes on after the client left; the call is settled from
    // the provider's own usage once its stream ends.
    let usage = billed_once(&app, &org).await;
    assert_eq!(usage["status"], "ok", "read to the provider's end");
    assert_eq!(usage["completion_tokens"], CHAT_COMPLETION_TOKENS);
}

#[tokio::test]
async fn short_balance_is_402_and_the_provider_is_not_called() {
    let app = TestApp::spawn().await;
    // The hold for gpt-4o-mini with 1000 max output tokens is > 600 micro-dollars.
    let (org, key) = app.funded_org("usd", 100).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 402);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "insufficient_credits");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("organization balance")
    );
    assert_eq!(app.mock.request_count(), 0);
    assert_eq!(app.balance(&org).await, 100);
    assert!(app.usage(&org).await.is_empty());
}

#[tokio::test]
async fn max_tokens_lowers_the_hold() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 100).await;
    let mut body = chat_body("gpt-4o-mini");
    body["max_tokens"] = json!(20);

    let response = app.chat(&key, &body).await;

    assert_eq!(
        response.status(),
        200,
        "a 20-token answer fits in 100 micro-dollars"
    );
}

#[tokio::test]
async fn unknown_or_revoked_key_is_401() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant(&org, 1_000_000).await;
    let (key_id, key) = app.create_key(&org).await;

    let missing = app
        .client
        .post(app.url("/v1/chat/completions"))
        .json(&chat_body("gpt-4o-mini"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
    // The key with its last character changed (to another one, always).
    let last = if key.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{last}", &key[..key.len() - 1]);
    let wrong = app.chat(&forged, &chat_body("gpt-4o-mini")).await;
    assert_eq!(wrong.status(), 401);
    let body: Value = wrong.json().await.unwrap();
    assert_eq!(body["error"]["type"], "authentication_error");

    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let revoked = app
        .admin_delete(&format!("/api/v1/organizations/{org}/api-keys/{key_id}"))
        .await;
    assert_eq!(revoked.status(), 200);
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        401
    );
}

#[tokio::test]
async fn malformed_bodies_are_400_naming_the_problem() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let send = |body: String| {
        app.client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let cases = [
        ("{not json", "invalid request body"),
        ("", "empty"),
        (r#"{"messages": []}"#, "model"),
        (r#"{"model": "gpt-4o-mini", "messages": "hi"}"#, "messages"),
        (r#"{"model": "gpt-4o-mini", "messages": []}"#, "messages"),
        (
            r#"{"model": "gpt-4o-mini", "messages": [{"role": "wizard", "content": "x"}]}"#,
            "messages[0].role",
        ),
        (
            r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}"#,
            "max_tokens",
        ),
        (
            r#"{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "max_tokens": -1}"#,
            "max_tokens",
        ),
        (
            r#"{"model": "auto", "power_level": "turbo", "messages": [{"role": "user", "content": "x"}]}"#,
            "power_level",
        ),
    ];
    for (body, needle) in cases {
        let response = send(body.to_owned()).await.unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{body}: {message}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    assert_eq!(app.mock.request_count(), 0);
    assert_eq!(app.balance(&org).await, 1_000_000);
}

#[tokio::test]
async fn unknown_model_is_404() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;

    let response = app.chat(&key, &chat_body("gpt-17-ultra")).await;

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("gpt-17-ultra")
    );
}

#[tokio::test]
async fn provider_error_is_502_and_nothing_is_charged() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    app.mock.push_fault(Fault::status(500));

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 502);
    assert_eq!(app.balance(&org).await, 1_000_000);
    assert_eq!(app.credits(&org).await["reserved"], 0);
    assert!(app.usage(&org).await.is_empty());
}

#[tokio::test]
async fn auto_follows_the_power_level_and_falls_back_on_failure() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let auto = |level: &str| json!({"model": "auto", "power_level": level, "messages": [{"role": "user", "content": "hi"}]});

    let eco = app.chat(&key, &auto("eco")).await;
    assert_eq!(eco.headers()["x-tollgate-model"], "cheap-model");
    let precision = app.chat(&key, &auto("precision")).await;
    assert_eq!(precision.headers()["x-tollgate-model"], "big-model");
    let by_header = app
        .client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(&key)
        .header("x-tollgate-power-level", "eco")
        .json(&json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_header.headers()["x-tollgate-model"], "cheap-model");
    // power_level is Tollgate's: never forwarded.
    assert!(
        app.mock
            .requests()
            .iter()
            .all(|r| r.body.get("power_level").is_none())
    );

    // The first eco candidate fails: the next one answers and is billed.
    app.mock.push_fault(Fault::status(503));
    let fallback = app.chat(&key, &auto("eco")).await;
    assert_eq!(fallback.status(), 200);
    assert_eq!(fallback.headers()["x-tollgate-model"], "gpt-4o-mini");
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["model"], "gpt-4o-mini");
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn models_lists_usable_models_and_auto() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 0).await;

    let response = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"auto"));
    assert!(ids.contains(&"gpt-4o-mini"));
    assert!(ids.contains(&"text-embedding-3-small"));
}

/// A model with a small output limit and round prices: 1 micro-dollar per
/// prompt token, 100 per completion token.
const SHORT_OUTPUT_CONFIG: &str = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
models:
  - { id: short, provider: mock, context_window: 100000, max_output_tokens: 4,
      price: { input_per_mtok: 1, output_per_mtok: 100 } }
"#;

#[tokio::test]
async fn every_choice_of_n_is_held_and_charged() {
    let app = TestApp::spawn_with_config(SHORT_OUTPUT_CONFIG).await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let body = json!({"model": "short", "n": 8, "max_tokens": 3,
        "messages": [{"role": "user", "content": "Say hello"}]});

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    let cost = response.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["choices"].as_array().unwrap().len(), 8);
    // 8 choices of 3 words: 24 completion tokens, all of them charged.
    let full = 5 + 24 * 100;
    assert_eq!(cost, full.to_string());
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["completion_tokens"], 24);
    assert_eq!(usage[0]["cost"], full);
    assert_eq!(app.balance(&org).await, 1_000_000 - full);
}

#[tokio::test]
async fn every_answer_asked_for_is_in_the_hold_before_the_provider_is_called() {
    let app = TestApp::spawn_with_config(SHORT_OUTPUT_CONFIG).await;
    // Enough for two answers of 3 tokens (5 + 2 × 300), not for eight.
    let (org, key) = app.funded_org("usd", 605).await;
    for asked in [
        json!({"n": 8}),
        json!({"best_of": 8}),
        json!({"n": 1, "best_of": 8}),
    ] {
        let mut body = json!({"model": "short", "max_tokens": 3,
            "messages": [{"role": "user", "content": "Say hello"}]});
        if let (Some(body), Some(asked)) = (body.as_object_mut(), asked.as_object()) {
            body.extend(asked.clone());
        }

        let response = app.chat(&key, &body).await;

        tollgate_tests::expect_error(response, 402).await;
    }
    assert_eq!(app.mock.request_count(), 0, "the provider is never called");
    assert_eq!(app.balance(&org).await, 605);
}

#[tokio::test]
async fn max_tokens_above_the_models_limit_is_clamped_not_refused() {
    let app = TestApp::spawn_with_config(SHORT_OUTPUT_CONFIG).await;
    // Too little for 50 000 completion tokens, enough for the model's 4.
    let (org, key) = app.funded_org("usd", 1_000).await;
    let body = json!({"model": "short", "max_tokens": 50_000,
        "messages": [{"role": "user", "content": "Say hello"}]});

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    let sent = app.mock.requests().pop().unwrap();
    assert_eq!(sent.body["max_tokens"], 4);
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["completion_tokens"], 4);
    assert_eq!(app.balance(&org).await, 1_000 - (5 + 4 * 100));
}

#[tokio::test]
async fn n_out_of_range_is_400_naming_n() {
    let app = TestApp::spawn().await;
    let (_org, key) = app.funded_org("usd", 1_000_000).await;
    let mut body = chat_body("gpt-4o-mini");
    body["n"] = json!(0);

    let response = app.chat(&key, &body).await;

    let error = tollgate_tests::expect_error(response, 400).await;
    assert!(tollgate_tests::message_of(&error).contains("`n`"));
    assert_eq!(app.mock.request_count(), 0);
}

/// A provider that answers every chat call with a 307 to another path of
/// its own, where a well-formed answer waits; how many calls reached each.
async fn redirecting_provider() -> (String, std::sync::Arc<[std::sync::atomic::AtomicUsize; 2]>) {
    use axum::http::{StatusCode, header};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let hits = std::sync::Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let (first, moved) = (hits.clone(), hits.clone());
    let app = axum::Router::new()
        .route(
            "/v1/chat/completions",
            axum::routing::post(move || async move {
                first[0].fetch_add(1, Ordering::SeqCst);
                (
                    StatusCode::TEMPORARY_REDIRECT,
                    [(header::LOCATION, "/moved/v1/chat/completions")],
                )
            }),
        )
        .route(
            "/moved/v1/chat/completions",
            axum::routing::post(move || async move {
                moved[1].fetch_add(1, Ordering::SeqCst);
                axum::Json(json!({
                    "id": "chatcmpl-moved", "object": "chat.completion", "created": 0,
                    "model": "gpt-4o-mini",
                    "choices": [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "moved"}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}
                }))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, hits)
}

#[tokio::test]
async fn a_provider_redirect_is_not_followed_with_the_key() {
    let (url, hits) = redirecting_provider().await;
    let config = format!(
        r#"
providers:
  moving: {{ kind: openai, base_url: "{url}", api_key: "sk-platform-key" }}
models:
  - {{ id: gpt-4o-mini, provider: moving, context_window: 100000, max_output_tokens: 100,
      price: {{ input_per_mtok: 1, output_per_mtok: 100 }} }}
"#
    );
    let app = TestApp::spawn_with_config(&config).await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    let error = tollgate_tests::expect_error(response, 502).await;
    assert_eq!(error["code"], "provider_error");
    let [first, moved] = &*hits;
    assert!(first.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    assert_eq!(
        moved.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect's target was called"
    );
    assert!(
        app.usage(&org).await.is_empty(),
        "nothing answered, nothing charged"
    );
    assert_eq!(app.balance(&org).await, 1_000_000);
}

#[tokio::test]
async fn a_provider_that_redirects_is_skipped_for_the_next_candidate() {
    let (url, hits) = redirecting_provider().await;
    let config = format!(
        r#"
providers:
  moving: {{ kind: openai, base_url: "{url}", api_key: "sk-platform-key" }}
  mock: {{ kind: openai, base_url: "{{MOCK}}", api_key: "sk-platform-key" }}
models:
  - {{ id: gpt-4o-mini, provider: moving, price: {{ input_per_mtok: 1, output_per_mtok: 100 }} }}
  - {{ id: backup, provider: mock, price: {{ input_per_mtok: 1, output_per_mtok: 100 }} }}
"#
    );
    let app = TestApp::spawn_with_config(&config).await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let mut body = chat_body("gpt-4o-mini");
    body["models"] = json!(["gpt-4o-mini", "backup"]);

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-model"], "backup");
    assert_eq!(response.headers()["x-tollgate-attempts"], "2");
    let cost: i64 = response.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(hits[1].load(std::sync::atomic::Ordering::SeqCst), 0);
    // Charged once, for the model that answered.
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["model"], "backup");
    assert_eq!(usage[0]["cost"], cost);
    assert_eq!(app.balance(&org).await, 1_000_000 - cost);
}
