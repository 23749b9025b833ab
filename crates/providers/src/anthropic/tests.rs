//! The Anthropic adapter on the official documentation's examples
//! (`fixtures/anthropic/`).

use super::inbound::{InboundOptions, SseEncoder, message_from_completion, to_chat_request};
use super::wire::{MessageResponse, MessagesRequest};
use super::*;
use crate::types::ChatRequest;
use serde_json::json;

const STREAM_TEXT: &str = include_str!("../../fixtures/anthropic/stream_text.sse");
const STREAM_TOOL_USE: &str = include_str!("../../fixtures/anthropic/stream_tool_use.sse");
const STREAM_THINKING: &str = include_str!("../../fixtures/anthropic/stream_thinking.sse");
const STREAM_ERROR: &str = include_str!("../../fixtures/anthropic/stream_error.sse");
const MESSAGE: &str = include_str!("../../fixtures/anthropic/message.json");
const MESSAGE_TOOL_USE: &str = include_str!("../../fixtures/anthropic/message_tool_use.json");

/// The `data` of each event of an SSE text.
fn sse_datas(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|l| l.strip_prefix("data: ").or_else(|| l.strip_prefix("data:")))
                .map(str::to_owned)
        })
        .collect()
}

/// Runs a fixture through the translator: the OpenAI chunks (as JSON),
/// whether `Done` came, and the first error.
fn translate(fixture: &str) -> (Vec<Value>, Option<TokenUsage>, bool, Option<ProviderError>) {
    let mut t = StreamTranslator::new("claude-test", Some("sk-ant-secret".into()));
    let mut out = Vec::new();
    for data in sse_datas(fixture) {
        t.translate(&data, &mut out);
    }
    t.end(&mut out);
    let (mut chunks, mut usage, mut done, mut error) = (Vec::new(), None, false, None);
    for item in out {
        match item {
            Ok(StreamEvent::Chunk { data, usage: u, .. }) => {
                if u.is_some() {
                    usage = u;
                }
                chunks.push(serde_json::from_slice(&data).unwrap());
            }
            Ok(StreamEvent::Done) => done = true,
            Err(e) => {
                error.get_or_insert(e);
            }
        }
    }
    (chunks, usage, done, error)
}

fn joined(chunks: &[Value], field: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][field].as_str())
        .collect()
}

fn request(body: Value) -> ChatRequest {
    serde_json::from_value(body).unwrap()
}

fn build(body: Value) -> Result<MessagesRequest, ProviderError> {
    let req = request(body);
    MessagesRequest::try_from(Outbound {
        request: &req,
        model: "claude-sonnet-4-5",
        default_max_tokens: 64_000,
        stream: false,
    })
}

// ------------------------------------------------------ request building

#[test]
fn the_model_goes_in_the_body_never_the_url() {
    // `endpoint` takes no model: a client's name cannot reach the path.
    assert_eq!(
        endpoint("http://127.0.0.1:9"),
        "http://127.0.0.1:9/v1/messages"
    );
    assert_eq!(
        endpoint("http://127.0.0.1:9/v1"),
        "http://127.0.0.1:9/v1/messages"
    );
}

#[test]
fn request_moves_system_to_the_top_and_defaults_max_tokens() {
    let out = build(json!({
        "model": "claude", "temperature": 1.7, "stop": "END", "user": "u-1",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": "Hello"}
        ]
    }))
    .unwrap();
    let body = serde_json::to_value(&out).unwrap();
    assert_eq!(body["model"], "claude-sonnet-4-5");
    assert_eq!(body["max_tokens"], 64_000);
    assert_eq!(body["system"], "Be brief.\n\nUse metric units.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "Hello"}]}])
    );
    assert_eq!(body["temperature"], 1.0, "clamped to Anthropic's range");
    assert_eq!(body["stop_sequences"], json!(["END"]));
    assert_eq!(body["metadata"], json!({"user_id": "u-1"}));
    assert!(body.get("stream").is_none());
}

#[test]
fn request_converts_images_tools_and_tool_results() {
    let out = build(json!({
        "model": "claude", "max_completion_tokens": 1024,
        "tools": [{"type": "function", "function": {
            "name": "get_weather", "description": "Get the current weather in a given location",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in these images, and the weather?"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/a.jpg"}}
            ]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"location\": \"San Francisco, CA\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"role": "user", "content": "Thanks"}
        ]
    }))
    .unwrap();
    let body = serde_json::to_value(&out).unwrap();
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(
        body["tools"],
        json!([{"name": "get_weather", "description": "Get the current weather in a given location",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}])
    );
    assert_eq!(
        body["tool_choice"],
        json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true})
    );
    let messages = body["messages"].as_array().unwrap();
    assert_eq!(
        messages.len(),
        3,
        "tool result and the next user text share a turn"
    );
    assert_eq!(
        messages[0]["content"][1],
        json!({"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}})
    );
    assert_eq!(
        messages[0]["content"][2],
        json!({"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/a.jpg"}})
    );
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather", "input": {"location": "San Francisco, CA"}}]})
    );
    assert_eq!(
        messages[2]["content"],
        json!([
            {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
            {"type": "text", "text": "Thanks"}
        ])
    );
}

#[test]
fn request_maps_tool_choice_words_and_reasoning_effort() {
    let body = |choice: Value| {
        let out = build(
            json!({"model": "c", "tool_choice": choice, "reasoning_effort": "medium",
            "temperature": 0.2, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        serde_json::to_value(&out).unwrap()
    };
    assert_eq!(
        body(json!("required"))["tool_choice"],
        json!({"type": "any"})
    );
    assert_eq!(body(json!("none"))["tool_choice"], json!({"type": "none"}));
    let auto = body(json!("auto"));
    assert_eq!(auto["tool_choice"], json!({"type": "auto"}));
    assert_eq!(
        auto["thinking"],
        json!({"type": "enabled", "budget_tokens": 4096})
    );
    assert!(
        auto.get("temperature").is_none(),
        "thinking runs at the default temperature"
    );
}

#[test]
fn request_refusals_name_the_field() {
    let err = build(
        json!({"model": "c", "messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}]}]}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("messages[0].content[0]"), "{err}");
    assert!(!err.is_retryable());
    let err = build(json!({"model": "c", "messages": [{"role": "assistant", "content": null,
        "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "not json"}}]}]}))
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("messages[0].tool_calls[0].function.arguments"),
        "{err}"
    );
}

// ------------------------------------------------------ plain answers

#[test]
fn plain_message_becomes_a_chat_completion() {
    let message: MessageResponse = serde_json::from_str(MESSAGE).unwrap();
    let (completion, usage) = completion_from_message(&message, 1);
    assert_eq!(completion["id"], "msg_013Zva2CMHLNnXjNJJKqJ2EF");
    assert_eq!(completion["object"], "chat.completion");
    assert_eq!(
        completion["choices"][0]["message"]["content"],
        "Hi! My name is Claude."
    );
    assert_eq!(completion["choices"][0]["finish_reason"], "stop");
    assert_eq!(completion["usage"]["prompt_tokens"], 2095);
    assert_eq!(completion["usage"]["completion_tokens"], 503);
    assert_eq!(completion["usage"]["total_tokens"], 2598);
    assert_eq!(
        usage,
        TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 2095,
            completion_tokens: 503,
            cached_prompt_tokens: 0
        }
    );
}

#[test]
fn tool_use_message_becomes_tool_calls() {
    let message: MessageResponse = serde_json::from_str(MESSAGE_TOOL_USE).unwrap();
    let (completion, _) = completion_from_message(&message, 1);
    let choice = &completion["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["message"]["content"],
        "I'll check the current weather."
    );
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
}

#[test]
fn cache_reads_and_writes_count_as_prompt_tokens() {
    let usage: wire::Usage = serde_json::from_value(json!({
        "input_tokens": 25, "cache_creation_input_tokens": 300, "cache_read_input_tokens": 1200, "output_tokens": 15
    }))
    .unwrap();
    assert_eq!(
        token_usage(&usage),
        TokenUsage {
            cache_write_tokens: 300,
            prompt_tokens: 1525,
            completion_tokens: 15,
            cached_prompt_tokens: 1200
        }
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    assert_eq!(finish_reason(Some("end_turn")), "stop");
    assert_eq!(finish_reason(Some("stop_sequence")), "stop");
    assert_eq!(finish_reason(Some("max_tokens")), "length");
    assert_eq!(finish_reason(Some("tool_use")), "tool_calls");
    assert_eq!(finish_reason(Some("refusal")), "content_filter");
    assert_eq!(finish_reason(Some("pause_turn")), "stop");
}

#[test]
fn endpoint_accepts_a_base_with_or_without_v1() {
    assert_eq!(
        endpoint("https://api.anthropic.com"),
        "https://api.anthropic.com/v1/messages"
    );
    assert_eq!(
        endpoint("http://127.0.0.1:9/v1"),
        "http://127.0.0.1:9/v1/messages"
    );
}

// ------------------------------------------------------ stream events

#[test]
fn text_stream_translates_every_event_kind() {
    let (chunks, usage, done, error) = translate(STREAM_TEXT);
    assert!(error.is_none() && done);
    // message_start → role chunk; ping and block start/stop → nothing.
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({"role": "assistant", "content": ""})
    );
    assert_eq!(chunks[0]["id"], "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    assert_eq!(chunks[0]["object"], "chat.completion.chunk");
    assert_eq!(joined(&chunks, "content"), "Hello!");
    // message_delta → finish chunk; message_stop → usage chunk and Done.
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[4]["choices"], json!([]));
    assert_eq!(chunks[4]["usage"]["prompt_tokens"], 25);
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 15);
    assert_eq!(chunks.len(), 5);
    assert_eq!(
        usage,
        Some(TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: 25,
            completion_tokens: 15,
            cached_prompt_tokens: 0
        })
    );
}

#[test]
fn tool_use_stream_becomes_tool_call_deltas() {
    let (chunks, usage, done, _) = translate(STREAM_TOOL_USE);
    assert!(done);
    assert_eq!(
        joined(&chunks, "content"),
        "Okay, let's check the weather for San Francisco, CA:"
    );
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(calls[0]["id"], "toolu_01T1x1fJ34qAmk2tNTrN7Up6");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert!(calls.iter().all(|c| c["index"] == 0));
    let args: String = calls
        .iter()
        .filter_map(|c| c["function"]["arguments"].as_str())
        .collect();
    let args: Value = serde_json::from_str(&args).unwrap();
    assert_eq!(
        args,
        json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
    );
    let finish: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| f.is_string())
        .collect();
    assert_eq!(finish, [&json!("tool_calls")]);
    assert_eq!(usage.unwrap().prompt_tokens, 472);
    assert_eq!(usage.unwrap().completion_tokens, 89);
}

#[test]
fn thinking_stream_becomes_reasoning_content() {
    let (chunks, _, done, _) = translate(STREAM_THINKING);
    assert!(done);
    assert!(joined(&chunks, "reasoning_content").ends_with("10,800 + 1,350 + 81 = 12,231"));
    assert_eq!(joined(&chunks, "content"), "27 * 453 = 12,231");
}

#[test]
fn error_event_is_a_retryable_failure() {
    let (chunks, _, done, error) = translate(STREAM_ERROR);
    assert!(chunks.is_empty() && !done);
    let error = error.unwrap();
    assert!(error.is_retryable());
    assert!(matches!(error, ProviderError::Status { status: 529, .. }));
    assert!(error.to_string().contains("Overloaded"));
}

#[test]
fn a_stream_without_message_stop_has_no_done() {
    let cut: String = STREAM_TEXT
        .split("event: message_delta")
        .next()
        .unwrap()
        .to_owned();
    let (chunks, usage, done, _) = translate(&cut);
    assert_eq!(joined(&chunks, "content"), "Hello!");
    assert!(usage.is_none() && !done);
}

#[test]
fn errors_in_a_stream_are_scrubbed_of_the_key() {
    let (_, _, _, error) = translate(
        r#"data: {"type":"error","error":{"type":"authentication_error","message":"bad key sk-ant-secret"}}"#,
    );
    let text = error.unwrap().to_string();
    assert!(
        !text.contains("sk-ant-secret") && text.contains("*****"),
        "{text}"
    );
}

// ------------------------------------------------------ /v1/messages inbound

#[test]
fn inbound_request_becomes_a_chat_request() {
    let req: MessagesRequest = serde_json::from_value(json!({
        "model": "gpt-4o-mini", "max_tokens": 1024, "system": "Be brief.",
        "stop_sequences": ["END"], "temperature": 0.5, "top_k": 5,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
        "tools": [{"name": "get_weather", "description": "Get the weather",
            "input_schema": {"type": "object", "properties": {"location": {"type": "string"}}}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "messages": [
            {"role": "user", "content": "What is the weather like in San Francisco?"},
            {"role": "assistant", "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA"}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}
        ]
    }))
    .unwrap();
    let chat = to_chat_request(req, InboundOptions::default()).unwrap();
    let body = serde_json::to_value(&chat).unwrap();
    assert_eq!(body["max_tokens"], 1024);
    assert_eq!(body["stop"], json!(["END"]));
    assert_eq!(body["tool_choice"], "required");
    assert_eq!(body["parallel_tool_calls"], false);
    assert!(
        body.get("thinking").is_none() && body.get("top_k").is_none(),
        "dropped for OpenAI-kind models"
    );
    assert_eq!(
        body["tools"][0]["function"]["parameters"]["properties"]["location"]["type"],
        "string"
    );
    let m = body["messages"].as_array().unwrap();
    assert_eq!(m[0], json!({"role": "system", "content": "Be brief."}));
    assert_eq!(
        m[2]["tool_calls"][0]["function"]["arguments"],
        "{\"location\":\"San Francisco, CA\"}"
    );
    assert_eq!(m[2]["content"], "Let me check.");
    assert_eq!(
        m[3],
        json!({"role": "tool", "content": "15 degrees", "tool_call_id": "toolu_01A09q90qw90lq917835lq9"})
    );
    assert_eq!(
        m[4]["content"][0]["image_url"]["url"],
        "data:image/png;base64,iVBORw0KGgo="
    );
    chat.validate().unwrap();
}

#[test]
fn completion_becomes_an_anthropic_message() {
    let completion = json!({"id": "chatcmpl-1", "object": "chat.completion", "model": "gpt-4o-mini",
        "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": "Sure.",
            "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]});
    let usage = TokenUsage {
        prompt_tokens: 10,
        completion_tokens: 4,
        cached_prompt_tokens: 3,
        cache_write_tokens: 0,
    };
    let message = message_from_completion(&completion, "my-model", &usage);
    assert_eq!(message["type"], "message");
    assert_eq!(message["id"], "msg_chatcmpl-1");
    assert_eq!(message["model"], "my-model");
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["content"][0],
        json!({"type": "text", "text": "Sure."})
    );
    assert_eq!(
        message["content"][1],
        json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {"a": 1}})
    );
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3, "output_tokens": 4})
    );
}

#[test]
fn sse_encoder_writes_the_anthropic_event_sequence() {
    let mut enc = SseEncoder::new("my-model");
    let mut out = Vec::new();
    for chunk in [
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "Hel"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"content": "lo"}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "f", "arguments": ""}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": "{\"a\":1}"}}]}}]}),
        json!({"id": "c1", "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": 5}}),
    ] {
        out.extend(enc.chunk(chunk.to_string().as_bytes()));
    }
    out.extend(enc.finish(None));
    let text: String = out
        .iter()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    let names: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(
        names,
        [
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    let datas: Vec<Value> = sse_datas(&text)
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(datas[0]["message"]["id"], "msg_c1");
    assert_eq!(
        datas[2]["delta"],
        json!({"type": "text_delta", "text": "Hel"})
    );
    assert_eq!(
        datas[5]["content_block"],
        json!({"type": "tool_use", "id": "call_1", "name": "f", "input": {}})
    );
    assert_eq!(
        datas[6]["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"a\":1}"})
    );
    assert_eq!(datas[8]["delta"]["stop_reason"], "tool_use");
    assert_eq!(datas[8]["usage"]["input_tokens"], 9);
    assert_eq!(datas[8]["usage"]["output_tokens"], 5);
}

#[test]
fn cache_control_on_tools_survives_the_messages_round_trip() {
    let inbound: MessagesRequest = serde_json::from_value(json!({
        "model": "claude", "max_tokens": 10,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"name": "f", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}}]
    }))
    .unwrap();
    let chat = to_chat_request(inbound, InboundOptions::default()).unwrap();
    let out = MessagesRequest::try_from(Outbound {
        request: &chat,
        model: "claude-sonnet-4-5",
        default_max_tokens: 100,
        stream: false,
    })
    .unwrap();
    assert_eq!(
        out.tools.unwrap()[0]["cache_control"],
        json!({"type": "ephemeral"})
    );
}

#[test]
fn response_format_becomes_output_config_and_odd_types_are_refused() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let build = |format: Value| {
        build(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "response_format": format}),
        )
    };
    let out = build(json!({"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}))
        .unwrap();
    assert_eq!(
        out.extra["output_config"],
        json!({"format": {"type": "json_schema", "schema": schema}})
    );
    let any = build(json!({"type": "json_object"})).unwrap();
    assert_eq!(
        any.extra["output_config"]["format"]["schema"]["type"],
        "object"
    );
    assert!(
        build(json!({"type": "text"}))
            .unwrap()
            .extra
            .get("output_config")
            .is_none()
    );
    assert!(build(json!({"type": "grammar"})).is_err());
    assert!(build(json!({"type": "json_schema", "json_schema": {"name": "x"}})).is_err());
}
