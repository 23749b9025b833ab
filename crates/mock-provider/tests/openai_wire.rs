//! The mock provider over real HTTP: OpenAI shapes, the usage rule, streaming,
//! auth, faults and recording.

// clippy.toml allows unwrap in #[test] functions only; the helpers here are
// test code too.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tollgate_mock_provider::{DEFAULT_REPLY, Fault, MockOptions, MockProvider, openai_error};

const KEY: &str = "Bearer sk-test-123";

fn client() -> reqwest::Client {
    // reqwest is built without a TLS provider but insists on one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn chat_body(stream: bool) -> Value {
    json!({
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": "Say hello please"}]}
        ],
        "stream": stream
    })
}

/// (3 + 3) + (3 + 3): words of each message plus 3 per message.
const CHAT_BODY_PROMPT_TOKENS: u64 = 12;

async fn post(mock: &MockProvider, path: &str, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", mock.base_url()))
        .header("authorization", KEY)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The JSON payloads of an SSE body, with `[DONE]` as the string "[DONE]".
fn sse_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| {
            let data = e.strip_prefix("data: ").unwrap();
            if data == "[DONE]" {
                Value::String(data.to_owned())
            } else {
                serde_json::from_str(data).unwrap()
            }
        })
        .collect()
}

fn joined_content(events: &[Value]) -> String {
    events
        .iter()
        .filter_map(|e| e["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn plain_chat_has_the_openai_shape_and_predictable_usage() {
    let mock = MockProvider::start().await;

    let response = post(&mock, "/chat/completions", &chat_body(false)).await;

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let body: Value = response.json().await.unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["object"], "chat.completion");
    assert!(body["created"].as_u64().unwrap() > 1_700_000_000);
    assert_eq!(body["model"], "gpt-4o-mini");
    assert!(body["system_fingerprint"].is_string());
    let choice = &body["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], DEFAULT_REPLY);
    assert_eq!(choice["message"]["refusal"], Value::Null);
    assert_eq!(choice["logprobs"], Value::Null);
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(usage["prompt_tokens"], CHAT_BODY_PROMPT_TOKENS);
    assert_eq!(usage["completion_tokens"], 11);
    assert_eq!(usage["total_tokens"], CHAT_BODY_PROMPT_TOKENS + 11);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 0);
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 0);
}

#[tokio::test]
async fn max_tokens_truncates_the_reply_with_finish_reason_length() {
    let mock = MockProvider::start().await;
    let mut body = chat_body(false);
    body["max_completion_tokens"] = json!(3);

    let body: Value = post(&mock, "/chat/completions", &body)
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(body["choices"][0]["message"]["content"], "Hello! I am");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    assert_eq!(body["usage"]["completion_tokens"], 3);
}

#[tokio::test]
async fn streamed_chat_ends_with_done_and_no_usage_unless_asked() {
    let mock = MockProvider::start().await;

    let response = post(&mock, "/chat/completions", &chat_body(true)).await;

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&response.text().await.unwrap());
    // role chunk + 11 words + finish chunk + [DONE]
    assert_eq!(events.len(), 14);
    assert_eq!(events[13], "[DONE]");
    let first = &events[0];
    assert_eq!(first["object"], "chat.completion.chunk");
    assert_eq!(first["model"], "gpt-4o-mini");
    assert_eq!(
        first["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(first["choices"][0]["finish_reason"], Value::Null);
    let finish = &events[12];
    assert_eq!(finish["choices"][0]["delta"], json!({}));
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    for event in &events[..13] {
        assert_eq!(event["id"], first["id"]);
        assert!(event.get("usage").is_none(), "no usage field: {event}");
    }
}

#[tokio::test]
async fn streamed_chat_with_include_usage_ends_with_a_usage_chunk() {
    let mock = MockProvider::start().await;
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});

    let text = post(&mock, "/chat/completions", &body)
        .await
        .text()
        .await
        .unwrap();

    let events = sse_events(&text);
    assert_eq!(events.len(), 15);
    assert_eq!(events[14], "[DONE]");
    let usage_chunk = &events[13];
    assert_eq!(usage_chunk["choices"], json!([]));
    assert_eq!(
        usage_chunk["usage"]["prompt_tokens"],
        CHAT_BODY_PROMPT_TOKENS
    );
    assert_eq!(usage_chunk["usage"]["completion_tokens"], 11);
    assert_eq!(
        usage_chunk["usage"]["total_tokens"],
        CHAT_BODY_PROMPT_TOKENS + 11
    );
    for event in &events[..13] {
        assert_eq!(event["usage"], Value::Null);
        assert!(event.get("usage").is_some());
    }
}

#[tokio::test]
async fn joined_stream_content_equals_the_plain_content() {
    let mock = MockProvider::start().await;
    mock.set_reply("  One two\tthree   four five ");
    for max_tokens in [None, Some(2)] {
        let mut plain = chat_body(false);
        let mut streamed = chat_body(true);
        if let Some(n) = max_tokens {
            plain["max_tokens"] = json!(n);
            streamed["max_tokens"] = json!(n);
        }

        let plain: Value = post(&mock, "/chat/completions", &plain)
            .await
            .json()
            .await
            .unwrap();
        let text = post(&mock, "/chat/completions", &streamed)
            .await
            .text()
            .await
            .unwrap();

        let content = plain["choices"][0]["message"]["content"].as_str().unwrap();
        let events = sse_events(&text);
        assert_eq!(joined_content(&events), content);
        let expected = if max_tokens.is_some() {
            "One two"
        } else {
            "One two three four five"
        };
        assert_eq!(content, expected);
        let finish = events
            .iter()
            .rev()
            .find_map(|e| e["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, plain["choices"][0]["finish_reason"].as_str());
    }
}

#[tokio::test]
async fn requests_without_a_bearer_key_get_401_in_the_openai_shape() {
    let mock = MockProvider::start().await;

    let response = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .json(&chat_body(false))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert!(body["error"]["message"].is_string());
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(body["error"].get("param").is_some());
    assert!(body["error"].get("code").is_some());
}

#[tokio::test]
async fn malformed_chat_bodies_get_400() {
    let mock = MockProvider::start().await;
    let url = format!("{}/chat/completions", mock.base_url());

    let not_json = client()
        .post(&url)
        .header("authorization", KEY)
        .body("{not json")
        .send()
        .await
        .unwrap();
    let no_model = post(
        &mock,
        "/chat/completions",
        &json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let no_messages = post(&mock, "/chat/completions", &json!({"model": "m"})).await;
    let bad_content = post(
        &mock,
        "/chat/completions",
        &json!({"model": "m", "messages": [{"role": "user", "content": 7}]}),
    )
    .await;

    for response in [not_json, no_model, no_messages, bad_content] {
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn status_fault_answers_once_then_the_mock_recovers() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::Status {
        status: 429,
        body: openai_error("Slow down.", "requests", Some("rate_limit_exceeded")),
        retry_after: Some(7),
    });

    let faulted = post(&mock, "/chat/completions", &chat_body(false)).await;
    let normal = post(&mock, "/chat/completions", &chat_body(false)).await;

    assert_eq!(faulted.status(), 429);
    assert_eq!(faulted.headers()["retry-after"], "7");
    let body: Value = faulted.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    assert_eq!(normal.status(), 200);
}

#[tokio::test]
async fn faults_are_taken_in_order() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::status(500));
    mock.push_fault(Fault::status(503));

    let first = post(&mock, "/chat/completions", &chat_body(false)).await;
    let second = post(&mock, "/embeddings", &json!({"model": "e", "input": "x"})).await;
    let third = post(&mock, "/chat/completions", &chat_body(false)).await;

    assert_eq!(first.status(), 500);
    assert_eq!(second.status(), 503);
    assert_eq!(third.status(), 200);
}

#[tokio::test]
async fn cut_stream_sends_n_content_chunks_then_drops_the_connection() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::CutStreamAfter(3));
    let mut body = chat_body(true);
    body["stream_options"] = json!({"include_usage": true});

    let mut response = post(&mock, "/chat/completions", &body).await;

    assert_eq!(response.status(), 200);
    let mut received = Vec::new();
    let outcome = loop {
        match response.chunk().await {
            Ok(Some(bytes)) => received.extend_from_slice(&bytes),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        outcome.is_err(),
        "the stream must end in an error, not cleanly"
    );
    let text = String::from_utf8(received).unwrap();
    assert!(!text.contains("[DONE]"));
    let events = sse_events(&text);
    assert_eq!(events.len(), 4, "role chunk + 3 content chunks: {text}");
    assert_eq!(joined_content(&events), "Hello! I am");
    assert!(events.iter().all(|e| e["usage"].is_null()));
}

#[tokio::test]
async fn cut_fault_on_a_plain_request_closes_the_connection_before_any_byte() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::CutStreamAfter(0));
    let addr = mock.addr();

    // Raw TCP, to see that not even a status line is written.
    let received = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut tcp = std::net::TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let body = chat_body(false).to_string();
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: {KEY}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        tcp.write_all(request.as_bytes()).unwrap();
        let mut received = Vec::new();
        let _ = tcp.read_to_end(&mut received);
        received
    })
    .await
    .unwrap();

    assert!(
        received.is_empty(),
        "got {:?}",
        String::from_utf8_lossy(&received)
    );
    assert_eq!(mock.request_count(), 1);
}

#[tokio::test]
async fn hang_fault_never_answers() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::Hang);

    let result = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("authorization", KEY)
        .json(&chat_body(false))
        .timeout(Duration::from_millis(300))
        .send()
        .await;

    assert!(result.unwrap_err().is_timeout());
}

#[tokio::test]
async fn dropping_the_mock_ends_a_hang_by_closing_the_connection() {
    let mock = MockProvider::start().await;
    mock.push_fault(Fault::Hang);
    let request = client()
        .post(format!("{}/chat/completions", mock.base_url()))
        .header("authorization", KEY)
        .json(&chat_body(false))
        .timeout(Duration::from_secs(10))
        .send();
    let pending = tokio::spawn(request);
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let started = Instant::now();
    drop(mock);
    let result = pending.await.unwrap();

    let error = result.unwrap_err();
    assert!(!error.is_timeout(), "{error}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn latency_fault_and_option_delay_the_answer() {
    let mock = MockProvider::start_on(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            latency: Duration::from_millis(100),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    mock.push_fault(Fault::Latency(Duration::from_millis(200)));

    let started = Instant::now();
    let response = post(&mock, "/chat/completions", &chat_body(false)).await;

    assert_eq!(response.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn requests_are_recorded_in_order_with_their_authorization() {
    let mock = MockProvider::start().await;

    post(&mock, "/chat/completions", &chat_body(false)).await;
    client()
        .get(format!("{}/models", mock.base_url()))
        .send()
        .await
        .unwrap();

    let requests = mock.requests();
    assert_eq!(mock.request_count(), 2);
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/v1/chat/completions");
    assert_eq!(requests[0].authorization.as_deref(), Some(KEY));
    assert_eq!(requests[0].header("Authorization"), Some(KEY));
    assert_eq!(requests[0].body, chat_body(false));
    assert_eq!(requests[1].method, "GET");
    assert_eq!(requests[1].path, "/v1/models");
    assert_eq!(requests[1].authorization, None);
    assert_eq!(requests[1].body, Value::Null);
}

#[tokio::test]
async fn with_recording_off_requests_are_counted_not_stored() {
    let mock = MockProvider::start_on(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            record: false,
            reply: "Just this.".to_owned(),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();

    let body: Value = post(&mock, "/chat/completions", &chat_body(false))
        .await
        .json()
        .await
        .unwrap();

    assert_eq!(body["choices"][0]["message"]["content"], "Just this.");
    assert_eq!(mock.request_count(), 1);
    assert!(mock.requests().is_empty());
}

#[tokio::test]
async fn embeddings_are_deterministic_with_predictable_usage() {
    let mock = MockProvider::start().await;
    let body = json!({"model": "text-embedding-3-small", "input": ["hello world", "one two three", "hello world"], "dimensions": 5});

    let response = post(&mock, "/embeddings", &body).await;

    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    assert_eq!(list["model"], "text-embedding-3-small");
    let data = list["data"].as_array().unwrap();
    assert_eq!(data.len(), 3);
    for (i, item) in data.iter().enumerate() {
        assert_eq!(item["object"], "embedding");
        assert_eq!(item["index"], i);
        assert_eq!(item["embedding"].as_array().unwrap().len(), 5);
    }
    assert_eq!(data[0]["embedding"], data[2]["embedding"]);
    assert_ne!(data[0]["embedding"], data[1]["embedding"]);
    assert_eq!(
        list["usage"],
        json!({"prompt_tokens": 7, "total_tokens": 7})
    );

    let single: Value = post(
        &mock,
        "/embeddings",
        &json!({"model": "e", "input": "hello world"}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(single["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn models_lists_openai_model_objects() {
    let mock = MockProvider::start().await;

    let response = client()
        .get(format!("{}/models", mock.base_url()))
        .header("authorization", KEY)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let list: Value = response.json().await.unwrap();
    assert_eq!(list["object"], "list");
    let first = &list["data"][0];
    assert_eq!(first["object"], "model");
    assert!(first["id"].is_string() && first["created"].is_u64() && first["owned_by"].is_string());
}

#[tokio::test]
async fn unknown_paths_get_404_in_the_openai_shape() {
    let mock = MockProvider::start().await;

    let response = post(&mock, "/completions/nope", &json!({})).await;

    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}
