//! The inbound surfaces beside Chat and Messages, end to end on models of
//! all three provider kinds (OpenAI-compatible, Anthropic, Gemini, all the
//! mock): OpenAI Responses (plain, streamed, tools, stored responses and
//! `previous_response_id`), the Gemini API (`generateContent`, its stream,
//! `countTokens`, `embedContent`, the model list, Google's errors),
//! Anthropic's `count_tokens`, `GET /v1/models/{id}`, and prompt-cache
//! writes and reads billed at the catalog's prices. Usage follows the
//! mock's rule: prompt = words + 3 per message, completion = words sent.

use serde_json::{Value, json};
use tollgate_tests::{CHAT_COMPLETION_TOKENS, TestApp, sse_data};

const CONFIG: &str = r#"
providers:
  openai:    { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-openai-secret" }
  anthropic: { base_url: "{MOCK_ROOT}", api_key: "sk-ant-platform-secret" }
  gemini:    { base_url: "{MOCK_ROOT}", api_key: "AIza-platform-secret" }
models:
  - { id: gpt-4o-mini, provider: openai, max_output_tokens: 1000,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
  - { id: claude-sonnet, provider: anthropic, upstream: claude-sonnet-4-6, max_output_tokens: 64000,
      price: { input_per_mtok: 3, output_per_mtok: 15, cached_input_per_mtok: 0.30, cache_write_per_mtok: 3.75 } }
  - { id: gemini-flash, provider: gemini, upstream: gemini-2.5-flash, max_output_tokens: 65536,
      price: { input_per_mtok: 0.30, output_per_mtok: 2.50 } }
  - { id: gemini-embed, provider: gemini, upstream: gemini-embedding-001, mode: embedding,
      price: { input_per_mtok: 0.15 } }
power_levels:
  balanced: [gpt-4o-mini]
"#;

const MODELS: [&str; 3] = ["gpt-4o-mini", "claude-sonnet", "gemini-flash"];
const REPLY: &str = "Hello! I am a mock model and this is my answer.";
/// "Be brief" and "Say hello": 2 words + 3 each.
const PROMPT: i64 = 10;
const TOOL_CALL_TOKENS: i64 = 7;

async fn app() -> (TestApp, String, String) {
    let app = TestApp::spawn_with_config(CONFIG).await;
    let (org, key) = app.funded_org("tokens", 1_000_000).await;
    (app, org, key)
}

pub(crate) async fn post(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn json_of(response: reqwest::Response, status: u16) -> Value {
    let got = response.status().as_u16();
    let text = response.text().await.unwrap();
    assert_eq!(got, status, "{text}");
    serde_json::from_str(&text).unwrap()
}

pub(crate) fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// The (type, data) of every event of a Responses stream.
pub(crate) fn events(text: &str) -> Vec<(String, Value)> {
    sse_data(text)
        .iter()
        .map(|d| {
            let v: Value = serde_json::from_str(d).unwrap();
            (v["type"].as_str().unwrap().to_owned(), v)
        })
        .collect()
}

pub(crate) async fn last_usage(app: &TestApp, org: &str) -> Value {
    app.usage(org).await[0].clone()
}

#[tokio::test]
async fn responses_answer_on_every_provider_kind_and_are_billed() {
    let (app, org, key) = app().await;
    let mut spent = 0;
    for model in MODELS {
        let body = json!({"model": model, "input": "Say hello", "instructions": "Be brief",
            "metadata": {"trace": "t1"}});
        let response = post(&app, &key, "/v1/responses", &body).await;
        assert_eq!(response.headers()["x-tollgate-model"], model);
        let object = json_of(response, 200).await;
        assert_eq!(object["object"], "response", "{object}");
        assert!(object["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(object["status"], "completed");
        assert_eq!(object["model"], model);
        assert_eq!(object["metadata"], json!({"trace": "t1"}));
        assert_eq!(output_text(&object), REPLY, "{model}");
        assert_eq!(object["usage"]["input_tokens"], PROMPT, "{model}");
        assert_eq!(object["usage"]["output_tokens"], CHAT_COMPLETION_TOKENS);
        let record = last_usage(&app, &org).await;
        assert_eq!(record["model"], model);
        assert_eq!(record["prompt_tokens"], PROMPT);
        spent += PROMPT + CHAT_COMPLETION_TOKENS;
    }
    assert_eq!(app.balance(&org).await, 1_000_000 - spent);
}

#[tokio::test]
async fn a_streamed_response_is_the_responses_event_sequence() {
    let (app, org, key) = app().await;
    for model in MODELS {
        let body = json!({"model": model, "input": "Say hello", "instructions": "Be brief", "stream": true});
        let response = post(&app, &key, "/v1/responses", &body).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let events = events(&response.text().await.unwrap());
        let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names[..4],
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added"
            ],
            "{model}"
        );
        assert_eq!(
            names[names.len() - 4..],
            [
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed"
            ]
        );
        let deltas: String = events
            .iter()
            .filter(|(n, _)| n == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap())
            .collect();
        assert_eq!(deltas, REPLY, "{model}");
        let completed = &events.last().unwrap().1["response"];
        assert_eq!(completed["usage"]["input_tokens"], PROMPT, "{model}");
        assert_eq!(completed["usage"]["output_tokens"], CHAT_COMPLETION_TOKENS);
        let record = last_usage(&app, &org).await;
        assert_eq!(record["model"], model);
        assert_eq!(record["stream"], true);
        assert_eq!(record["completion_tokens"], CHAT_COMPLETION_TOKENS);
    }
}

#[tokio::test]
async fn a_tool_call_and_its_output_continue_with_previous_response_id() {
    let (app, _org, key) = app().await;
    for model in MODELS {
        let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
        let first = json_of(
            post(
                &app,
                &key,
                "/v1/responses",
                &json!({"model": model, "input": "Weather in Paris?", "tools": tools}),
            )
            .await,
            200,
        )
        .await;
        let call = first["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap_or_else(|| panic!("{model}: {first}"))
            .clone();
        assert_eq!(call["name"], "get_weather");
        assert_eq!(
            serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
            json!({"city": "mock"})
        );
        assert_eq!(first["usage"]["output_tokens"], TOOL_CALL_TOKENS);
        let second = json_of(
            post(&app, &key, "/v1/responses", &json!({"model": model, "tools": tools,
                "previous_response_id": first["id"],
                "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})).await,
            200,
        )
        .await;
        assert_eq!(output_text(&second), REPLY, "{model}: {second}");
        assert_eq!(second["previous_response_id"], first["id"]);
        // The history was sent: the question, the call and its output
        // ("Weather in Paris?" 3 + 3, the call turn 0 + 3, "sunny" 1 + 3).
        assert!(
            second["usage"]["input_tokens"].as_i64().unwrap() > 6,
            "{second}"
        );
    }
}

#[tokio::test]
async fn a_stored_response_is_visible_only_to_its_organization() {
    let (app, _org, key) = app().await;
    let (_other_org, other_key) = app.funded_org("tokens", 1_000).await;
    let object = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "Say hello"}),
        )
        .await,
        200,
    )
    .await;
    let id = object["id"].as_str().unwrap();
    let path = format!("/v1/responses/{id}");
    // Stored once the call settles, just after the answer.
    let mut got = app.get_with_key(&key, &path).await;
    for _ in 0..50 {
        if got.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        got = app.get_with_key(&key, &path).await;
    }
    assert_eq!(json_of(got, 200).await, object);
    let hidden = json_of(app.get_with_key(&other_key, &path).await, 404).await;
    assert!(hidden["error"]["message"].as_str().unwrap().contains(id));
    let follow_up = post(
        &app,
        &other_key,
        "/v1/responses",
        &json!({"model": "gpt-4o-mini", "input": "more", "previous_response_id": id}),
    )
    .await;
    json_of(follow_up, 404).await;
    let gone = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&other_key)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status(), 404);
    let deleted = app
        .client
        .delete(app.url(&path))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        json_of(deleted, 200).await,
        json!({"id": id, "object": "response", "deleted": true})
    );
    json_of(app.get_with_key(&key, &path).await, 404).await;

    let unstored = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "x", "store": false}),
        )
        .await,
        200,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let path = format!("/v1/responses/{}", unstored["id"].as_str().unwrap());
    json_of(app.get_with_key(&key, &path).await, 404).await;
}

#[tokio::test]
async fn bad_responses_input_is_a_400_naming_the_field() {
    let (app, _org, key) = app().await;
    let error = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "x", "tools": [{"type": "web_search"}]}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("tools[0]"),
        "{error}"
    );
    let error = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": 3}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("input")
    );
}

#[tokio::test]
async fn structured_output_reaches_every_provider_kind() {
    let (app, _org, key) = app().await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"], "additionalProperties": false});
    for model in MODELS {
        let body = json!({"model": model, "input": "Extract", "text": {"format": {"type": "json_schema",
            "name": "person", "schema": schema, "strict": true}}});
        let object = json_of(post(&app, &key, "/v1/responses", &body).await, 200).await;
        let parsed: Value = serde_json::from_str(&output_text(&object))
            .unwrap_or_else(|e| panic!("{model}: {e}: {object}"));
        assert_eq!(parsed, json!({"name": "mock", "age": 1}), "{model}");
    }
    let recorded = app.mock.requests();
    let anthropic = recorded.iter().find(|r| r.path == "/v1/messages").unwrap();
    let sent = &anthropic.body;
    assert_eq!(sent["output_config"]["format"]["schema"], schema);
}

async fn google(app: &TestApp, key: &str, path: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-goog-api-key", key)
        .json(body)
        .send()
        .await
        .unwrap()
}

fn gemini_body() -> Value {
    json!({"systemInstruction": {"parts": [{"text": "Be brief"}]},
        "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]})
}

#[tokio::test]
async fn gemini_generate_content_answers_for_every_provider_kind() {
    let (app, org, key) = app().await;
    for model in MODELS {
        let path = format!("/v1beta/models/{model}:generateContent");
        let answer = json_of(google(&app, &key, &path, &gemini_body()).await, 200).await;
        let candidate = &answer["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(
            candidate["content"]["parts"][0]["text"], REPLY,
            "{model}: {answer}"
        );
        assert_eq!(candidate["finishReason"], "STOP");
        assert_eq!(
            answer["usageMetadata"]["promptTokenCount"], PROMPT,
            "{model}"
        );
        assert_eq!(
            answer["usageMetadata"]["candidatesTokenCount"],
            CHAT_COMPLETION_TOKENS
        );
        assert_eq!(last_usage(&app, &org).await["model"], model);

        let path = format!("/v1beta/models/{model}:streamGenerateContent?alt=sse");
        let response = google(&app, &key, &path, &gemini_body()).await;
        assert_eq!(response.status(), 200);
        let chunks: Vec<Value> = sse_data(&response.text().await.unwrap())
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        assert_gemini_stream(&chunks, model);
    }
}

/// A Gemini stream's chunks carry the whole answer and end with the
/// finish reason and the usage.
fn assert_gemini_stream(chunks: &[Value], model: &str) {
    let text: String = chunks
        .iter()
        .filter_map(|c| c["candidates"][0]["content"]["parts"][0]["text"].as_str())
        .collect();
    assert_eq!(text, REPLY, "{model}");
    let last = chunks.last().unwrap();
    assert_eq!(last["candidates"][0]["finishReason"], "STOP");
    assert_eq!(
        last["usageMetadata"]["totalTokenCount"],
        PROMPT + CHAT_COMPLETION_TOKENS
    );
}

#[tokio::test]
async fn a_gemini_stream_without_alt_sse_is_one_json_array() {
    let (app, _org, key) = app().await;
    for model in MODELS {
        let path = format!("/v1beta/models/{model}:streamGenerateContent");
        let response = google(&app, &key, &path, &gemini_body()).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let chunks: Vec<Value> = serde_json::from_str(&response.text().await.unwrap()).unwrap();
        assert_gemini_stream(&chunks, model);
    }
}

#[tokio::test]
async fn gemini_function_calling_count_tokens_and_embeddings() {
    let (app, org, key) = app().await;
    let mut body = gemini_body();
    body["tools"] = json!([{"functionDeclarations": [{"name": "get_weather",
        "parameters": {"type": "OBJECT", "properties": {"city": {"type": "STRING"}}, "required": ["city"]}}]}]);
    let answer = json_of(
        google(
            &app,
            &key,
            "/v1beta/models/claude-sonnet:generateContent",
            &body,
        )
        .await,
        200,
    )
    .await;
    let parts = answer["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap();
    let call = parts
        .iter()
        .find_map(|p| p.get("functionCall"))
        .unwrap_or_else(|| panic!("{answer}"));
    assert_eq!(
        call,
        &json!({"name": "get_weather", "args": {"city": "mock"}})
    );

    // The provider's own counter for Anthropic and Gemini models; the
    // estimate (about 4 bytes a token) for OpenAI-compatible ones.
    for (model, exact) in [
        ("claude-sonnet", true),
        ("gemini-flash", true),
        ("gpt-4o-mini", false),
    ] {
        let path = format!("/v1beta/models/{model}:countTokens");
        let counted = json_of(
            google(
                &app,
                &key,
                &path,
                &json!({"contents": gemini_body()["contents"]}),
            )
            .await,
            200,
        )
        .await;
        let total = counted["totalTokens"].as_i64().unwrap();
        if exact {
            assert_eq!(total, 5, "{model}");
        } else {
            assert!(total > 0, "{model}: {counted}");
        }
    }
    let before = app.usage(&org).await.len();
    let embedded = json_of(
        google(
            &app,
            &key,
            "/v1beta/models/gemini-embed:embedContent",
            &json!({"content": {"parts": [{"text": "hello world"}]}}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(embedded["embedding"]["values"].as_array().unwrap().len(), 8);
    let batch = json_of(
        google(&app, &key, "/v1beta/models/gemini-embed:batchEmbedContents",
            &json!({"requests": [{"content": {"parts": [{"text": "a"}]}}, {"content": {"parts": [{"text": "b"}]}}]})).await,
        200,
    )
    .await;
    assert_eq!(batch["embeddings"].as_array().unwrap().len(), 2);
    assert_eq!(
        app.usage(&org).await.len(),
        before + 2,
        "counting is free, embedding is billed"
    );
}

#[tokio::test]
async fn gemini_paths_take_the_key_three_ways_and_answer_googles_errors() {
    let (app, _org, key) = app().await;
    let listed = app
        .client
        .get(app.url(&format!("/v1beta/models?key={key}")))
        .send()
        .await
        .unwrap();
    let listed = json_of(listed, 200).await;
    let names: Vec<&str> = listed["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"models/gemini-flash") && names.contains(&"models/claude-sonnet"),
        "{listed}"
    );
    let bearer = app.get_with_key(&key, "/v1beta/models/gpt-4o-mini").await;
    assert_eq!(json_of(bearer, 200).await["name"], "models/gpt-4o-mini");

    let no_key = app
        .client
        .post(app.url("/v1beta/models/gemini-flash:generateContent"))
        .json(&gemini_body())
        .send()
        .await
        .unwrap();
    let error = json_of(no_key, 401).await;
    assert_eq!(error["error"]["status"], "UNAUTHENTICATED");
    assert_eq!(error["error"]["code"], 401);
    let unknown = json_of(
        google(
            &app,
            &key,
            "/v1beta/models/no-such-model:generateContent",
            &gemini_body(),
        )
        .await,
        404,
    )
    .await;
    assert_eq!(unknown["error"]["status"], "NOT_FOUND");
    let bad = json_of(
        google(
            &app,
            &key,
            "/v1beta/models/gemini-flash:generateContent",
            &json!({"contents": []}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(bad["error"]["status"], "INVALID_ARGUMENT");
    assert!(
        bad["error"]["message"]
            .as_str()
            .unwrap()
            .contains("contents")
    );
    let path = json_of(google(&app, &key, "/v1beta/files", &json!({})).await, 404).await;
    assert_eq!(path["error"]["status"], "NOT_FOUND");
}

#[tokio::test]
async fn anthropic_count_tokens_and_unknown_messages_paths() {
    let (app, org, key) = app().await;
    let body = json!({"model": "claude-sonnet", "system": "Be brief",
        "messages": [{"role": "user", "content": "Say hello"}]});
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let counted = app
        .client
        .post(app.url("/v1/messages/count_tokens"))
        .header("x-api-key", &key)
        .header("traceparent", traceparent)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(counted, 200).await, json!({"input_tokens": PROMPT}));
    // The provider's counter is called in the client's trace.
    let requests = app.mock.requests();
    let count = requests.last().unwrap();
    assert!(count.path.ends_with("/count_tokens"), "{}", count.path);
    assert_eq!(count.header("traceparent"), Some(traceparent));
    let mut estimate = body.clone();
    estimate["model"] = json!("gpt-4o-mini");
    let counted = json_of(
        post(&app, &key, "/v1/messages/count_tokens", &estimate).await,
        200,
    )
    .await;
    assert!(counted["input_tokens"].as_i64().unwrap() > 0);
    assert!(app.usage(&org).await.is_empty(), "counting is free");
    let missing = json_of(
        post(
            &app,
            &key,
            "/v1/messages/count_tokens",
            &json!({"model": "claude-sonnet"}),
        )
        .await,
        400,
    )
    .await;
    assert_eq!(missing["type"], "error");
    let unknown = json_of(
        post(&app, &key, "/v1/messages/batches", &json!({})).await,
        404,
    )
    .await;
    assert_eq!(unknown["type"], "error");
    assert_eq!(unknown["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn one_model_by_id() {
    let (app, _org, key) = app().await;
    let model = json_of(
        app.get_with_key(&key, "/v1/models/claude-sonnet").await,
        200,
    )
    .await;
    assert_eq!(
        model,
        json!({"id": "claude-sonnet", "object": "model", "created": 0, "owned_by": "anthropic"})
    );
    let missing = json_of(app.get_with_key(&key, "/v1/models/nope").await, 404).await;
    assert_eq!(missing["error"]["code"], "model_not_found");
}

/// Micro-dollars for one call at the catalog's prices (USD per Mtok),
/// rounded up once, as billing does.
fn micros(uncached: i64, read: i64, written: i64, output: i64) -> i64 {
    let scaled = uncached * 3_000_000 + read * 300_000 + written * 3_750_000 + output * 15_000_000;
    (scaled + 999_999) / 1_000_000
}

#[tokio::test]
async fn prompt_cache_writes_and_reads_are_billed_at_their_own_prices() {
    let app = TestApp::spawn_with_config(CONFIG).await;
    let (org, key) = app.funded_org("usd", 100_000_000).await;
    let long = "policy ".repeat(1_000);
    let body = json!({"model": "claude-sonnet", "max_tokens": 100,
        "system": [{"type": "text", "text": long, "cache_control": {"type": "ephemeral"}}],
        "messages": [{"role": "user", "content": "Say hello"}]});
    // Uncached: the system's framing (3) and the message (2 + 3).
    let uncached = 8;
    let mut balance = 100_000_000;
    for (read, written) in [(0, 1_000), (1_000, 0)] {
        let response = app
            .client
            .post(app.url("/v1/messages"))
            .header("x-api-key", &key)
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        let cost: i64 = response.headers()["x-tollgate-cost"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let message = json_of(response, 200).await;
        assert_eq!(
            message["usage"]["cache_creation_input_tokens"], written,
            "{message}"
        );
        assert_eq!(message["usage"]["cache_read_input_tokens"], read);
        assert_eq!(message["usage"]["input_tokens"], uncached);
        let expected = micros(uncached, read, written, CHAT_COMPLETION_TOKENS);
        assert_eq!(cost, expected);
        let record = last_usage(&app, &org).await;
        assert_eq!(record["cost"], expected);
        assert_eq!(record["cached_tokens"], read);
        assert_eq!(record["cache_write_tokens"], written);
        assert_eq!(record["prompt_tokens"], uncached + read + written);
        balance -= expected;
        assert_eq!(app.balance(&org).await, balance);
    }
    // The first call wrote 1 000 tokens at 3.75 USD/Mtok, the second read them at 0.30.
    assert_eq!(micros(8, 0, 1_000, 11), 3_939);
    assert_eq!(micros(8, 1_000, 0, 11), 489);
    let sent = app.mock.requests()[0].body.clone();
    assert_eq!(
        sent["system"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}
