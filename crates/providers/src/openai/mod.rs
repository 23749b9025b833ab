//! The `openai` kind: OpenAI and every OpenAI-compatible API (DeepSeek, Groq,
//! Together, Fireworks, OpenRouter, DeepInfra, Mistral, vLLM, Ollama, …).
//! Requests and answers are already in Tollgate's format, so the adapter
//! renames the model, asks for streamed usage, and reads the usage back.

pub(crate) mod responses;

use crate::client::{ChatAnswer, ChatStream, EmbeddingAnswer, StreamEvent, Target};
use crate::common;
use crate::error::ProviderError;
use crate::sse::SseStream;
use crate::transport::{Answer, Http, Outgoing};
use crate::types::{ChatMessage, ChatRequest, EmbeddingRequest, StreamOptions};
use bytes::Bytes;
use futures::StreamExt;
use secrecy::ExposeSecret;
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tollgate_core::money::TokenUsage;

/// The body sent upstream: the client's request with the provider's model
/// name, borrowed rather than copied.
#[derive(Serialize)]
struct OutgoingChat<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<i64>,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct OutgoingEmbedding<'a> {
    model: &'a str,
    input: &'a Value,
    #[serde(flatten)]
    extra: &'a Map<String, Value>,
}

/// OpenAI's `usage` object (chat and embeddings).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WireUsage {
    #[serde(default)]
    prompt_tokens: i64,
    #[serde(default)]
    completion_tokens: i64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptTokensDetails>,
}

#[derive(Debug, Default, Deserialize)]
struct PromptTokensDetails {
    #[serde(default)]
    cached_tokens: Option<i64>,
}

impl From<WireUsage> for TokenUsage {
    fn from(u: WireUsage) -> TokenUsage {
        TokenUsage {
            cache_write_tokens: 0,
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_prompt_tokens: u
                .prompt_tokens_details
                .and_then(|d| d.cached_tokens)
                .unwrap_or(0),
        }
    }
}

/// Only the parts of an answer Tollgate reads; the rest is passed on as sent.
#[derive(Deserialize)]
struct ChunkProbe {
    #[serde(default)]
    choices: Vec<IgnoredAny>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

// `concat` rather than `format!` on every call: the formatting machinery
// costs several times more for a plain join.
fn endpoint(target: &Target<'_>, path: &str) -> String {
    [target.base_url, "/", path].concat()
}

async fn send<T: Serialize>(
    http: &Http,
    target: &Target<'_>,
    path: &str,
    body: &T,
) -> Result<Answer, ProviderError> {
    let mut request = Outgoing::post(endpoint(target, path)).json(body)?;
    if let Some(key) = target.api_key {
        request = request.key("authorization", &["Bearer ", key.expose_secret()].concat())?;
    }
    common::post(http, target, request).await
}

/// Turns an error answer into a `ProviderError` keeping the provider's
/// message, with the key scrubbed should the provider echo it.
pub(crate) async fn error_from_response(target: &Target<'_>, response: Answer) -> ProviderError {
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(http::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let text = response.text().await;
    ProviderError::Status {
        status,
        message: scrub(target, &error_message(&text)),
        retry_after,
    }
}

/// The `error.message` of an OpenAI-style error body, else the body itself (truncated).
pub(crate) fn error_message(body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let e = v.get("error")?;
        e.get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| e.as_str().map(str::to_owned))
    });
    from_json.unwrap_or_else(|| body.chars().take(500).collect())
}

/// Removes the key from a provider message, whatever the provider echoed.
pub(crate) fn scrub(target: &Target<'_>, message: &str) -> String {
    match target.api_key {
        Some(key) if !key.expose_secret().is_empty() => {
            message.replace(key.expose_secret(), "*****")
        }
        _ => message.to_owned(),
    }
}

pub(crate) async fn chat(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<ChatAnswer, ProviderError> {
    let body = OutgoingChat {
        model: target.upstream_model,
        messages: &request.messages,
        stream: false,
        stream_options: None,
        max_tokens: request.max_tokens,
        max_completion_tokens: request.max_completion_tokens,
        extra: &request.extra,
    };
    let response = send(http, target, "chat/completions", &body).await?;
    let (body, usage) = body_and_usage::<WireUsage>(response).await?;
    Ok(ChatAnswer { body, usage })
}

pub(crate) async fn chat_stream(
    http: &Http,
    target: &Target<'_>,
    request: &ChatRequest,
) -> Result<ChatStream, ProviderError> {
    let body = OutgoingChat {
        model: target.upstream_model,
        messages: &request.messages,
        stream: true,
        // Always ask for usage: billing settles from it.
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        max_tokens: request.max_tokens,
        max_completion_tokens: request.max_completion_tokens,
        extra: &request.extra,
    };
    let response = send(http, target, "chat/completions", &body).await?;
    let mut events = SseStream::new(response.bytes_stream());
    let first = match events.next().await {
        Some(Ok(event)) => parse_event_data(event.data)?,
        Some(Err(e)) => return Err(ProviderError::InvalidResponse(e.to_string())),
        None => {
            return Err(ProviderError::InvalidResponse(
                "stream ended before any event".into(),
            ));
        }
    };
    let rest = events.map(|item| match item {
        Ok(event) => parse_event_data(event.data),
        Err(e) => Err(ProviderError::InvalidResponse(e.to_string())),
    });
    Ok(futures::stream::once(async move { Ok(first) })
        .chain(rest)
        .boxed())
}

/// Reads one SSE `data` payload of an OpenAI stream.
#[cfg(test)]
pub(crate) fn parse_event(data: &str) -> Result<StreamEvent, ProviderError> {
    parse_event_data(data.to_owned())
}

/// Reads one SSE `data` payload of an OpenAI stream, keeping it (uncopied)
/// as the chunk to relay.
fn parse_event_data(data: String) -> Result<StreamEvent, ProviderError> {
    if data.trim() == "[DONE]" {
        return Ok(StreamEvent::Done);
    }
    let probe: ChunkProbe =
        serde_json::from_str(&data).map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    if let Some(error) = probe.error {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("provider error in stream")
            .to_owned();
        return Err(ProviderError::Status {
            status: 502,
            message,
            retry_after: None,
        });
    }
    Ok(StreamEvent::Chunk {
        usage_only: probe.usage.is_some() && probe.choices.is_empty(),
        usage: probe.usage.map(Into::into),
        data: Bytes::from(data),
    })
}

pub(crate) async fn embed(
    http: &Http,
    target: &Target<'_>,
    request: &EmbeddingRequest,
) -> Result<EmbeddingAnswer, ProviderError> {
    let body = OutgoingEmbedding {
        model: target.upstream_model,
        input: &request.input,
        extra: &request.extra,
    };
    let response = send(http, target, "embeddings", &body).await?;
    let (body, usage) = body_and_usage::<WireUsage>(response).await?;
    Ok(EmbeddingAnswer { body, usage })
}

/// A complete answer's body, passed on as sent, and the usage it reports
/// (`usage`, of the wire type `U`: Chat's or Responses').
pub(super) async fn body_and_usage<U>(
    response: Answer,
) -> Result<(Bytes, TokenUsage), ProviderError>
where
    U: serde::de::DeserializeOwned + Into<TokenUsage>,
{
    #[derive(Deserialize)]
    #[serde(bound = "U: serde::de::DeserializeOwned")]
    struct Probe<U> {
        #[serde(default = "Option::default")]
        usage: Option<U>,
    }
    let body = response.bytes().await?;
    let probe: Probe<U> =
        serde_json::from_slice(&body).map_err(|e| ProviderError::InvalidResponse(e.to_string()))?;
    let usage = probe
        .usage
        .ok_or_else(|| ProviderError::InvalidResponse("answer has no usage".into()))?;
    Ok((body, usage.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // From OpenAI's API reference, "The chat completion chunk object".
    const CONTENT_CHUNK: &str = r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}"#;
    const USAGE_CHUNK: &str = r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":4}}}"#;

    #[test]
    fn the_model_goes_in_the_body_never_the_url() {
        let target = Target {
            provider: "openai",
            kind: tollgate_core::ProviderKind::OpenAi,
            base_url: "http://127.0.0.1:9/v1",
            api_key: None,
            upstream_model: "../../escape?key=abc&",
            max_output_tokens: 16,
            traceparent: None,
        };
        assert_eq!(
            endpoint(&target, "chat/completions"),
            "http://127.0.0.1:9/v1/chat/completions"
        );
    }

    #[test]
    fn content_chunk_passes_through_without_usage() {
        match parse_event(CONTENT_CHUNK).unwrap() {
            StreamEvent::Chunk {
                data,
                usage,
                usage_only,
            } => {
                assert_eq!(&data[..], CONTENT_CHUNK.as_bytes());
                assert!(usage.is_none());
                assert!(!usage_only);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn usage_chunk_is_recognised_with_cached_tokens() {
        match parse_event(USAGE_CHUNK).unwrap() {
            StreamEvent::Chunk {
                usage, usage_only, ..
            } => {
                assert!(usage_only);
                assert_eq!(
                    usage.unwrap(),
                    TokenUsage {
                        cache_write_tokens: 0,
                        prompt_tokens: 9,
                        completion_tokens: 12,
                        cached_prompt_tokens: 4
                    }
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn done_and_error_events() {
        assert!(matches!(parse_event("[DONE]").unwrap(), StreamEvent::Done));
        let err =
            parse_event(r#"{"error":{"message":"overloaded","type":"server_error"}}"#).unwrap_err();
        assert!(err.to_string().contains("overloaded"));
        assert!(parse_event("not json").is_err());
    }

    #[test]
    fn error_message_prefers_the_openai_error_field() {
        let body = r#"{"error":{"message":"Invalid model","type":"invalid_request_error","param":"model","code":null}}"#;
        assert_eq!(error_message(body), "Invalid model");
        assert_eq!(error_message("Bad Gateway"), "Bad Gateway");
    }
}
