//! One reader of an OpenAI `chat.completion.chunk`: what the stream encoders
//! of the other inbound APIs (Messages, Responses, Gemini) take from each
//! Chat chunk. Lenient, as a walk over the JSON: a field of another type
//! than expected reads as absent, and only the first choice is read.

use serde_json::Value;
use tollgate_core::money::TokenUsage;

/// What the encoders use of one Chat chunk.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ChatChunk {
    pub id: Option<String>,
    /// `usage`, when it is an object: its counts, 0 where one is missing or
    /// not an integer.
    pub usage: Option<TokenUsage>,
    /// The first choice's `delta`.
    pub delta: Delta,
    /// The first choice's `finish_reason`.
    pub finish_reason: Option<String>,
}

/// A choice's `delta`.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Delta {
    content: Option<String>,
    reasoning_content: Option<String>,
    /// `tool_calls`, in order; pieces of one call share its `index`.
    pub tool_calls: Vec<ToolCallDelta>,
}

/// One entry of a delta's `tool_calls`: a piece of a call (the first one
/// usually has the id and name, the others more of the arguments).
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ToolCallDelta {
    /// The call's `index` among the answer's calls (0 when missing).
    pub index: u64,
    id: Option<String>,
    name: Option<String>,
    arguments: Option<String>,
}

impl ChatChunk {
    /// The chunk in `data` (its JSON text); `None` when it is not JSON.
    pub(crate) fn parse(data: &[u8]) -> Option<ChatChunk> {
        let mut chunk: Value = serde_json::from_slice(data).ok()?;
        let mut choice = match chunk.get_mut("choices") {
            Some(Value::Array(choices)) => choices.first_mut().map(Value::take),
            _ => None,
        }
        .unwrap_or_default();
        let mut delta = take(choice.get_mut("delta"));
        let tool_calls = match delta.get_mut("tool_calls") {
            Some(Value::Array(calls)) => calls.iter_mut().map(ToolCallDelta::of).collect(),
            _ => Vec::new(),
        };
        Some(ChatChunk {
            id: string(chunk.get_mut("id")),
            usage: chunk
                .get("usage")
                .filter(|u| u.is_object())
                .map(token_usage_of),
            delta: Delta {
                content: string(delta.get_mut("content")),
                reasoning_content: string(delta.get_mut("reasoning_content")),
                tool_calls,
            },
            finish_reason: string(choice.get_mut("finish_reason")),
        })
    }
}

impl Delta {
    /// The text `content`, unless empty.
    pub(crate) fn text(&self) -> Option<&str> {
        non_empty(&self.content)
    }

    /// The `reasoning_content`, unless empty.
    pub(crate) fn reasoning(&self) -> Option<&str> {
        non_empty(&self.reasoning_content)
    }
}

impl ToolCallDelta {
    fn of(call: &mut Value) -> ToolCallDelta {
        let mut function = take(call.get_mut("function"));
        ToolCallDelta {
            index: call.get("index").and_then(Value::as_u64).unwrap_or(0),
            id: string(call.get_mut("id")),
            name: string(function.get_mut("name")),
            arguments: string(function.get_mut("arguments")),
        }
    }

    /// The call's `id` ("" when missing).
    pub(crate) fn id(&self) -> &str {
        self.id.as_deref().unwrap_or_default()
    }

    /// The function's `name` ("" when missing).
    pub(crate) fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// This piece of the function's `arguments`, unless empty.
    pub(crate) fn arguments(&self) -> Option<&str> {
        non_empty(&self.arguments)
    }
}

/// A call's token counts from an OpenAI `usage` object (as
/// `common::usage_json` writes it).
fn token_usage_of(usage: &Value) -> TokenUsage {
    let n = |v: Option<&Value>| v.and_then(Value::as_i64).unwrap_or(0);
    TokenUsage {
        prompt_tokens: n(usage.get("prompt_tokens")),
        completion_tokens: n(usage.get("completion_tokens")),
        cached_prompt_tokens: n(usage
            .get("prompt_tokens_details")
            .and_then(|d| d.get("cached_tokens"))),
        cache_write_tokens: n(usage.get("cache_creation_input_tokens")),
    }
}

/// The value, moved out of the chunk (`Null` when absent).
fn take(value: Option<&mut Value>) -> Value {
    value.map(Value::take).unwrap_or_default()
}

/// The string, moved out of the chunk; `None` when absent or not a string.
fn string(value: Option<&mut Value>) -> Option<String> {
    match value {
        Some(Value::String(text)) => Some(std::mem::take(text)),
        _ => None,
    }
}

fn non_empty(text: &Option<String>) -> Option<&str> {
    text.as_deref().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests;
