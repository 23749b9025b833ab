//! OpenAI Responses served natively where the provider speaks Responses
//! (the `openai` provider: the mock records `/v1/responses`) and
//! translated everywhere else (an OpenAI-compatible provider, Anthropic,
//! Gemini): billing from the provider's usage, fallbacks across the two
//! paths, `previous_response_id` across them, and the stored input items.

use super::surfaces::{events, json_of, last_usage, output_text, post};
use serde_json::json;
use tollgate_mock_provider::Fault;
use tollgate_tests::{CHAT_COMPLETION_TOKENS, TestApp};

const CONFIG: &str = r#"
providers:
  openai:    { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-openai-secret" }
  deepseek:  { kind: openai, base_url: "{MOCK}", api_key: "sk-deepseek-secret" }
  anthropic: { base_url: "{MOCK_ROOT}", api_key: "sk-ant-platform-secret" }
  gemini:    { base_url: "{MOCK_ROOT}", api_key: "AIza-platform-secret" }
models:
  - { id: gpt-4o-mini, provider: openai, upstream: gpt-4o-mini-2024-07-18, max_output_tokens: 1000,
      price: { input_per_mtok: 150, output_per_mtok: 600, cached_input_per_mtok: 15 } }
  - { id: deepseek-chat, provider: deepseek, max_output_tokens: 1000,
      price: { input_per_mtok: 1, output_per_mtok: 2 } }
  - { id: claude-sonnet, provider: anthropic, upstream: claude-sonnet-4-6, max_output_tokens: 64000,
      price: { input_per_mtok: 3, output_per_mtok: 15 } }
  - { id: gemini-flash, provider: gemini, upstream: gemini-2.5-flash, max_output_tokens: 65536,
      price: { input_per_mtok: 0.30, output_per_mtok: 2.50 } }
power_levels:
  balanced: [gpt-4o-mini]
"#;

const REPLY: &str = "Hello! I am a mock model and this is my answer.";
/// "Say hello" (2 + 3) and the instructions "Be brief" (2 + 3).
const PROMPT: i64 = 10;
/// The instructions, cached by the mock from the second call with a
/// `prompt_cache_key` on.
const CACHED: i64 = 5;

async fn app() -> (TestApp, String, String) {
    let app = TestApp::spawn_with_config(CONFIG).await;
    let (org, key) = app.funded_org("usd", 100_000_000).await;
    (app, org, key)
}

/// The paths the mock served, in order.
fn served(app: &TestApp) -> Vec<String> {
    app.mock.requests().into_iter().map(|r| r.path).collect()
}

fn cost_header(response: &reqwest::Response) -> i64 {
    response.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn an_openai_model_is_served_natively_and_billed_from_the_providers_usage() {
    let (app, org, key) = app().await;
    let body = json!({"model": "gpt-4o-mini", "input": "Say hello", "instructions": "Be brief",
        "prompt_cache_key": "tenant-1", "metadata": {"k": "v"}});
    // 150 and 600 USD/Mtok: 150 and 600 micro-dollars a token, 15 cached.
    let first_cost = PROMPT * 150 + CHAT_COMPLETION_TOKENS * 600;
    let second_cost = (PROMPT - CACHED) * 150 + CACHED * 15 + CHAT_COMPLETION_TOKENS * 600;
    let mut balance = 100_000_000;
    for (cached, cost) in [(0, first_cost), (CACHED, second_cost)] {
        let response = post(&app, &key, "/v1/responses", &body).await;
        assert_eq!(response.headers()["x-tollgate-provider"], "openai");
        assert_eq!(cost_header(&response), cost);
        let object = json_of(response, 200).await;
        let id = object["id"].as_str().unwrap();
        assert!(
            id.starts_with("resp_") && !id.starts_with("resp_mock"),
            "{object}"
        );
        assert_eq!(object["model"], "gpt-4o-mini");
        assert_eq!(object["store"], true);
        assert_eq!(object["metadata"], json!({"k": "v"}));
        assert_eq!(output_text(&object), REPLY);
        assert_eq!(object["usage"]["input_tokens"], PROMPT);
        assert_eq!(
            object["usage"]["input_tokens_details"]["cached_tokens"],
            cached
        );
        let record = last_usage(&app, &org).await;
        assert_eq!(record["cost"], cost);
        assert_eq!(record["prompt_tokens"], PROMPT);
        assert_eq!(record["cached_tokens"], cached);
        assert_eq!(record["completion_tokens"], CHAT_COMPLETION_TOKENS);
        balance -= cost;
        assert_eq!(app.balance(&org).await, balance);
    }
    assert_eq!(served(&app), ["/v1/responses", "/v1/responses"]);
    let sent = &app.mock.requests()[0].body;
    assert_eq!(sent["model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(sent["store"], false);
    assert_eq!(sent["prompt_cache_key"], "tenant-1");
    assert_eq!(
        sent["input"],
        json!([{"role": "user", "content": "Say hello"}])
    );
}

#[tokio::test]
async fn a_native_stream_relays_the_providers_events_and_is_stored() {
    let (app, org, key) = app().await;
    let body = json!({"model": "gpt-4o-mini", "input": "Say hello", "instructions": "Be brief",
        "stream": true});
    let response = post(&app, &key, "/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = events(&response.text().await.unwrap());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "response.created");
    assert_eq!(*names.last().unwrap(), "response.completed");
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(deltas, REPLY);
    let sequence: Vec<u64> = events
        .iter()
        .map(|(_, d)| d["sequence_number"].as_u64().unwrap())
        .collect();
    assert_eq!(sequence, (0..events.len() as u64).collect::<Vec<_>>());
    let created = &events[0].1["response"];
    let completed = &events.last().unwrap().1["response"];
    assert_eq!(created["id"], completed["id"]);
    assert_eq!(completed["model"], "gpt-4o-mini");
    assert_eq!(completed["usage"]["input_tokens"], PROMPT);
    assert_eq!(served(&app), ["/v1/responses"]);
    assert_eq!(app.mock.requests()[0].body["stream"], true);
    let record = last_usage(&app, &org).await;
    assert_eq!(record["stream"], true);
    assert_eq!(record["cost"], PROMPT * 150 + CHAT_COMPLETION_TOKENS * 600);
    // Stored before the last event went out.
    let path = format!("/v1/responses/{}", completed["id"].as_str().unwrap());
    assert_eq!(
        json_of(app.get_with_key(&key, &path).await, 200).await,
        *completed
    );
}

#[tokio::test]
async fn other_provider_kinds_and_openai_compatible_apis_get_the_translation() {
    let (app, _org, key) = app().await;
    for (model, path) in [
        ("deepseek-chat", "/v1/chat/completions"),
        ("claude-sonnet", "/v1/messages"),
        (
            "gemini-flash",
            "/v1beta/models/gemini-2.5-flash:generateContent",
        ),
    ] {
        let body = json!({"model": model, "input": "Say hello", "instructions": "Be brief"});
        let object = json_of(post(&app, &key, "/v1/responses", &body).await, 200).await;
        assert_eq!(output_text(&object), REPLY, "{model}");
        assert_eq!(object["usage"]["input_tokens"], PROMPT, "{model}");
        assert_eq!(served(&app).last().unwrap(), path);
    }
}

#[tokio::test]
async fn a_failing_native_candidate_falls_back_to_a_translated_one() {
    let (app, _org, key) = app().await;
    for stream in [false, true] {
        app.mock.push_fault(Fault::status(500));
        let before = served(&app).len();
        let body = json!({"model": "gpt-4o-mini", "models": ["gpt-4o-mini", "claude-sonnet"],
            "input": "Say hello", "stream": stream});
        let response = post(&app, &key, "/v1/responses", &body).await;
        assert_eq!(response.headers()["x-tollgate-model"], "claude-sonnet");
        assert_eq!(response.headers()["x-tollgate-attempts"], "2");
        let text = if stream {
            assert_eq!(response.status(), 200);
            let events = events(&response.text().await.unwrap());
            let completed = &events.last().unwrap().1;
            assert_eq!(completed["type"], "response.completed");
            output_text(&completed["response"])
        } else {
            output_text(&json_of(response, 200).await)
        };
        assert_eq!(text, REPLY);
        assert_eq!(served(&app)[before..], ["/v1/responses", "/v1/messages"]);
    }
}

#[tokio::test]
async fn previous_response_id_works_across_native_and_translated_calls() {
    let (app, _org, key) = app().await;
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    // Native first: the provider's function call is kept by Tollgate…
    let first = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "Weather in Paris?", "tools": tools}),
        )
        .await,
        200,
    )
    .await;
    let call = first["output"][0].clone();
    assert_eq!(call["type"], "function_call", "{first}");
    // …and continued on Anthropic, translated, with the whole history.
    let second = json_of(
        post(&app, &key, "/v1/responses", &json!({"model": "claude-sonnet", "tools": tools,
            "previous_response_id": first["id"],
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}]})).await,
        200,
    )
    .await;
    assert_eq!(output_text(&second), REPLY, "{second}");
    assert_eq!(second["previous_response_id"], first["id"]);
    let anthropic = app.mock.requests().pop().unwrap().body;
    let messages = anthropic["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 3, "{anthropic}");
    assert_eq!(messages[1]["content"][0]["type"], "tool_use");
    assert_eq!(messages[1]["content"][0]["id"], call["call_id"]);
    assert_eq!(messages[2]["content"][0]["type"], "tool_result");

    // Translated, then native: the history goes in `input`, never as a
    // `previous_response_id` the provider does not know.
    let third = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini",
            "previous_response_id": second["id"], "input": "Thanks"}),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(output_text(&third), REPLY, "{third}");
    let native = app.mock.requests().pop().unwrap();
    assert_eq!(native.path, "/v1/responses");
    assert!(native.body.get("previous_response_id").is_none());
    let input = native.body["input"].as_array().unwrap();
    assert_eq!(
        input[0],
        json!({"role": "user", "content": "Weather in Paris?"})
    );
    assert_eq!(input[1]["type"], "function_call");
    assert_eq!(
        input[2],
        json!({"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"})
    );
    assert_eq!(input[3], json!({"role": "assistant", "content": REPLY}));
    assert_eq!(input[4], json!({"role": "user", "content": "Thanks"}));
}

#[tokio::test]
async fn input_items_are_listed_in_openais_shape_for_their_organization_only() {
    let (app, _org, key) = app().await;
    let (_other, other_key) = app.funded_org("usd", 1_000_000).await;
    let input = json!([
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "two"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
    ]);
    let object = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": input}),
        )
        .await,
        200,
    )
    .await;
    let path = format!(
        "/v1/responses/{}/input_items",
        object["id"].as_str().unwrap()
    );
    let all = json_of(app.get_with_key(&key, &path).await, 200).await;
    assert_eq!(all["object"], "list");
    assert_eq!(all["has_more"], false);
    let data = all["data"].as_array().unwrap();
    // Newest first by default, as OpenAI lists them.
    let texts: Vec<&str> = data
        .iter()
        .map(|i| i["content"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["three", "two", "one"]);
    assert_eq!(data[0]["type"], "message");
    assert_eq!(data[1]["content"][0]["type"], "output_text");
    assert_eq!(all["first_id"], data[0]["id"]);
    assert_eq!(all["last_id"], data[2]["id"]);

    let page = json_of(
        app.get_with_key(&key, &format!("{path}?order=asc&limit=2"))
            .await,
        200,
    )
    .await;
    assert_eq!(page["has_more"], true);
    assert_eq!(page["data"][0]["content"][0]["text"], "one");
    let after = page["last_id"].as_str().unwrap();
    let rest = json_of(
        app.get_with_key(&key, &format!("{path}?order=asc&limit=2&after={after}"))
            .await,
        200,
    )
    .await;
    assert_eq!(rest["data"].as_array().unwrap().len(), 1);
    assert_eq!(rest["data"][0]["content"][0]["text"], "three");
    assert_eq!(rest["has_more"], false);

    let bad = json_of(
        app.get_with_key(&key, &format!("{path}?limit=0")).await,
        400,
    )
    .await;
    assert!(bad["error"]["message"].as_str().unwrap().contains("limit"));
    json_of(app.get_with_key(&other_key, &path).await, 404).await;
}

#[tokio::test]
async fn background_responses_are_refused_naming_the_parameter() {
    let (app, _org, key) = app().await;
    let error = json_of(
        post(
            &app,
            &key,
            "/v1/responses",
            &json!({"model": "gpt-4o-mini", "input": "x", "background": true}),
        )
        .await,
        400,
    )
    .await;
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("background"),
        "{error}"
    );
    assert!(app.mock.requests().is_empty());
}

#[tokio::test]
async fn tool_calls_of_an_openai_compatible_model_become_function_call_items() {
    let (app, _org, key) = app().await;
    let tools = json!([{"type": "function", "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let body = json!({"model": "deepseek-chat", "input": "Weather in Paris?", "tools": tools});
    let object = json_of(post(&app, &key, "/v1/responses", &body).await, 200).await;
    let call = &object["output"][0];
    assert_eq!(call["type"], "function_call", "{object}");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"mock"}"#);
    assert_eq!(object["usage"]["output_tokens"], 7);
    let sent = app.mock.requests().pop().unwrap();
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["tools"][0]["function"]["name"], "get_weather");

    let mut body = body;
    body["stream"] = json!(true);
    let response = post(&app, &key, "/v1/responses", &body).await;
    let events = events(&response.text().await.unwrap());
    let arguments: String = events
        .iter()
        .filter(|(n, _)| n == "response.function_call_arguments.delta")
        .map(|(_, d)| d["delta"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"city":"mock"}"#);
    let done = &events.last().unwrap().1["response"];
    assert_eq!(done["output"][0]["type"], "function_call", "{done}");
    assert!(
        done["output"][0]["call_id"]
            .as_str()
            .unwrap()
            .starts_with("call_")
    );
}
