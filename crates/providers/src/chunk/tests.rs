//! The Chat chunk reader: every field, none, tool-call pieces, the
//! usage-only last chunk, and the odd inputs a walk over a `Value` tolerates.

use super::*;
use serde_json::{Value, json};

fn parse(data: &str) -> ChatChunk {
    ChatChunk::parse(data.as_bytes()).unwrap()
}

#[test]
fn reads_every_field_of_a_chunk() {
    let data = json!({
        "id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m",
        "choices": [{"index": 0, "delta": {
            "role": "assistant", "content": "Hi", "reasoning_content": "hmm",
            "tool_calls": [{"index": 1, "id": "call_1", "type": "function",
                "function": {"name": "get", "arguments": "{\"a\":1}"}}],
        }, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12,
            "prompt_tokens_details": {"cached_tokens": 2}, "cache_creation_input_tokens": 3},
    })
    .to_string();
    let chunk = parse(&data);
    assert_eq!(chunk.id.as_deref(), Some("chatcmpl-1"));
    assert_eq!(
        chunk.usage,
        Some(TokenUsage {
            prompt_tokens: 5,
            completion_tokens: 7,
            cached_prompt_tokens: 2,
            cache_write_tokens: 3,
        })
    );
    assert_eq!(chunk.delta.text(), Some("Hi"));
    assert_eq!(chunk.delta.reasoning(), Some("hmm"));
    let [call] = chunk.delta.tool_calls.as_slice() else {
        panic!("one call expected: {:?}", chunk.delta.tool_calls);
    };
    assert_eq!(
        (call.index, call.id(), call.name(), call.arguments()),
        (1, "call_1", "get", Some("{\"a\":1}"))
    );
    assert_eq!(chunk.finish_reason.as_deref(), Some("tool_calls"));
}

#[test]
fn reads_a_chunk_with_nothing_in_it_as_empty() {
    for data in [
        "{}",
        r#"{"choices": []}"#,
        r#"{"id": null, "usage": null, "choices": [{"delta": {}}]}"#,
        r#"{"choices": [{"delta": {"content": "", "reasoning_content": ""}}]}"#,
        "[1, 2]",
        "null",
        "5",
    ] {
        let chunk = parse(data);
        assert_eq!(chunk.id, None, "{data}");
        assert_eq!(chunk.usage, None, "{data}");
        assert_eq!(chunk.delta.text(), None, "{data}");
        assert_eq!(chunk.delta.reasoning(), None, "{data}");
        assert!(chunk.delta.tool_calls.is_empty(), "{data}");
        assert_eq!(chunk.finish_reason, None, "{data}");
    }
}

#[test]
fn rejects_what_is_not_json() {
    for data in [
        "",
        "not json",
        r#"{"id": "x""#,
        r#"{"id": "x"} trailing"#,
        // Invalid in a field the reader does not use: a `Value` rejects it too.
        r#"{"id": "x", "model": "\ud800"}"#,
        r#"{"id": "x", "n": 1e400}"#,
    ] {
        assert!(ChatChunk::parse(data.as_bytes()).is_none(), "{data}");
    }
}

#[test]
fn reads_the_pieces_of_a_tool_call() {
    let first = r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"id":"call_1","function":{"name":"get","arguments":""}}]}}]}"#;
    let more =
        r#"{"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\""}}]}}]}"#;
    let two = r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":":1}"}},{"index":2,"id":"call_2","function":{"name":"put"}}]}}]}"#;

    let first = parse(first);
    let call = &first.delta.tool_calls[0];
    assert_eq!(
        (call.index, call.id(), call.name(), call.arguments()),
        (0, "call_1", "get", None)
    );
    let more = parse(more);
    let call = &more.delta.tool_calls[0];
    assert_eq!(
        (call.index, call.id(), call.name(), call.arguments()),
        (0, "", "", Some("{\"a\""))
    );
    let two = parse(two);
    let pieces: Vec<_> = two
        .delta
        .tool_calls
        .iter()
        .map(|c| (c.index, c.id(), c.name(), c.arguments()))
        .collect();
    assert_eq!(
        pieces,
        [(0, "", "", Some(":1}")), (2, "call_2", "put", None)]
    );
}

#[test]
fn reads_the_usage_only_last_chunk() {
    let data = r#"{"id":"c","object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":4,"total_tokens":13}}"#;
    let chunk = parse(data);
    assert_eq!(
        chunk.usage,
        Some(TokenUsage {
            prompt_tokens: 9,
            completion_tokens: 4,
            ..TokenUsage::default()
        })
    );
    assert_eq!(chunk.delta, Delta::default());
    assert_eq!(chunk.finish_reason, None);
}

#[test]
fn ignores_a_usage_that_is_not_an_object_and_counts_that_are_not_integers() {
    for usage in ["5", "\"x\"", "[1]", "null", "true"] {
        let data = format!(r#"{{"usage": {usage}}}"#);
        assert_eq!(parse(&data).usage, None, "{usage}");
    }
    let data = r#"{"usage": {"prompt_tokens": 3.0, "completion_tokens": -4, "prompt_tokens_details": 5,
        "cache_creation_input_tokens": 18446744073709551615}}"#;
    assert_eq!(
        parse(data).usage,
        Some(TokenUsage {
            completion_tokens: -4,
            ..TokenUsage::default()
        })
    );
}

/// What the encoders took from a chunk when they walked a `Value`.
fn walked(data: &str) -> Option<Value> {
    let chunk: Value = serde_json::from_str(data).ok()?;
    let usage = chunk.get("usage").filter(|u| u.is_object()).map(|u| {
        let n = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
        json!([
            n(u.get("prompt_tokens")),
            n(u.get("completion_tokens")),
            n(u.pointer("/prompt_tokens_details/cached_tokens")),
            n(u.get("cache_creation_input_tokens")),
        ])
    });
    let choice = chunk.get("choices").and_then(|c| c.get(0));
    let delta = choice.and_then(|c| c.get("delta"));
    let text = |key: &str| {
        delta
            .and_then(|d| d.get(key))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    };
    let calls: Vec<Value> = delta
        .and_then(|d| d.get("tool_calls"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|c| {
            let function = |key: &str| c.get("function").and_then(|f| f.get(key));
            json!([
                c.get("index").and_then(Value::as_u64).unwrap_or(0),
                c.get("id").and_then(Value::as_str).unwrap_or_default(),
                function("name").and_then(Value::as_str).unwrap_or_default(),
                function("arguments")
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty()),
            ])
        })
        .collect();
    Some(json!({
        "id": chunk.get("id").and_then(Value::as_str),
        "usage": usage,
        "text": text("content"),
        "reasoning": text("reasoning_content"),
        "calls": calls,
        "finish": choice.and_then(|c| c.get("finish_reason")).and_then(Value::as_str),
    }))
}

fn read(data: &str) -> Option<Value> {
    let chunk = ChatChunk::parse(data.as_bytes())?;
    let usage = chunk.usage.map(|u| {
        json!([
            u.prompt_tokens,
            u.completion_tokens,
            u.cached_prompt_tokens,
            u.cache_write_tokens
        ])
    });
    let calls: Vec<Value> = chunk
        .delta
        .tool_calls
        .iter()
        .map(|c| json!([c.index, c.id(), c.name(), c.arguments()]))
        .collect();
    Some(json!({
        "id": chunk.id,
        "usage": usage,
        "text": chunk.delta.text(),
        "reasoning": chunk.delta.reasoning(),
        "calls": calls,
        "finish": chunk.finish_reason,
    }))
}

#[test]
fn reads_odd_chunks_as_a_walk_over_a_value_did() {
    for data in [
        r#"{"id": 5, "choices": {"0": {"delta": {"content": "x"}}}}"#,
        r#"{"choices": [null, {"delta": {"content": "second"}}]}"#,
        r#"{"choices": [5]}"#,
        r#"{"choices": "none"}"#,
        r#"{"choices": [{"delta": null, "finish_reason": "stop"}]}"#,
        r#"{"choices": [{"delta": ["content", "x"], "finish_reason": 7}]}"#,
        r#"{"choices": [{"delta": {"content": "first"}}, {"delta": {"content": "second"}}]}"#,
        r#"{"choices": [{"delta": {"content": 5, "reasoning_content": ["r"]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": {"index": 0}}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [null, 7, "x"]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": -1, "id": 5, "function": {"name": 6, "arguments": {"a": 1}}}]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 1.0, "id": "c", "function": "f"}]}}]}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": "3", "id": "c3", "function": {"name": "n3"}}]}}]}"#,
        r#"{"usage": {"prompt_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1.5}}}"#,
        r#"{"usage": {"prompt_tokens": 9223372036854775807, "completion_tokens": "4"}}"#,
        // A repeated key counts by its last value.
        r#"{"id": "a", "id": "b", "choices": [{"delta": {"content": "a", "content": "b"}}], "choices": {}}"#,
        r#"{"choices": {}, "choices": [{"delta": {"content": "c"}, "delta": {}, "finish_reason": "stop", "finish_reason": null}]}"#,
        r#"{"usage": {"prompt_tokens": 1}, "usage": 3}"#,
        r#"{"usage": {"prompt_tokens": 1, "prompt_tokens": "x", "prompt_tokens_details": {"cached_tokens": 1}, "prompt_tokens_details": null}}"#,
        r#"{"choices": [{"delta": {"tool_calls": [{"index": 5, "index": 6, "function": {"name": "x"}, "function": {"arguments": "2"}}]}}]}"#,
        // Escaped keys are the keys they spell.
        r#"{"\u0069d": "e\u0073c", "ch\u006fices": [{"d\u0065lta": {"c\u006fntent": "k"}}]}"#,
    ] {
        assert_eq!(read(data), walked(data), "{data}");
    }
}
