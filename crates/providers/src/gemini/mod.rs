//! The `gemini` kind: the Gemini API (`generateContent`,
//! `streamGenerateContent?alt=sse`, `embedContent`, `batchEmbedContents`,
//! with `x-goog-api-key`). OpenAI-format requests are translated into
//! `generateContent` requests; answers, plain or streamed chunk by chunk,
//! come back as `chat.completion` / `chat.completion.chunk` JSON. A prompt
//! or answer blocked by Gemini's safety filters is a
//! [`ProviderError::Blocked`] (400), never an empty success.

pub mod inbound;
mod request;
#[cfg(test)]
mod tests;
pub mod wire;

pub use request::{Outbound, SIGNATURE_SEPARATOR};

use crate::client::{ChatAnswer, ChatStream, EmbeddingAnswer, StreamEvent, Target};
use crate::common;
use crate::common::{
    Translate, delta_chunk, path_segment, translate_sse, unix_now, usage_chunk, usage_json,
};
use crate::error::ProviderError;
use crate::transport::{Answer, Http, Outgoing};
use crate::types::{ChatRequest, EmbeddingRequest};
use base64::Engine as _;
use bytes::Bytes;
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::{Value, json};
use tollgate_core::money::TokenUsage;
use wire::{
    CountTokensResponse, EmbedResponse, GenerateContentRequest, GenerateContentResponse,
    UsageMetadata,
};

/// `{base}/v1beta/models/{model}:{method}`, accepting a base URL that
/// already ends with an API version. The model is one encoded path segment
/// (a `models/` or `tunedModels/` prefix is kept as the collection): a
/// client-chosen name such as `gemini/../../escape` must not reach another
/// path of the provider with the platform's key.
fn endpoint(base_url: &str, model: &str, method: &str) -> Result<String, ProviderError> {
    let base = base_url.trim_end_matches('/');
    let base = if base.ends_with("/v1beta") || base.ends_with("/v1") {
        base.to_owned()
    } else {
        format!("{base}/v1beta")
    };
    let (collection, name) = match model.split_once('/') {
        Some((collection @ ("models" | "tunedModels"), name)) => (collection, name),
        _ => ("models", model),
    };
    let name = path_segment(name, "model")?;
    Ok(format!("{base}/{collection}/{name}:{method}"))
}

fn model_name(model: &str) -> String {
    if model.contains('/') {
        model.to_owned()
    } else {
        format!("models/{model}")
    }
}

async fn send<T: Serialize>(
    http: &Http,
    target: &Target<'_>,
    url: String,
    body: &T,
) -> Result<Answer, ProviderError> {
    let mut request = Outgoing::post(url).json(body)?;
    if let Some(key) = target.api_key {
        request = request.key("x-goog-api-key", key.expose_secret())?;
    }
    common::post(http, target, request).await
}

fn build(
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<GenerateContentRequest, ProviderError> {
    GenerateContentRequest::try_from(Outbound {
        request,
        model: target.upstream_model,
    })
}

pub(crate) async fn chat(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<ChatAnswer, ProviderError> {
    let body = build(target, request)?;
    let url = endpoint(target.base_url, target.upstream_model, "generateContent")?;
    let response = send(http, target, url, &body).await?;
    let bytes = response.bytes().await?;
    let answer: GenerateContentResponse = serde_json::from_slice(&bytes)
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    let (completion, usage) = completion_from_response(&answer, target.upstream_model, unix_now())?;
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
    let body = build(target, request)?;
    let url = endpoint(
        target.base_url,
        target.upstream_model,
        "streamGenerateContent",
    )? + "?alt=sse";
    let response = send(http, target, url, &body).await?;
    let key = target.api_key.map(|k| k.expose_secret().to_owned());
    translate_sse(response, StreamTranslator::new(target.upstream_model, key)).await
}

/// The prompt tokens of a chat request, by Gemini's `countTokens`.
pub(crate) async fn count_tokens(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<i64, ProviderError> {
    let built = build(target, request)?;
    // countTokens takes the whole request under `generateContentRequest`
    // (with its model); `contents` alone would leave out the system text
    // and tools.
    let mut inner =
        serde_json::to_value(&built).map_err(|e| ProviderError::InvalidRequest(e.to_string()))?;
    if let Some(map) = inner.as_object_mut() {
        map.insert("model".into(), json!(model_name(target.upstream_model)));
    }
    let body = json!({"generateContentRequest": inner});
    total_tokens(http, target, target.upstream_model, &body).await
}

/// `countTokens` of `model` for this body.
async fn total_tokens(
    http: &Http,
    target: &Target<'_>,
    model: &str,
    body: &Value,
) -> Result<i64, ProviderError> {
    let url = endpoint(target.base_url, model, "countTokens")?;
    let response = send(http, target, url, body).await?;
    let bytes = response.bytes().await?;
    serde_json::from_slice::<CountTokensResponse>(&bytes)
        .map(|c| c.total_tokens)
        .map_err(|e| ProviderError::InvalidResponse(e.to_string()))
}

/// Gemini's token counts in OpenAI's convention: tool-use prompt tokens are
/// prompt tokens, thinking tokens are completion tokens.
pub fn token_usage(usage: &UsageMetadata) -> TokenUsage {
    TokenUsage {
        prompt_tokens: usage.prompt_token_count + usage.tool_use_prompt_token_count,
        completion_tokens: usage.candidates_token_count + usage.thoughts_token_count,
        cached_prompt_tokens: usage.cached_content_token_count,
        cache_write_tokens: 0,
    }
}

/// Finish reasons that mean a safety or policy filter stopped the answer.
fn is_filtered(reason: &str) -> bool {
    matches!(
        reason,
        "SAFETY"
            | "RECITATION"
            | "BLOCKLIST"
            | "PROHIBITED_CONTENT"
            | "SPII"
            | "IMAGE_SAFETY"
            | "LANGUAGE"
    )
}

/// Gemini's `finishReason` as an OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, called_tools: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        r if is_filtered(r) => "content_filter",
        _ if called_tools => "tool_calls",
        _ => "stop",
    }
}

/// A blocked prompt (`promptFeedback.blockReason`) as an error.
fn blocked_prompt(answer: &GenerateContentResponse) -> Option<ProviderError> {
    let feedback = answer.prompt_feedback.as_ref()?;
    if feedback.block_reason.is_none() && !answer.candidates.is_empty() {
        return None;
    }
    if feedback.block_reason.is_none() && feedback.block_reason_message.is_none() {
        return None;
    }
    let reason = feedback.block_reason.as_deref().unwrap_or("BLOCKED");
    let mut message = format!("Gemini blocked the prompt (blockReason {reason})");
    if let Some(detail) = &feedback.block_reason_message {
        message.push_str(": ");
        message.push_str(detail);
    }
    Some(ProviderError::Blocked(message))
}

fn blocked_answer(reason: &str, detail: Option<&str>) -> ProviderError {
    let mut message = format!("Gemini blocked the answer (finishReason {reason})");
    if let Some(detail) = detail {
        message.push_str(": ");
        message.push_str(detail);
    }
    ProviderError::Blocked(message)
}

/// A tool call id carrying the part's thought signature, if any.
fn tool_call_id(n: usize, id: Option<&str>, signature: Option<&str>) -> String {
    let id = id.map_or_else(|| format!("call_{n}"), str::to_owned);
    match signature {
        Some(sig) => format!("{id}{SIGNATURE_SEPARATOR}{sig}"),
        None => id,
    }
}

/// A complete `generateContent` answer as an OpenAI `chat.completion`.
pub fn completion_from_response(
    answer: &GenerateContentResponse,
    model: &str,
    created: u64,
) -> Result<(Value, TokenUsage), ProviderError> {
    if let Some(error) = blocked_prompt(answer) {
        return Err(error);
    }
    let candidate = answer
        .candidates
        .first()
        .ok_or_else(|| ProviderError::InvalidResponse("answer has no candidates".into()))?;
    let mut text = String::new();
    let mut thoughts = String::new();
    let mut tool_calls = Vec::new();
    for part in candidate.content.iter().flat_map(|c| &c.parts) {
        if let Some(call) = &part.function_call {
            tool_calls.push(json!({
                "id": tool_call_id(tool_calls.len(), call.id.as_deref(), part.thought_signature.as_deref()),
                "type": "function",
                "function": {"name": call.name, "arguments": call.args.clone().unwrap_or_else(|| json!({})).to_string()},
            }));
        } else if let Some(t) = &part.text {
            if part.thought == Some(true) {
                thoughts.push_str(t);
            } else {
                text.push_str(t);
            }
        }
    }
    let reason = candidate.finish_reason.as_deref().unwrap_or("STOP");
    if is_filtered(reason) && text.is_empty() && tool_calls.is_empty() {
        return Err(blocked_answer(reason, candidate.finish_message.as_deref()));
    }
    let metadata = answer.usage_metadata.unwrap_or_default();
    let usage = token_usage(&metadata);
    let mut message = json!({
        "role": "assistant",
        "content": if text.is_empty() && !tool_calls.is_empty() { Value::Null } else { Value::String(text) },
        "refusal": null,
    });
    if let Some(map) = message.as_object_mut() {
        if !tool_calls.is_empty() {
            map.insert("tool_calls".into(), Value::Array(tool_calls.clone()));
        }
        if !thoughts.is_empty() {
            map.insert("reasoning_content".into(), Value::String(thoughts));
        }
    }
    let completion = json!({
        "id": answer.response_id.as_deref().map_or_else(|| "chatcmpl-gemini".to_owned(), |id| format!("chatcmpl-{id}")),
        "object": "chat.completion",
        "created": created,
        "model": answer.model_version.as_deref().unwrap_or(model),
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": finish_reason(reason, !tool_calls.is_empty()),
        }],
        "usage": usage_json(&usage, metadata.thoughts_token_count),
    });
    Ok((completion, usage))
}

/// Translates `streamGenerateContent?alt=sse` chunks into OpenAI chunks.
/// Gemini ends the stream by closing it after a chunk with a `finishReason`;
/// only then do the usage chunk and `Done` follow.
pub struct StreamTranslator {
    id: String,
    model: String,
    created: u64,
    sent_role: bool,
    emitted: bool,
    tool_calls: usize,
    finished: bool,
    usage: Option<UsageMetadata>,
    key: Option<String>,
}

impl StreamTranslator {
    pub fn new(model: &str, key: Option<String>) -> StreamTranslator {
        StreamTranslator {
            id: "chatcmpl-gemini".to_owned(),
            model: model.to_owned(),
            created: unix_now(),
            sent_role: false,
            emitted: false,
            tool_calls: 0,
            finished: false,
            usage: None,
            key,
        }
    }

    fn chunk(&mut self, mut delta: Value, finish: Option<&str>) -> StreamEvent {
        if !self.sent_role {
            self.sent_role = true;
            if let Some(map) = delta.as_object_mut() {
                map.insert("role".into(), json!("assistant"));
            }
        }
        delta_chunk(&self.id, &self.model, self.created, delta, finish)
    }

    fn scrubbed(&self, message: &str) -> String {
        match &self.key {
            Some(k) if !k.is_empty() => message.replace(k.as_str(), "*****"),
            _ => message.to_owned(),
        }
    }

    /// Translates one chunk (one SSE `data`).
    pub fn translate(&mut self, data: &str, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        let answer: GenerateContentResponse = match serde_json::from_str(data) {
            Ok(a) => a,
            Err(e) => {
                out.push(Err(ProviderError::InvalidResponse(format!(
                    "bad stream chunk: {e}"
                ))));
                return;
            }
        };
        if let Some(error) = &answer.error {
            out.push(Err(ProviderError::Status {
                status: error.code.unwrap_or(500),
                message: self.scrubbed(&error.message),
                retry_after: None,
            }));
            return;
        }
        if let Some(usage) = answer.usage_metadata {
            self.usage = Some(usage);
        }
        if let Some(id) = &answer.response_id {
            self.id = format!("chatcmpl-{id}");
        }
        if let Some(version) = &answer.model_version {
            self.model.clone_from(version);
        }
        if let Some(error) = blocked_prompt(&answer) {
            out.push(Err(error));
            return;
        }
        let Some(candidate) = answer.candidates.first() else {
            return;
        };
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            let delta = if let Some(call) = &part.function_call {
                let n = self.tool_calls;
                self.tool_calls += 1;
                json!({"tool_calls": [{"index": n, "type": "function",
                    "id": tool_call_id(n, call.id.as_deref(), part.thought_signature.as_deref()),
                    "function": {"name": call.name,
                        "arguments": call.args.clone().unwrap_or_else(|| json!({})).to_string()}}]})
            } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                if part.thought == Some(true) {
                    json!({"reasoning_content": text})
                } else {
                    json!({"content": text})
                }
            } else {
                continue;
            };
            self.emitted = true;
            let event = self.chunk(delta, None);
            out.push(Ok(event));
        }
        if let Some(reason) = candidate.finish_reason.as_deref() {
            if is_filtered(reason) && !self.emitted {
                out.push(Err(blocked_answer(
                    reason,
                    candidate.finish_message.as_deref(),
                )));
                return;
            }
            self.finished = true;
            let finish = finish_reason(reason, self.tool_calls > 0);
            let event = self.chunk(json!({}), Some(finish));
            out.push(Ok(event));
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

    fn end(&mut self, out: &mut Vec<Result<StreamEvent, ProviderError>>) {
        if !self.finished {
            return;
        }
        let metadata = self.usage.unwrap_or_default();
        out.push(Ok(usage_chunk(
            &self.id,
            &self.model,
            self.created,
            token_usage(&metadata),
            metadata.thoughts_token_count,
        )));
        out.push(Ok(StreamEvent::Done));
    }
}

// -------------------------------------------------------------- embeddings

/// The texts of an OpenAI embeddings `input` (Gemini takes text only).
fn embedding_texts(input: &Value) -> Result<Vec<&str>, ProviderError> {
    let refuse = || {
        ProviderError::InvalidRequest(
            "`input` must be a string or an array of strings for a Gemini embedding model".into(),
        )
    };
    match input {
        Value::String(s) => Ok(vec![s.as_str()]),
        Value::Array(items) => items
            .iter()
            .map(|i| i.as_str().ok_or_else(refuse))
            .collect(),
        _ => Err(refuse()),
    }
}

fn embed_item(model: &str, text: &str, request: &EmbeddingRequest) -> Value {
    let mut item = json!({"model": model_name(model), "content": {"parts": [{"text": text}]}});
    if let Some(map) = item.as_object_mut() {
        if let Some(d) = request.extra.get("dimensions").filter(|d| d.is_number()) {
            map.insert("outputDimensionality".into(), d.clone());
        }
        if let Some(t) = request
            .extra
            .get("task_type")
            .or_else(|| request.extra.get("taskType"))
        {
            map.insert("taskType".into(), t.clone());
        }
    }
    item
}

pub(crate) async fn embed(
    http: &Http,
    target: &Target<'_>,
    request: &EmbeddingRequest,
) -> Result<EmbeddingAnswer, ProviderError> {
    let texts = embedding_texts(&request.input)?;
    let model = target.upstream_model;
    let embedded = async {
        let response = if let [text] = texts.as_slice() {
            let body = embed_item(model, text, request);
            send(
                http,
                target,
                endpoint(target.base_url, model, "embedContent")?,
                &body,
            )
            .await?
        } else {
            let requests: Vec<Value> = texts
                .iter()
                .map(|t| embed_item(model, t, request))
                .collect();
            let body = json!({"requests": requests});
            send(
                http,
                target,
                endpoint(target.base_url, model, "batchEmbedContents")?,
                &body,
            )
            .await?
        };
        let bytes = response.bytes().await?;
        serde_json::from_slice::<EmbedResponse>(&bytes)
            .map_err(|e| ProviderError::InvalidResponse(e.to_string()))
    };
    // The Gemini API reports no usage for embeddings: `countTokens` on the
    // same texts, at the same time, gives the billed input tokens.
    let counted = async {
        let contents: Vec<Value> = texts
            .iter()
            .map(|t| json!({"parts": [{"text": t}]}))
            .collect();
        let body = json!({"contents": contents});
        total_tokens(http, target, model, &body).await
    };
    let (embedded, counted) = futures::join!(embedded, counted);
    let embedded = embedded?;
    let tokens = match (embedded.usage_metadata, counted) {
        (Some(usage), _) if usage.prompt_token_count > 0 => usage.prompt_token_count,
        (_, Ok(tokens)) => tokens,
        (_, Err(e)) => {
            // Bill an upper bound rather than nothing: a token is at least a byte.
            tracing::warn!(error = %e, "Gemini countTokens failed; billing embeddings by bytes");
            texts
                .iter()
                .map(|t| i64::try_from(t.len()).unwrap_or(i64::MAX))
                .sum()
        }
    };
    let vectors: Vec<&wire::Embedding> = match &embedded.embedding {
        Some(one) => vec![one],
        None => embedded.embeddings.iter().collect(),
    };
    if vectors.len() != texts.len() {
        return Err(ProviderError::InvalidResponse(format!(
            "{} embeddings for {} inputs",
            vectors.len(),
            texts.len()
        )));
    }
    let base64 = request.extra.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, e)| {
            let embedding = if base64 {
                #[allow(clippy::cast_possible_truncation)]
                let bytes: Vec<u8> = e
                    .values
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                Value::String(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(e.values)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    Ok(EmbeddingAnswer {
        body: Bytes::from(body.to_string()),
        usage: TokenUsage {
            prompt_tokens: tokens,
            completion_tokens: 0,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        },
    })
}
