//! The mock provider's Responses API, Anthropic token count, prompt cache
//! and JSON-schema replies, over real HTTP.

#![allow(clippy::unwrap_used)]

use serde_json::{Value, json};
use tollgate_mock_provider::{DEFAULT_REPLY, MockProvider};

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn responses(mock: &MockProvider, body: &Value) -> reqwest::Response {
    client()
        .post(format!("{}/responses", mock.base_url()))
        .header("authorization", "Bearer sk-test")
        .json(body)
        .send()
        .await
        .unwrap()
}

async fn anthropic(mock: &MockProvider, path: &str, body: &Value) -> Value {
    let root = mock.base_url().trim_end_matches("/v1").to_owned();
    let response = client()
        .post(format!("{root}{path}"))
        .header("x-api-key", "sk-ant")
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_response_has_the_reply_and_the_usage_rule() {
    let mock = MockProvider::start().await;
    let r = responses(
        &mock,
        &json!({"model": "gpt-4o-mini", "input": "Say hello", "instructions": "Be brief"}),
    )
    .await;
    assert_eq!(r.status(), 200);
    let object: Value = r.json().await.unwrap();
    assert_eq!(object["object"], "response");
    assert_eq!(object["status"], "completed");
    assert_eq!(object["output"][0]["content"][0]["text"], DEFAULT_REPLY);
    let words = DEFAULT_REPLY.split_whitespace().count() as u64;
    assert_eq!(object["usage"]["input_tokens"], 10);
    assert_eq!(object["usage"]["output_tokens"], words);

    let cut = responses(
        &mock,
        &json!({"model": "m", "input": "x", "max_output_tokens": 2}),
    )
    .await;
    let cut: Value = cut.json().await.unwrap();
    assert_eq!(cut["status"], "incomplete");
    assert_eq!(cut["incomplete_details"]["reason"], "max_output_tokens");
}

#[tokio::test]
async fn a_streamed_response_is_the_event_sequence() {
    let mock = MockProvider::start().await;
    let r = responses(
        &mock,
        &json!({"model": "m", "input": "Say hello", "stream": true}),
    )
    .await;
    let text = r.text().await.unwrap();
    let events: Vec<Value> = text
        .split("\n\n")
        .filter(|e| !e.is_empty())
        .map(|e| serde_json::from_str(e.split_once("data: ").unwrap().1).unwrap())
        .collect();
    let kinds: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds[..4],
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added"
        ]
    );
    assert_eq!(kinds.last(), Some(&"response.completed"));
    let deltas: String = events
        .iter()
        .filter(|e| e["type"] == "response.output_text.delta")
        .map(|e| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, DEFAULT_REPLY);
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["sequence_number"], i as u64);
    }
}

#[tokio::test]
async fn tools_are_called_and_schemas_answered() {
    let mock = MockProvider::start().await;
    let tools = json!([{"type": "function", "name": "f",
        "parameters": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]);
    let r: Value = responses(&mock, &json!({"model": "m", "input": "x", "tools": tools}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["output"][0]["type"], "function_call");
    assert_eq!(r["output"][0]["arguments"], "{\"n\":1}");
    let format = json!({"format": {"type": "json_schema", "name": "p",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}}});
    let r: Value = responses(&mock, &json!({"model": "m", "input": "x", "text": format}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(r["output"][0]["content"][0]["text"], "{\"name\":\"mock\"}");
}

#[tokio::test]
async fn anthropic_counts_tokens_and_caches_marked_blocks() {
    let mock = MockProvider::start().await;
    let system = json!([{"type": "text", "text": "one two three four", "cache_control": {"type": "ephemeral"}}]);
    let body = json!({"model": "claude", "max_tokens": 50, "system": system,
        "messages": [{"role": "user", "content": "Say hello"}]});
    let counted = anthropic(&mock, "/v1/messages/count_tokens", &body).await;
    assert_eq!(counted, json!({"input_tokens": 12}));
    let first = anthropic(&mock, "/v1/messages", &body).await;
    assert_eq!(first["usage"]["cache_creation_input_tokens"], 4);
    assert_eq!(first["usage"]["cache_read_input_tokens"], 0);
    assert_eq!(first["usage"]["input_tokens"], 8);
    let second = anthropic(&mock, "/v1/messages", &body).await;
    assert_eq!(second["usage"]["cache_creation_input_tokens"], 0);
    assert_eq!(second["usage"]["cache_read_input_tokens"], 4);
}
