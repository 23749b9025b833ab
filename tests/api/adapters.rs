//! Native provider adapters end to end: OpenAI-format clients served by
//! Anthropic and Gemini models, Anthropic-format clients (`/v1/messages`)
//! served by an OpenAI-kind model, plain and streamed, with tool calls; each
//! call billed exactly from the provider's usage (the mock's usage rule:
//! prompt = words + 3 per message, completion = words sent, 7 for a tool call).

use serde_json::{Value, json};
use tollgate_tests::{
    CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, Fault, TestApp, chat_body, sse_data,
};

const CONFIG: &str = r#"
providers:
  openai:    { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-openai-secret" }
  anthropic: { base_url: "{MOCK_ROOT}", api_key: "sk-ant-platform-secret" }
  gemini:    { base_url: "{MOCK_ROOT}", api_key: "AIza-platform-secret" }
models:
  - { id: gpt-4o-mini, provider: openai, max_output_tokens: 1000,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
  - { id: claude-sonnet, provider: anthropic, upstream: claude-sonnet-4-6, max_output_tokens: 64000,
      price: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.30 } }
  - { id: gemini-flash, provider: gemini, upstream: gemini-2.5-flash, max_output_tokens: 65536,
      price: { input_per_mtok: 0.30, output_per_mtok: 2.50 } }
  - { id: gemini-embed, provider: gemini, upstream: gemini-embedding-001, mode: embedding,
      price: { input_per_mtok: 0.15 } }
power_levels:
  balanced: [claude-sonnet, gpt-4o-mini]
"#;

const REPLY: &str = "Hello! I am a mock model and this is my answer.";
const KEYS: [&str; 3] = [
    "sk-platform-openai-secret",
    "sk-ant-platform-secret",
    "AIza-platform-secret",
];
/// The mock's completion tokens for a tool-call answer.
const TOOL_CALL_TOKENS: i64 = 7;

async fn app() -> (TestApp, String, String) {
    let app = TestApp::spawn_with_config(CONFIG).await;
    let (org, key) = app.funded_org("tokens", 1_000_000).await;
    (app, org, key)
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}])
}

fn streamed(mut body: Value) -> Value {
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    body
}

/// The JSON chunks of an OpenAI stream, checking it ends with `[DONE]`.
fn chunks(text: &str) -> Vec<Value> {
    let events = sse_data(text);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{text}");
    events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect()
}

fn content_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// Asserts the one usage record and that the balance moved by exactly it.
async fn billed(app: &TestApp, org: &str, prompt: i64, completion: i64) -> Value {
    let usage = app.usage(org).await;
    assert_eq!(usage.len(), 1, "{usage:?}");
    assert_eq!(usage[0]["prompt_tokens"], prompt);
    assert_eq!(usage[0]["completion_tokens"], completion);
    assert_eq!(app.balance(org).await, 1_000_000 - prompt - completion);
    assert_eq!(app.credits(org).await["reserved"], 0);
    usage[0].clone()
}

async fn messages(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/v1/messages"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

// ------------------------------------------------ OpenAI client → Anthropic

#[tokio::test]
async fn openai_client_gets_a_plain_answer_from_an_anthropic_model() {
    let (app, org, key) = app().await;

    let response = app.chat(&key, &chat_body("claude-sonnet")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-provider"], "anthropic");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["usage"]["prompt_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(body["usage"]["completion_tokens"], CHAT_COMPLETION_TOKENS);
    let seen = &app.mock.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.header("x-api-key"), Some("sk-ant-platform-secret"));
    assert_eq!(seen.header("anthropic-version"), Some("2023-06-01"));
    assert!(seen.authorization.is_none());
    assert_eq!(seen.body["model"], "claude-sonnet-4-6");
    assert_eq!(seen.body["max_tokens"], 64000, "the catalog's output limit");
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn openai_client_streams_from_an_anthropic_model() {
    let (app, org, key) = app().await;

    let response = app.chat(&key, &streamed(chat_body("claude-sonnet"))).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let chunks = chunks(&response.text().await.unwrap());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(content_of(&chunks), REPLY);
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], CHAT_COMPLETION_TOKENS);
    assert_eq!(app.mock.requests()[0].body["stream"], true);
    let record = billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
    assert_eq!(record["status"], "ok");
}

#[tokio::test]
async fn anthropic_tool_calls_round_trip_in_openai_format() {
    let (app, org, key) = app().await;
    let mut ask = chat_body("claude-sonnet");
    ask["tools"] = weather_tools();

    let first: Value = app.chat(&key, &ask).await.json().await.unwrap();

    let choice = &first["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"location": "mock"}));
    let sent = &app.mock.requests()[0].body;
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert_eq!(
        sent["tools"][0]["input_schema"]["required"],
        json!(["location"])
    );

    // The tool's result goes back; the model answers in text.
    let mut follow = ask.clone();
    follow["messages"] = json!([
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "15 degrees"}
    ]);
    let second: Value = app.chat(&key, &follow).await.json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], REPLY);
    let sent = &app.mock.requests()[1].body;
    assert_eq!(sent["messages"][1]["content"][0]["type"], "tool_use");
    assert_eq!(
        sent["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": call["id"], "content": "15 degrees"})
    );
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 2);
    let spent: i64 = usage
        .iter()
        .map(|u| u["prompt_tokens"].as_i64().unwrap() + u["completion_tokens"].as_i64().unwrap())
        .sum();
    assert_eq!(app.balance(&org).await, 1_000_000 - spent);
}

#[tokio::test]
async fn anthropic_tool_call_streams_as_tool_call_deltas() {
    let (app, org, key) = app().await;
    let mut ask = streamed(chat_body("claude-sonnet"));
    ask["tools"] = weather_tools();

    let chunks = chunks(&app.chat(&key, &ask).await.text().await.unwrap());

    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls[0]["id"].as_str().unwrap().starts_with("toolu_"));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    assert_eq!(
        serde_json::from_str::<Value>(&args).unwrap(),
        json!({"location": "mock"})
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    billed(&app, &org, CHAT_PROMPT_TOKENS, TOOL_CALL_TOKENS).await;
}

// ------------------------------------------------ OpenAI client → Gemini

#[tokio::test]
async fn openai_client_gets_a_plain_answer_from_a_gemini_model() {
    let (app, org, key) = app().await;

    let response = app.chat(&key, &chat_body("gemini-flash")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-provider"], "gemini");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], REPLY);
    assert_eq!(body["usage"]["prompt_tokens"], CHAT_PROMPT_TOKENS);
    let seen = &app.mock.requests()[0];
    assert_eq!(seen.path, "/v1beta/models/gemini-2.5-flash:generateContent");
    assert_eq!(seen.header("x-goog-api-key"), Some("AIza-platform-secret"));
    assert_eq!(
        seen.body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello"}]}])
    );
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn openai_client_streams_from_a_gemini_model() {
    let (app, org, key) = app().await;

    let response = app.chat(&key, &streamed(chat_body("gemini-flash"))).await;

    assert_eq!(response.status(), 200);
    let chunks = chunks(&response.text().await.unwrap());
    assert_eq!(content_of(&chunks), REPLY);
    assert_eq!(
        chunks.last().unwrap()["usage"]["prompt_tokens"],
        CHAT_PROMPT_TOKENS
    );
    assert_eq!(
        app.mock.requests()[0].path,
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    );
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn gemini_function_calls_round_trip_in_openai_format() {
    let (app, org, key) = app().await;
    let mut ask = streamed(chat_body("gemini-flash"));
    ask["tools"] = weather_tools();

    let chunks = chunks(&app.chat(&key, &ask).await.text().await.unwrap());

    let call = chunks
        .iter()
        .find_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .unwrap()
        .clone();
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"location\":\"mock\"}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "tool_calls")
    );
    let sent = &app.mock.requests()[0].body;
    assert_eq!(
        sent["tools"][0]["functionDeclarations"][0]["name"],
        "get_weather"
    );

    let mut follow = chat_body("gemini-flash");
    follow["tools"] = weather_tools();
    follow["messages"] = json!([
        {"role": "user", "content": "Say hello"},
        {"role": "assistant", "content": null, "tool_calls": [
            {"id": call["id"], "type": "function", "function": call["function"]}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "15 degrees"}
    ]);
    let second: Value = app.chat(&key, &follow).await.json().await.unwrap();
    assert_eq!(second["choices"][0]["message"]["content"], REPLY);
    let sent = &app.mock.requests()[1].body;
    assert_eq!(
        sent["contents"][2]["parts"][0],
        json!({"functionResponse": {"name": "get_weather", "response": {"result": "15 degrees"}}})
    );
    assert_eq!(app.usage(&org).await.len(), 2);
}

#[tokio::test]
async fn gemini_safety_block_is_a_clear_400_and_costs_nothing() {
    let (app, org, key) = app().await;
    let body = json!({"model": "gemini-flash", "messages": [{"role": "user", "content": "BLOCKME please"}]});

    let response = app.chat(&key, &body).await;

    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "content_blocked");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("SAFETY"),
        "{error}"
    );
    assert_eq!(app.balance(&org).await, 1_000_000);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn gemini_embeddings_are_billed_by_input_tokens() {
    let (app, org, key) = app().await;

    let response = app
        .embeddings(&key, &json!({"model": "gemini-embed", "input": ["hello world", "one two three"], "dimensions": 4}))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    assert_eq!(body["data"][1]["index"], 1);
    assert_eq!(body["data"][0]["embedding"].as_array().unwrap().len(), 4);
    assert_eq!(body["usage"]["prompt_tokens"], 5);
    let paths: Vec<String> = app.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths.contains(&"/v1beta/models/gemini-embedding-001:batchEmbedContents".to_owned()),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/v1beta/models/gemini-embedding-001:countTokens".to_owned()),
        "{paths:?}"
    );
    billed(&app, &org, 5, 0).await;
}

// ------------------------------------------------ Anthropic client → OpenAI

#[tokio::test]
async fn messages_endpoint_serves_an_openai_model() {
    let (app, org, key) = app().await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "system": "Be brief.",
        "messages": [{"role": "user", "content": "Say hello"}]});

    let response = messages(&app, &key, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-model"], "gpt-4o-mini");
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "gpt-4o-mini");
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["content"], json!([{"type": "text", "text": REPLY}]));
    assert_eq!(message["stop_reason"], "end_turn");
    // "Be brief." and "Say hello": (2 + 3) + (2 + 3).
    assert_eq!(message["usage"]["input_tokens"], 10);
    assert_eq!(message["usage"]["output_tokens"], CHAT_COMPLETION_TOKENS);
    let sent = &app.mock.requests()[0].body;
    assert_eq!(sent["max_tokens"], 100);
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    billed(&app, &org, 10, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn messages_endpoint_streams_anthropic_events_from_an_openai_model() {
    let (app, org, key) = app().await;
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Say hello"}]});

    let response = messages(&app, &key, &body).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names[1], "content_block_start");
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    let events: Vec<Value> = sse_data(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let joined: String = events
        .iter()
        .filter(|e| e["type"] == "content_block_delta")
        .filter_map(|e| e["delta"]["text"].as_str())
        .collect();
    assert_eq!(joined, REPLY);
    let delta = events
        .iter()
        .find(|e| e["type"] == "message_delta")
        .unwrap();
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["input_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(delta["usage"]["output_tokens"], CHAT_COMPLETION_TOKENS);
    // The provider was asked for usage, whatever the client said.
    assert_eq!(
        app.mock.requests()[0].body["stream_options"]["include_usage"],
        true
    );
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn messages_endpoint_accepts_bearer_auth_and_serves_anthropic_models() {
    let (app, org, key) = app().await;
    let body = json!({"model": "claude-sonnet", "max_tokens": 50, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello"}]}]});

    let response = app
        .client
        .post(app.url("/v1/messages"))
        .bearer_auth(&key)
        .json(&body)
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let message: Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], REPLY);
    let sent = &app.mock.requests()[0].body;
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(
        sent["top_k"], 5,
        "Anthropic-only fields reach Anthropic models"
    );
    assert_eq!(sent["thinking"]["budget_tokens"], 1024);
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn messages_endpoint_errors_use_anthropic_shape() {
    let (app, _, key) = app().await;
    let ok = json!({"model": "gpt-4o-mini", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]});

    let cases = [
        (messages(&app, "tg-nope", &ok).await, 401, "authentication_error"),
        (
            messages(&app, &key, &json!({"model": "no-such-model", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]})).await,
            404,
            "not_found_error",
        ),
        (
            messages(&app, &key, &json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})).await,
            400,
            "invalid_request_error",
        ),
    ];
    for (response, status, kind) in cases {
        assert_eq!(response.status(), status);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(body["error"]["message"].is_string());
    }
}

// ------------------------------------------------ breaks, fallbacks, secrets

#[tokio::test]
async fn cut_anthropic_stream_ends_cleanly_and_is_billed() {
    let (app, org, key) = app().await;
    app.mock.push_fault(Fault::CutStreamAfter(3));

    let response = app.chat(&key, &streamed(chat_body("claude-sonnet"))).await;

    assert_eq!(response.status(), 200);
    let events = sse_data(&response.text().await.unwrap());
    assert_eq!(events.last().unwrap(), "[DONE]");
    let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
    assert_eq!(error["error"]["code"], "stream_interrupted");
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["status"], "partial");
    let charged = usage[0]["cost"].as_i64().unwrap();
    assert!(charged >= 3, "what was produced is billed: {charged}");
    assert_eq!(app.balance(&org).await, 1_000_000 - charged);
    assert_eq!(app.credits(&org).await["reserved"], 0);
}

#[tokio::test]
async fn cut_stream_on_messages_endpoint_ends_with_an_error_event() {
    let (app, org, key) = app().await;
    app.mock.push_fault(Fault::CutStreamAfter(2));
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 100, "stream": true,
        "messages": [{"role": "user", "content": "Say hello"}]});

    let text = messages(&app, &key, &body).await.text().await.unwrap();

    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(names.last(), Some(&"error"), "{text}");
    assert!(!names.contains(&"message_stop"));
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["status"], "partial");
    assert_eq!(
        app.balance(&org).await,
        1_000_000 - usage[0]["cost"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn cut_gemini_stream_ends_cleanly_and_is_billed() {
    let (app, org, key) = app().await;
    app.mock.push_fault(Fault::CutStreamAfter(4));

    let events = sse_data(
        &app.chat(&key, &streamed(chat_body("gemini-flash")))
            .await
            .text()
            .await
            .unwrap(),
    );

    assert_eq!(events.last().unwrap(), "[DONE]");
    assert!(events[events.len() - 2].contains("stream_interrupted"));
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["status"], "partial");
    assert!(usage[0]["completion_tokens"].as_i64().unwrap() >= 4);
    assert_eq!(
        app.balance(&org).await,
        1_000_000 - usage[0]["cost"].as_i64().unwrap()
    );
}

#[tokio::test]
async fn overloaded_anthropic_falls_back_to_the_next_candidate() {
    let (app, org, key) = app().await;
    app.mock.push_fault(Fault::Status {
        status: 529,
        body: json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
        retry_after: None,
    });

    let response = app.chat(&key, &chat_body("auto")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-model"], "gpt-4o-mini");
    let paths: Vec<String> = app.mock.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/v1/messages", "/v1/chat/completions"]);
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}

#[tokio::test]
async fn provider_keys_never_reach_an_error_body() {
    let (app, _, key) = app().await;
    app.mock.push_fault(Fault::Status {
        status: 401,
        body: json!({"type": "error", "error": {"type": "authentication_error",
            "message": "invalid x-api-key: sk-ant-platform-secret"}}),
        retry_after: None,
    });
    app.mock.push_fault(Fault::Status {
        status: 400,
        body: json!({"error": {"code": 400, "message": "API key not valid: AIza-platform-secret",
            "status": "INVALID_ARGUMENT", "details": [{"detail": "Invalid API key: AIza-platform-secret"}]}}),
        retry_after: None,
    });

    let anthropic = app.chat(&key, &chat_body("claude-sonnet")).await;
    let gemini = app.chat(&key, &streamed(chat_body("gemini-flash"))).await;
    let via_messages = messages(
        &app,
        &key,
        &json!({"model": "claude-sonnet", "max_tokens": 10, "messages": [{"role": "user", "content": "BLOCKME"}]}),
    )
    .await;

    for response in [anthropic, gemini, via_messages] {
        let status = response.status();
        let text = response.text().await.unwrap();
        assert!(
            status.is_client_error() || status.is_server_error() || status == 200,
            "{status}"
        );
        for secret in KEYS {
            assert!(!text.contains(secret), "{secret} leaked in {text}");
        }
    }
}

#[tokio::test]
async fn model_names_outside_the_catalog_are_auto_detected() {
    let (app, org, key) = app().await;

    let response = app.chat(&key, &chat_body("claude-haiku-9")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-tollgate-provider"], "anthropic");
    assert_eq!(app.mock.requests()[0].body["model"], "claude-haiku-9");
    let prefixed = app.chat(&key, &chat_body("gemini/gemini-9-pro")).await;
    assert_eq!(prefixed.status(), 200);
    assert_eq!(
        app.mock.requests()[1].path,
        "/v1beta/models/gemini-9-pro:generateContent"
    );
    assert_eq!(app.usage(&org).await.len(), 2);

    let unknown = app.chat(&key, &chat_body("llama-99")).await;
    assert_eq!(unknown.status(), 404);
    let error: Value = unknown.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("add it under `models`")
    );
}

#[tokio::test]
async fn a_model_name_cannot_steer_the_provider_url() {
    let (app, org, key) = app().await;
    let names = [
        "gemini/../../../../escape",
        "gemini/x?key=abc&",
        "gemini/x#frag",
        "gemini/%2e%2e/%2e%2e/escape",
        "gemini/./x",
    ];

    for name in names {
        for body in [chat_body(name), streamed(chat_body(name))] {
            let response = app.chat(&key, &body).await;
            assert_eq!(response.status(), 400, "{name}");
            let error: Value = response.json().await.unwrap();
            assert_eq!(error["error"]["type"], "invalid_request_error", "{name}");
        }
        let mut fallback = chat_body("gemini-flash");
        fallback["models"] = json!([name]);
        assert_eq!(app.chat(&key, &fallback).await.status(), 400, "{name}");
        // Gemini's embedding paths take the model the same way.
        let embed = app
            .embeddings(&key, &json!({"model": name, "input": "hello"}))
            .await;
        assert_eq!(embed.status(), 400, "embeddings: {name}");
        // So does Gemini's own surface, the model in its path (encoded).
        let encoded: String = name
            .bytes()
            .map(|b| match b {
                b'/' | b'?' | b'#' | b'%' | b'&' | b'=' => format!("%{b:02X}"),
                _ => char::from(b).to_string(),
            })
            .collect();
        let native = app
            .client
            .post(app.url(&format!("/v1beta/models/{encoded}:generateContent")))
            .header("x-goog-api-key", &key)
            .json(&json!({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}))
            .send()
            .await
            .unwrap();
        assert_eq!(native.status(), 400, "Gemini surface: {name}");
    }
    // The other adapters put the model in the body, and refuse such names too.
    for name in [
        "openai/../../../../escape",
        "openai/x?key=abc&",
        "anthropic/../../escape",
        "anthropic/x#frag",
    ] {
        assert_eq!(
            app.chat(&key, &chat_body(name)).await.status(),
            400,
            "{name}"
        );
    }

    // A well-formed detected name still reaches the model's own path.
    let response = app.chat(&key, &chat_body("gemini/gemini-2.5-flash")).await;
    assert_eq!(response.status(), 200);
    let paths: Vec<String> = app.mock.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/v1beta/models/gemini-2.5-flash:generateContent"]);
    billed(&app, &org, CHAT_PROMPT_TOKENS, CHAT_COMPLETION_TOKENS).await;
}
