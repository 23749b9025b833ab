//! Tool calls on the OpenAI Chat Completions endpoint, as OpenAI answers
//! them: when a request declares function tools, does not say
//! `tool_choice: "none"`, and its last message is not a tool result
//! (`role: tool`), the answer calls the tool `tool_choice` names, else the
//! first function tool, with `"mock"` for each required property
//! ([`mock_value`]): `content` `null`, one `tool_calls` entry and
//! `finish_reason` `tool_calls`, [`TOOL_CALL_TOKENS`] completion tokens.
//! Streamed: a first chunk with the role and the call's id, name and empty
//! arguments, the arguments in two `tool_calls` deltas, a chunk with the
//! finish reason, the usage chunk when asked for, `[DONE]`.

use serde_json::{Value, json};

use crate::native::{TOOL_CALL_TOKENS, mock_value};
use crate::wire::Usage;

/// The function a request's answer calls, and its arguments, if any.
pub(crate) fn called(
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
    last_is_tool: bool,
) -> Option<(String, String)> {
    if last_is_tool || tool_choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let functions = tools?
        .as_array()?
        .iter()
        .filter(|t| t.get("type").and_then(Value::as_str) == Some("function"))
        .filter_map(|t| t.get("function"));
    let named = tool_choice
        .and_then(|c| c.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    let mut functions = functions.collect::<Vec<_>>().into_iter();
    let function = match named {
        Some(name) => functions.find(|f| f.get("name").and_then(Value::as_str) == Some(name)),
        None => functions.next(),
    }?;
    let name = function.get("name").and_then(Value::as_str)?.to_owned();
    let arguments = mock_value(function.get("parameters").unwrap_or(&Value::Null)).to_string();
    Some((name, arguments))
}

/// What every answer of one tool call shares.
pub(crate) struct ToolCall<'a> {
    pub id: &'a str,
    pub call_id: String,
    pub model: &'a str,
    pub created: u64,
    pub name: String,
    pub arguments: String,
    pub prompt_tokens: u64,
}

impl ToolCall<'_> {
    fn usage(&self) -> Usage {
        Usage::new(self.prompt_tokens, TOOL_CALL_TOKENS)
    }

    /// The `chat.completion` object.
    pub(crate) fn completion(&self) -> Value {
        json!({"id": self.id, "object": "chat.completion", "created": self.created,
            "model": self.model, "choices": [{"index": 0, "message": {"role": "assistant",
                "content": null, "refusal": null, "annotations": [],
                "tool_calls": [{"id": self.call_id, "type": "function",
                    "function": {"name": self.name, "arguments": self.arguments}}]},
            "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": self.usage()})
    }

    /// The SSE events of the stream.
    pub(crate) fn sse(&self, include_usage: bool) -> Vec<u8> {
        let usage = include_usage.then_some(Value::Null);
        let chunk = |delta: Value, finish: Option<&str>| {
            let mut chunk = json!({"id": self.id, "object": "chat.completion.chunk",
                "created": self.created, "model": self.model,
                "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}]});
            if let Some(usage) = &usage {
                chunk["usage"] = usage.clone();
            }
            chunk
        };
        let (a, b) = self.arguments.split_at(self.arguments.len() / 2);
        let mut chunks = vec![chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0,
                "id": self.call_id, "type": "function", "function": {"name": self.name, "arguments": ""}}]}),
            None,
        )];
        for part in [a, b] {
            chunks.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                None,
            ));
        }
        chunks.push(chunk(json!({}), Some("tool_calls")));
        if include_usage {
            chunks.push(json!({"id": self.id, "object": "chat.completion.chunk",
                "created": self.created, "model": self.model, "choices": [], "usage": self.usage()}));
        }
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend_from_slice(format!("data: {chunk}\n\n").as_bytes());
        }
        events.extend_from_slice(b"data: [DONE]\n\n");
        events
    }
}
