//! A Responses call as it goes to a provider: natively to one that speaks
//! the Responses API (OpenAI's `/responses`), translated to Chat for any
//! other. Tollgate keeps the conversation itself, so the native body has
//! `previous_response_id` expanded into `input` and `store: false`; the
//! provider's object and events come back with Tollgate's id, the model the
//! client asked for and the client's `store` / `previous_response_id`.

use super::{ResponseContext, ResponsesRequest, to_chat_request};
use crate::common::message_text;
use crate::types::{ChatMessage, ChatRequest};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tollgate_core::money::TokenUsage;

/// A Responses request in both forms: the pipeline sends `native` to a
/// provider that speaks Responses and `chat` to any other.
#[derive(Debug, Clone)]
pub struct ResponsesCall {
    pub chat: ChatRequest,
    pub native: NativeRequest,
}

/// The body sent to a provider's `/responses`, without `model` and
/// `stream` (set per attempt).
#[derive(Debug, Clone)]
pub struct NativeRequest {
    pub body: Map<String, Value>,
}

impl NativeRequest {
    /// The completion limit of this attempt (clamped to the model's).
    pub fn set_max_output_tokens(&mut self, limit: Option<i64>) {
        match limit {
            Some(limit) => self.body.insert("max_output_tokens".into(), json!(limit)),
            None => self.body.remove("max_output_tokens"),
        };
    }
}

/// Decodes a Responses request; `history` is the conversation of its
/// `previous_response_id` (empty without one). The error names the field.
pub fn decode(
    request: &ResponsesRequest,
    history: Vec<ChatMessage>,
) -> Result<ResponsesCall, String> {
    if request
        .extra
        .get("background")
        .is_some_and(|b| b != &Value::Bool(false))
    {
        return Err(
            "`background` responses are not supported: send the request without \
                    `background: true` (use `stream: true` for long answers)"
                .into(),
        );
    }
    let items = input_items(&history);
    let chat = to_chat_request(request, history)?;
    let mut body = match serde_json::to_value(request) {
        Ok(Value::Object(body)) => body,
        _ => return Err("the request could not be read".into()),
    };
    for key in ["model", "stream", "previous_response_id", "store"] {
        body.remove(key);
    }
    // Tollgate's store is the source of truth: a follow-up may go to any
    // provider, so the provider keeps nothing.
    body.insert("store".into(), Value::Bool(false));
    let mut input = items;
    match body.remove("input") {
        Some(Value::String(text)) => input.push(json!({"role": "user", "content": text})),
        Some(Value::Array(sent)) => input.extend(sent),
        _ => {}
    }
    body.insert("input".into(), Value::Array(input));
    Ok(ResponsesCall {
        chat,
        native: NativeRequest { body },
    })
}

/// A conversation kept as Chat messages, as Responses input items.
pub fn input_items(messages: &[ChatMessage]) -> Vec<Value> {
    let mut items = Vec::with_capacity(messages.len());
    for m in messages {
        match m.role.as_str() {
            "tool" => items.push(json!({
                "type": "function_call_output",
                "call_id": m.extra.get("tool_call_id").cloned().unwrap_or(Value::Null),
                "output": text_of(&m.content),
            })),
            "assistant" => {
                let text = text_of(&m.content);
                if !text.is_empty() {
                    items.push(json!({"role": "assistant", "content": text}));
                }
                for call in m
                    .extra
                    .get("tool_calls")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    let function = call.get("function");
                    let field = |k: &str| function.and_then(|f| f.get(k)).cloned();
                    items.push(json!({
                        "type": "function_call",
                        "call_id": call.get("id").cloned().unwrap_or(Value::Null),
                        "name": field("name").unwrap_or(Value::Null),
                        "arguments": field("arguments").unwrap_or_else(|| json!("{}")),
                    }));
                }
            }
            role => {
                let content = match &m.content {
                    Value::Array(parts) => Value::Array(parts.iter().map(input_part).collect()),
                    other => other.clone(),
                };
                items.push(json!({"role": role, "content": content}));
            }
        }
    }
    items
}

fn text_of(content: &Value) -> String {
    message_text(Some(&json!({ "content": content })))
}

/// A Chat content part as a Responses input part.
fn input_part(part: &Value) -> Value {
    match part.get("type").and_then(Value::as_str) {
        Some("text") => {
            json!({"type": "input_text", "text": part.get("text").cloned().unwrap_or_default()})
        }
        Some("image_url") => {
            let image = part.get("image_url");
            let mut out = json!({"type": "input_image",
                "image_url": image.and_then(|i| i.get("url")).cloned().unwrap_or_default()});
            if let (Some(detail), Some(map)) =
                (image.and_then(|i| i.get("detail")), out.as_object_mut())
            {
                map.insert("detail".into(), detail.clone());
            }
            out
        }
        Some("file") => {
            let file = part.get("file");
            json!({"type": "input_file",
                "filename": file.and_then(|f| f.get("filename")).cloned().unwrap_or_default(),
                "file_data": file.and_then(|f| f.get("file_data")).cloned().unwrap_or_default()})
        }
        _ => part.clone(),
    }
}

/// The Responses `usage` object, as Tollgate bills it: `input_tokens`
/// include the cached ones, `output_tokens` the reasoning ones (as Chat's
/// `prompt_tokens` and `completion_tokens` do).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    input_tokens: i64,
    #[serde(default)]
    output_tokens: i64,
    #[serde(default)]
    input_tokens_details: Option<InputDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct InputDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
}

impl From<WireUsage> for TokenUsage {
    fn from(u: WireUsage) -> TokenUsage {
        TokenUsage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_prompt_tokens: u
                .input_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
            cache_write_tokens: 0,
        }
    }
}

/// The provider's Responses object as Tollgate's: its id, the model asked
/// for, the client's `store` and `previous_response_id`.
pub fn rewrite(object: &mut Value, context: &ResponseContext) {
    let Some(map) = object.as_object_mut() else {
        return;
    };
    for key in ["id", "model", "store", "previous_response_id"] {
        if let Some(v) = context.skeleton.get(key) {
            map.insert(key.into(), v.clone());
        }
    }
}

/// Relays a provider's Responses events with the objects they carry
/// rewritten ([`rewrite`]). The terminal event (`response.completed` or
/// `.incomplete`) is held until [`NativeSseEncoder::finish`], so that it
/// goes out only once the response is stored.
#[derive(Debug)]
pub struct NativeSseEncoder {
    context: ResponseContext,
    last_sequence: Option<u64>,
    terminal: Option<(Bytes, Value)>,
}

impl NativeSseEncoder {
    pub fn new(context: ResponseContext) -> NativeSseEncoder {
        NativeSseEncoder {
            context,
            last_sequence: None,
            terminal: None,
        }
    }

    /// The client's bytes for one provider event (its JSON text).
    pub fn event(&mut self, data: &[u8]) -> Vec<Bytes> {
        let Ok(mut event) = serde_json::from_slice::<Value>(data) else {
            return Vec::new();
        };
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.last_sequence = Some(n);
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("message")
            .to_owned();
        if let Some(object) = event.get_mut("response") {
            rewrite(object, &self.context);
        }
        let bytes = crate::sse::encode_event(&kind, &event);
        if matches!(kind.as_str(), "response.completed" | "response.incomplete") {
            let object = event.get("response").cloned().unwrap_or(Value::Null);
            self.terminal = Some((bytes, object));
            return Vec::new();
        }
        vec![bytes]
    }

    /// The held terminal event and the final object, once the stream ended
    /// normally.
    pub fn finish(&mut self) -> (Vec<Bytes>, Option<Value>) {
        match self.terminal.take() {
            Some((bytes, object)) => (vec![bytes], Some(object)),
            None => (Vec::new(), None),
        }
    }

    /// A `response.failed` event, for a stream that broke off.
    pub fn error(&mut self, message: &str) -> Vec<Bytes> {
        let mut object = self.context.object("failed", Vec::new(), None);
        if let Some(map) = object.as_object_mut() {
            map.insert(
                "error".into(),
                json!({"code": "server_error", "message": message}),
            );
        }
        let sequence = self.last_sequence.map_or(0, |n| n + 1);
        let event =
            json!({"type": "response.failed", "response": object, "sequence_number": sequence});
        vec![crate::sse::encode_event("response.failed", &event)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: Value) -> ResponsesRequest {
        serde_json::from_value(body).unwrap()
    }

    #[test]
    fn the_native_body_expands_the_history_and_stores_nothing_upstream() {
        let req = request(
            json!({"model": "gpt", "input": "And Rome?", "instructions": "Brief",
            "previous_response_id": "resp_1", "store": true, "stream": true, "include": ["x"]}),
        );
        let mut call_tool = ChatMessage {
            role: "assistant".into(),
            content: Value::Null,
            extra: Map::new(),
        };
        call_tool.extra.insert(
            "tool_calls".into(),
            json!([{"id": "call_1", "type": "function", "function": {"name": "w", "arguments": "{}"}}]),
        );
        let mut output = ChatMessage {
            role: "tool".into(),
            content: json!("sunny"),
            extra: Map::new(),
        };
        output.extra.insert("tool_call_id".into(), json!("call_1"));
        let user = ChatMessage {
            role: "user".into(),
            content: json!([{"type": "text", "text": "Paris?"}]),
            extra: Map::new(),
        };
        let call = decode(&req, vec![user, call_tool, output]).unwrap();
        let body = Value::Object(call.native.body);
        assert_eq!(
            body,
            json!({"instructions": "Brief", "include": ["x"], "store": false, "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Paris?"}]},
                {"type": "function_call", "call_id": "call_1", "name": "w", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
                {"role": "user", "content": "And Rome?"},
            ]})
        );
        assert_eq!(call.chat.messages.len(), 5);
    }

    #[test]
    fn background_is_refused_by_name() {
        let req = request(json!({"model": "gpt", "input": "x", "background": true}));
        assert!(decode(&req, Vec::new()).unwrap_err().contains("background"));
    }

    #[test]
    fn relayed_events_carry_tollgates_id_and_the_terminal_one_waits() {
        let req = request(json!({"model": "my-alias", "input": "x"}));
        let mut encoder = NativeSseEncoder::new(ResponseContext::new("resp_tg".into(), &req));
        let created = json!({"type": "response.created", "sequence_number": 0,
            "response": {"id": "resp_upstream", "model": "gpt-4o-2024", "store": false}});
        let out = encoder.event(created.to_string().as_bytes());
        let text = std::str::from_utf8(&out[0]).unwrap();
        assert!(text.starts_with("event: response.created\n"), "{text}");
        assert!(text.contains(r#""id":"resp_tg""#) && text.contains(r#""model":"my-alias""#));
        assert!(text.contains(r#""store":true"#));
        let done = json!({"type": "response.completed", "sequence_number": 1,
            "response": {"id": "resp_upstream", "usage": {"input_tokens": 3}}});
        assert!(encoder.event(done.to_string().as_bytes()).is_empty());
        let (out, object) = encoder.finish();
        assert_eq!(out.len(), 1);
        assert_eq!(object.unwrap()["id"], "resp_tg");
    }

    #[test]
    fn usage_reads_cached_input_tokens() {
        let usage: WireUsage = serde_json::from_value(json!({"input_tokens": 10,
            "input_tokens_details": {"cached_tokens": 4}, "output_tokens": 7,
            "output_tokens_details": {"reasoning_tokens": 5}, "total_tokens": 17}))
        .unwrap();
        let usage = TokenUsage::from(usage);
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.cached_prompt_tokens,
                usage.completion_tokens
            ),
            (10, 4, 7)
        );
    }
}
