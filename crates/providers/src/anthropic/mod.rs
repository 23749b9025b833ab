//! The `anthropic` kind: the Messages API (`POST /v1/messages` with
//! `x-api-key` and `anthropic-version`). OpenAI-format requests are
//! translated into Messages requests, and answers, plain or streamed event by
//! event, back into `chat.completion` / `chat.completion.chunk` JSON.
//!
//! [`inbound`] goes the other way, for Tollgate's own `/v1/messages`.

pub mod inbound;
mod request;
#[cfg(test)]
mod tests;
pub mod wire;

pub use request::Outbound;

use crate::client::{ChatAnswer, ChatStream, StreamEvent, Target};
use crate::common;
use crate::common::{Translate, delta_chunk, translate_sse, unix_now, usage_chunk, usage_json};
use crate::error::ProviderError;
use crate::transport::{Answer, Http, Outgoing};
use crate::types::ChatRequest;
use bytes::Bytes;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::collections::HashMap;
use tollgate_core::money::TokenUsage;
use wire::{ContentBlock, Delta, MessageResponse, MessagesRequest, Usage};

/// The API version Tollgate speaks.
pub const API_VERSION: &str = "2023-06-01";

/// `{base}/v1/messages`, accepting a base URL with or without `/v1`.
fn endpoint(base_url: &str) -> String {
    if base_url.ends_with("/v1") {
        format!("{base_url}/messages")
    } else {
        format!("{base_url}/v1/messages")
    }
}

fn build(
    target: &Target<'_>,
    request: &ChatRequest,
    stream: bool,
) -> Result<MessagesRequest, ProviderError> {
    MessagesRequest::try_from(Outbound {
        request,
        model: target.upstream_model,
        default_max_tokens: target.max_output_tokens,
        stream,
    })
}

/// POSTs `body` to `url` (a Messages endpoint) with the version and the
/// key (see [`common::post`]).
async fn send(
    http: &Http,
    target: &Target<'_>,
    url: String,
    body: &impl serde::Serialize,
) -> Result<Answer, ProviderError> {
    let mut request = Outgoing::post(url)
        .header("anthropic-version", API_VERSION)?
        .json(body)?;
    if let Some(key) = target.api_key {
        request = request.key("x-api-key", key.expose_secret())?;
    }
    common::post(http, target, request).await
}

/// The prompt tokens of a chat request, by Anthropic's
/// `/v1/messages/count_tokens`.
pub(crate) async fn count_tokens(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<i64, ProviderError> {
    let built = build(target, request, false)?;
    // count_tokens takes a Messages request without its output settings.
    let mut body =
        serde_json::to_value(&built).map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
    if let Some(map) = body.as_object_mut() {
        for key in [
            "max_tokens",
            "stop_sequences",
            "temperature",
            "top_p",
            "top_k",
            "metadata",
            "stream",
            "service_tier",
        ] {
            map.remove(key);
        }
    }
    let url = format!("{}/count_tokens", endpoint(target.base_url));
    let response = send(http, target, url, &body).await?;
    let bytes = response.bytes().await?;
    serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| v.get("input_tokens").and_then(serde_json::Value::as_i64))
        .ok_or_else(|| ProviderError::InvalidResponse("no `input_tokens` in the count".into()))
}

pub(crate) async fn chat(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<ChatAnswer, ProviderError> {
    let body = build(target, request, false)?;
    let response = send(http, target, endpoint(target.base_url), &body).await?;
    let bytes = response.bytes().await?;
    let message: MessageResponse = serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    let (completion, usage) = completion_from_message(&message, unix_now());
    Ok(ChatAnswer {
        body: Bytes::from(completion.to_string()),
        usage,
    })
}

pub(crate) async fn chat_stream(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<ChatStream, ProviderError> {
    let body = build(target, request, true)?;
    let response = send(http, target, endpoint(target.base_url), &body).await?;
    let key = target.api_key.map(|k| k.expose_secret().to_owned());
    translate_sse(response, StreamTranslator::new(target.upstream_model, key)).await
}

/// Anthropic's token counts in OpenAI's convention: `prompt_tokens` counts
/// the cache reads and writes too, `cached_prompt_tokens` the reads.
pub fn token_usage(usage: &Usage) -> TokenUsage {
    let input = usage.input_tokens.unwrap_or(0);
    let read = usage.cache_read_input_tokens.unwrap_or(0);
    let written = usage.cache_creation_input_tokens.unwrap_or(0);
    TokenUsage {
        prompt_tokens: input + read + written,
        completion_tokens: usage.output_tokens.unwrap_or(0),
        cached_prompt_tokens: read,
        cache_write_tokens: written,
    }
}

/// Anthropic's `stop_reason` as an OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens" | "model_context_window_exceeded") => "length",
        Some("tool_use") => "tool_calls",
        Some("refusal") => "content_filter",
        _ => "stop",
    }
}

/// A complete Anthropic message as an OpenAI `chat.completion`.
pub fn completion_from_message(message: &MessageResponse, created: u64) -> (Value, TokenUsage) {
    let mut text = String::new();
    let mut thinking = String::new();
    let mut tool_calls = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text: t } => text.push_str(t),
            ContentBlock::Thinking { thinking: t, .. } => thinking.push_str(t),
            ContentBlock::ToolUse { id, name, input } => tool_calls.push(json!({
                "id": id,
                "type": "function",
                "function": {"name": name, "arguments": input.to_string()},
            })),
            ContentBlock::RedactedThinking { .. } | ContentBlock::Unknown => {}
        }
    }
    let usage = token_usage(&message.usage);
    let mut msg = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if let Some(map) = msg.as_object_mut() {
        if !tool_calls.is_empty() {
            map.insert("tool_calls".into(), Value::Array(tool_calls));
        }
        if !thinking.is_empty() {
            map.insert("reasoning_content".into(), Value::String(thinking));
        }
    }
    let completion = json!({
        "id": message.id,
        "object": "chat.completion",
        "created": created,
        "model": message.model,
        "choices": [{
            "index": 0,
            "message": msg,
            "logprobs": null,
            "finish_reason": finish_reason(message.stop_reason.as_deref()),
        }],
        "usage": usage_json(&usage, 0),
    });
    (completion, usage)
}

/// Translates Anthropic's stream events into OpenAI chunks as they come.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    usage: Usage,
    stop_reason: Option<String>,
    /// Anthropic block index → OpenAI tool call index.
    tools: HashMap<usize, usize>,
    /// Scrubbed from error messages, should the provider echo it.
    key: Option<String>,
}

impl StreamTranslator {
    pub fn new(model: &str, key: Option<String>) -> StreamTranslator {
        StreamTranslator {
            id: String::new(),
            model: model.to_owned(),
            created: unix_now(),
            usage: Usage::default(),
            stop_reason: None,
            tools: HashMap::new(),
            key,
        }
    }

    fn chunk(&self, delta: Value, finish: Option<&str>) -> StreamEvent {
        delta_chunk(&self.id, &self.model, self.created, delta, finish)
    }

    fn scrubbed(&self, message: &str) -> String {
        match &self.key {
            Some(k) if !k.is_empty() => message.replace(k.as_str(), "*****"),
            _ => message.to_owned(),
        }
    }

    /// Translates one event (its `data`, which carries its type).
    pub fn translate(&mut self, data: &str, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        let event: wire::StreamEvent = match serde_json::from_str(data) {
            Ok(event) => event,
            Err(e) => {
                out.push(Err(ProviderError::InvalidResponse(format!(
                    "bad stream event: {e}"
                ))));
                return;
            }
        };
        match event {
            wire::StreamEvent::MessageStart { message } => {
                self.id = message.id;
                if !message.model.is_empty() {
                    self.model = message.model;
                }
                self.usage.merge(&message.usage);
                out.push(Ok(
                    self.chunk(json!({"role": "assistant", "content": ""}), None)
                ));
            }
            wire::StreamEvent::ContentBlockStart {
                index,
                content_block,
            } => match content_block {
                ContentBlock::ToolUse { id, name, .. } => {
                    let n = self.tools.len();
                    self.tools.insert(index, n);
                    out.push(Ok(self.chunk(
                        json!({"tool_calls": [{"index": n, "id": id, "type": "function",
                            "function": {"name": name, "arguments": ""}}]}),
                        None,
                    )));
                }
                ContentBlock::Text { text } if !text.is_empty() => {
                    out.push(Ok(self.chunk(json!({"content": text}), None)));
                }
                _ => {}
            },
            wire::StreamEvent::ContentBlockDelta { index, delta } => match delta {
                Delta::TextDelta { text } => {
                    out.push(Ok(self.chunk(json!({"content": text}), None)))
                }
                Delta::InputJsonDelta { partial_json } => {
                    if let Some(&n) = self.tools.get(&index)
                        && !partial_json.is_empty()
                    {
                        out.push(Ok(self.chunk(
                                json!({"tool_calls": [{"index": n, "function": {"arguments": partial_json}}]}),
                                None,
                            )));
                    }
                }
                Delta::ThinkingDelta { thinking } => {
                    out.push(Ok(self.chunk(json!({"reasoning_content": thinking}), None)));
                }
                Delta::SignatureDelta { .. } | Delta::Unknown => {}
            },
            wire::StreamEvent::MessageDelta { delta, usage } => {
                self.usage.merge(&usage);
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                    let finish = finish_reason(self.stop_reason.as_deref());
                    out.push(Ok(self.chunk(json!({}), Some(finish))));
                }
            }
            wire::StreamEvent::MessageStop => {
                let usage = token_usage(&self.usage);
                out.push(Ok(usage_chunk(
                    &self.id,
                    &self.model,
                    self.created,
                    usage,
                    0,
                )));
                out.push(Ok(StreamEvent::Done));
            }
            wire::StreamEvent::Error { error } => {
                out.push(Err(ProviderError::Status {
                    status: wire::status_of_error_type(&error.kind),
                    message: self.scrubbed(&error.message),
                    retry_after: None,
                }));
            }
            wire::StreamEvent::ContentBlockStop { .. }
            | wire::StreamEvent::Ping
            | wire::StreamEvent::Unknown => {}
        }
    }
}

impl Translate for StreamTranslator {
    fn event(
        &mut self,
        _name: &str,
        data: &str,
        out: &mut Vec<Result<StreamEvent, ProviderError>>,
    ) {
        self.translate(data, out);
    }

    fn end(&mut self, _out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        // Without `message_stop` the answer is incomplete: no `Done`.
    }
}
