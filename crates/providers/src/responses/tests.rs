//! The Responses translation: requests in, objects and every event kind out.

use super::*;
use serde_json::json;

fn request(body: Value) -> ResponsesRequest {
    serde_json::from_value(body).unwrap()
}

fn context(body: Value) -> ResponseContext {
    ResponseContext::new("resp_abc".into(), &request(body))
}

/// The `type` and data of every event in SSE bytes.
fn events(frames: &[Bytes]) -> Vec<(String, Value)> {
    frames
        .iter()
        .map(|f| {
            let text = std::str::from_utf8(f).unwrap();
            let (head, data) = text.split_once("\ndata: ").unwrap();
            let name = head.strip_prefix("event: ").unwrap().to_owned();
            let data: Value = serde_json::from_str(data.trim()).unwrap();
            assert_eq!(data["type"], name);
            (name, data)
        })
        .collect()
}

fn chunk(delta: Value, finish: Option<&str>) -> Vec<u8> {
    json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
        .into_bytes()
}

#[test]
fn text_input_and_instructions_become_system_and_user_messages() {
    let req = request(
        json!({"model": "m", "input": "Hi", "instructions": "Be brief",
        "max_output_tokens": 50, "reasoning": {"effort": "low"}, "metadata": {"a": "b"}, "store": false}),
    );
    let chat = to_chat_request(&req, Vec::new()).unwrap();
    assert_eq!(chat.messages[0].role, "system");
    assert_eq!(chat.messages[0].content, json!("Be brief"));
    assert_eq!(chat.messages[1].role, "user");
    assert_eq!(chat.messages[1].content, json!("Hi"));
    assert_eq!(chat.max_tokens, Some(50));
    assert_eq!(chat.extra["reasoning_effort"], json!("low"));
    // Metadata is echoed, never forwarded.
    assert!(!chat.extra.contains_key("metadata"));
    assert!(!req.store());
}

#[test]
fn items_with_function_calls_and_outputs_become_a_tool_turn() {
    let req = request(json!({"model": "m", "input": [
        {"role": "user", "content": [{"type": "input_text", "text": "Weather?"},
            {"type": "input_image", "image_url": "https://x/a.png", "detail": "low"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "function_call_output", "call_id": "call_2", "output": "noon"},
        {"type": "reasoning", "id": "rs_1", "summary": []}
    ]}));
    let chat = to_chat_request(&req, Vec::new()).unwrap();
    assert_eq!(chat.messages.len(), 4);
    assert_eq!(
        chat.messages[0].content,
        json!([{"type": "text", "text": "Weather?"},
            {"type": "image_url", "image_url": {"url": "https://x/a.png", "detail": "low"}}])
    );
    let calls = chat.messages[1].extra["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    assert_eq!(chat.messages[2].role, "tool");
    assert_eq!(chat.messages[2].extra["tool_call_id"], "call_1");
    assert_eq!(chat.messages[3].content, json!("noon"));
}

#[test]
fn history_goes_between_instructions_and_new_input() {
    let req = request(json!({"model": "m", "input": "and now?", "instructions": "sys"}));
    let history = vec![
        message("user", json!("first")),
        message("assistant", json!("reply")),
    ];
    let chat = to_chat_request(&req, history).unwrap();
    let roles: Vec<&str> = chat.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "user"]);
}

#[test]
fn function_tools_choice_and_json_schema_format_are_mapped() {
    let req = request(json!({"model": "m", "input": "x",
        "tools": [{"type": "function", "name": "f", "description": "d", "parameters": {"type": "object"}, "strict": true}],
        "tool_choice": {"type": "function", "name": "f"},
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}}}));
    let chat = to_chat_request(&req, Vec::new()).unwrap();
    assert_eq!(
        chat.extra["tools"],
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}, "description": "d", "strict": true}}])
    );
    assert_eq!(
        chat.extra["tool_choice"],
        json!({"type": "function", "function": {"name": "f"}})
    );
    assert_eq!(
        chat.extra["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
    );
}

#[test]
fn built_in_tools_and_bad_input_are_refused_naming_the_field() {
    let web = request(json!({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}));
    assert!(
        to_chat_request(&web, Vec::new())
            .unwrap_err()
            .contains("tools[0]")
    );
    let bad = request(json!({"model": "m", "input": [{"type": "item_reference", "id": "x"}]}));
    assert!(
        to_chat_request(&bad, Vec::new())
            .unwrap_err()
            .contains("input[0]")
    );
    let number = request(json!({"model": "m", "input": 5}));
    assert!(
        to_chat_request(&number, Vec::new())
            .unwrap_err()
            .contains("input")
    );
    let empty = request(json!({"model": "m", "input": [], "instructions": "only"}));
    assert!(to_chat_request(&empty, Vec::new()).is_err());
    let format =
        request(json!({"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}}));
    assert!(
        to_chat_request(&format, Vec::new())
            .unwrap_err()
            .contains("text.format.schema")
    );
}

#[test]
fn a_completion_becomes_a_response_object_with_text_calls_and_usage() {
    let ctx = context(json!({"model": "claude", "input": "x", "metadata": {"k": "v"}}));
    let completion = json!({"id": "c", "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
        "role": "assistant", "content": "Let me check.",
        "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}}]});
    let usage = TokenUsage {
        prompt_tokens: 10,
        completion_tokens: 7,
        cached_prompt_tokens: 2,
        cache_write_tokens: 0,
    };
    let object = response_from_completion(&completion, &ctx, &usage);
    assert_eq!(object["object"], "response");
    assert_eq!(object["id"], "resp_abc");
    assert_eq!(object["status"], "completed");
    assert_eq!(object["model"], "claude");
    assert_eq!(object["metadata"], json!({"k": "v"}));
    assert_eq!(object["output"][0]["type"], "message");
    assert_eq!(object["output"][0]["content"][0]["text"], "Let me check.");
    assert_eq!(object["output"][1]["type"], "function_call");
    assert_eq!(object["output"][1]["call_id"], "call_9");
    assert_eq!(object["output"][1]["arguments"], "{\"a\":1}");
    assert_eq!(
        object["usage"],
        json!({"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17})
    );
    // The assistant turn, for previous_response_id.
    let turn = assistant_message(&object);
    assert_eq!(turn.content, json!("Let me check."));
    assert_eq!(turn.extra["tool_calls"][0]["id"], "call_9");
}

#[test]
fn a_cut_completion_is_incomplete() {
    let ctx = context(json!({"model": "m", "input": "x"}));
    let completion =
        json!({"choices": [{"finish_reason": "length", "message": {"content": "a b"}}]});
    let object = response_from_completion(&completion, &ctx, &TokenUsage::default());
    assert_eq!(object["status"], "incomplete");
    assert_eq!(object["incomplete_details"]["reason"], "max_output_tokens");
}

#[test]
fn a_text_stream_is_the_responses_event_sequence() {
    let mut enc = SseEncoder::new(context(json!({"model": "m", "input": "x"})));
    let mut frames = enc.chunk(&chunk(json!({"role": "assistant", "content": ""}), None));
    frames.extend(enc.chunk(&chunk(json!({"content": "Hello"}), None)));
    frames.extend(enc.chunk(&chunk(json!({"content": " world"}), None)));
    frames.extend(enc.chunk(&chunk(json!({}), Some("stop"))));
    let usage = TokenUsage {
        prompt_tokens: 5,
        completion_tokens: 2,
        ..TokenUsage::default()
    };
    let (end, object) = enc.finish(Some(usage));
    frames.extend(end);
    let events = events(&frames);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], i as u64);
    }
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    assert_eq!(events[6].1["text"], "Hello world");
    let completed = &events[9].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["output"][0]["content"][0]["text"], "Hello world");
    assert_eq!(completed["usage"]["total_tokens"], 7);
    assert_eq!(&object, completed);
}

#[test]
fn a_tool_call_stream_has_argument_deltas_and_done() {
    let mut enc = SseEncoder::new(context(json!({"model": "m", "input": "x"})));
    let mut frames = enc.chunk(&chunk(json!({"content": "Let me check."}), None));
    frames.extend(enc.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": ""}}]}),
        None,
    )));
    frames.extend(enc.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}),
        None,
    )));
    frames.extend(enc.chunk(&chunk(
        json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
        None,
    )));
    frames.extend(enc.chunk(&chunk(json!({}), Some("tool_calls"))));
    let (end, object) = enc.finish(None);
    frames.extend(end);
    let events = events(&frames);
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[8].1["output_index"], 1);
    assert_eq!(events[8].1["item"]["call_id"], "call_1");
    assert_eq!(events[11].1["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(object["output"][1]["name"], "get_weather");
}

#[test]
fn a_stream_cut_at_the_limit_is_incomplete_and_a_broken_one_failed() {
    let mut enc = SseEncoder::new(context(json!({"model": "m", "input": "x"})));
    enc.chunk(&chunk(json!({"content": "a"}), Some("length")));
    let (frames, object) = enc.finish(None);
    assert_eq!(events(&frames).last().unwrap().0, "response.incomplete");
    assert_eq!(object["status"], "incomplete");

    let mut broken = SseEncoder::new(context(json!({"model": "m", "input": "x"})));
    broken.chunk(&chunk(json!({"content": "a"}), None));
    let events = events(&broken.error("cut"));
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "response.failed");
    assert_eq!(data["response"]["error"]["message"], "cut");
}
