//! Tollgate's request format: OpenAI's, with the fields Tollgate reads typed
//! and every other field kept as sent, so nothing a client sets is lost.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

mod decode;

/// Read by a hand-written `Deserialize` (in `decode`), in one pass.
#[derive(Debug, Clone, Serialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<i64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct StreamOptions {
    #[serde(default)]
    pub include_usage: bool,
}

/// Read by a hand-written `Deserialize` (in `decode`), in one pass.
#[derive(Debug, Clone, Serialize)]
pub struct ChatMessage {
    pub role: String,
    /// A string, an array of content parts, or null (assistant tool calls).
    pub content: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// The completion limit the client set, if any.
    pub fn max_output_tokens(&self) -> Option<i64> {
        self.max_completion_tokens.or(self.max_tokens)
    }

    /// A bound no tokenizer's prompt count exceeds: one token per byte of
    /// every text the prompt carries (BPE tokens are at least one byte), plus
    /// a per-message allowance for role and framing tokens, plus a fixed
    /// allowance per image. Used to size holds, never to bill.
    pub fn prompt_token_upper_bound(&self) -> i64 {
        const PER_MESSAGE: i64 = 8;
        const PER_IMAGE: i64 = 6_400;
        let mut total: i64 = 16;
        for m in &self.messages {
            total += PER_MESSAGE + value_text_bytes(&m.content, PER_IMAGE);
            for v in m.extra.values() {
                total += value_text_bytes(v, PER_IMAGE);
            }
        }
        for key in ["tools", "functions", "response_format", "tool_choice"] {
            if let Some(v) = self.extra.get(key) {
                total += value_text_bytes(v, PER_IMAGE);
            }
        }
        total
    }

    /// Checks what the JSON types alone cannot; the message names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("`model` must not be empty".into());
        }
        if self.messages.is_empty() {
            return Err("`messages` must contain at least one message".into());
        }
        for (i, m) in self.messages.iter().enumerate() {
            if !matches!(
                m.role.as_str(),
                "system" | "developer" | "user" | "assistant" | "tool" | "function"
            ) {
                return Err(format!(
                    "`messages[{i}].role` must be one of system, developer, user, assistant, tool"
                ));
            }
            if !matches!(m.content, Value::String(_) | Value::Array(_) | Value::Null) {
                return Err(format!(
                    "`messages[{i}].content` must be a string or an array of content parts"
                ));
            }
        }
        for (name, v) in [
            ("max_tokens", self.max_tokens),
            ("max_completion_tokens", self.max_completion_tokens),
        ] {
            if v.is_some_and(|n| n <= 0) {
                return Err(format!("`{name}` must be a positive integer"));
            }
        }
        Ok(())
    }
}

/// Bytes of text in a JSON value (a serialized upper bound for non-text),
/// counting `image_url` parts as `per_image`.
fn value_text_bytes(v: &Value, per_image: i64) -> i64 {
    let len = |s: &str| i64::try_from(s.len()).unwrap_or(i64::MAX);
    match v {
        Value::Null | Value::Bool(_) => 1,
        Value::Number(n) => len(&n.to_string()),
        Value::String(s) => len(s),
        Value::Array(items) => items
            .iter()
            .map(|i| value_text_bytes(i, per_image) + 1)
            .sum(),
        Value::Object(map) => {
            if map.contains_key("image_url") || map.contains_key("input_audio") {
                return per_image;
            }
            map.iter()
                .map(|(k, v)| len(k) + value_text_bytes(v, per_image) + 2)
                .sum()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EmbeddingRequest {
    pub model: String,
    pub input: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl EmbeddingRequest {
    pub fn input_token_upper_bound(&self) -> i64 {
        value_text_bytes(&self.input, 0) + 8
    }

    pub fn validate(&self) -> Result<(), String> {
        match &self.input {
            Value::String(s) if !s.is_empty() => Ok(()),
            Value::Array(items) if !items.is_empty() => Ok(()),
            _ => Err("`input` must be a non-empty string or array".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body = json!({
            "model": "m", "messages": [{"role": "user", "content": "hi", "name": "bob"}],
            "temperature": 0.2, "tools": [{"type": "function", "function": {"name": "f"}}]
        });
        let req: ChatRequest = serde_json::from_value(body.clone()).unwrap();
        assert_eq!(serde_json::to_value(&req).unwrap(), body);
    }

    #[test]
    fn prompt_bound_covers_the_text() {
        let text = "a".repeat(1000);
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "user", "content": text}]
        }))
        .unwrap();
        assert!(req.prompt_token_upper_bound() >= 1000);
    }

    #[test]
    fn validation_names_the_field() {
        let req: ChatRequest = serde_json::from_value(json!({
            "model": "m", "messages": [{"role": "robot", "content": "hi"}]
        }))
        .unwrap();
        assert!(req.validate().unwrap_err().contains("messages[0].role"));
        let empty: ChatRequest =
            serde_json::from_value(json!({"model": "m", "messages": []})).unwrap();
        assert!(empty.validate().unwrap_err().contains("messages"));
    }
}
