//! OpenAI's Responses API (`POST {base_url}/responses`), for providers that
//! speak it natively: the body goes as Tollgate decoded it (model renamed),
//! the object and events come back as sent, with the usage billing needs
//! read from `usage` / the terminal event's `response.usage`.

use super::send;
use crate::client::{ChatAnswer, ChatStream, StreamEvent, Target};
use crate::error::ProviderError;
use crate::responses::native::{NativeRequest, WireUsage};
use crate::sse::SseStream;
use crate::transport::Http;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The body sent: the decoded request with the provider's model name.
#[derive(Serialize)]
struct Outgoing<'a> {
    model: &'a str,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(flatten)]
    body: &'a Map<String, Value>,
}

#[derive(Deserialize)]
struct EventProbe {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    response: Option<ResponseProbe>,
    /// An `error` event's message.
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct ResponseProbe {
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<Value>,
}

pub(crate) async fn respond(
    http: &Http,
    target: &Target<'_>,
    request: &NativeRequest,
) -> Result<ChatAnswer, ProviderError> {
    let body = Outgoing {
        model: target.upstream_model,
        stream: false,
        body: &request.body,
    };
    let response = send(http, target, "responses", &body).await?;
    let (body, usage) = super::body_and_usage::<WireUsage>(response).await?;
    Ok(ChatAnswer { body, usage })
}

/// Starts a streamed response; returns once the first event has arrived.
/// Each event is relayed as a chunk; the terminal one
/// (`response.completed` / `.incomplete`) carries the usage and ends the
/// stream (the Responses API sends no `[DONE]`).
pub(crate) async fn respond_stream(
    http: &Http,
    target: &Target<'_>,
    request: &NativeRequest,
) -> Result<ChatStream, ProviderError> {
    let body = Outgoing {
        model: target.upstream_model,
        stream: true,
        body: &request.body,
    };
    let response = send(http, target, "responses", &body).await?;
    let mut events = SseStream::new(response.bytes_stream()).map(|item| match item {
        Ok(event) => parse_event(event.data),
        Err(e) => vec![Err(ProviderError::InvalidResponse(e.to_string()))],
    });
    let first = match events.next().await {
        Some(first) => first,
        None => {
            return Err(ProviderError::InvalidResponse(
                "stream ended before any event".into(),
            ));
        }
    };
    if let Some(Err(_)) = first.first() {
        return Err(first
            .into_iter()
            .find_map(Result::err)
            .unwrap_or(ProviderError::InvalidResponse("bad first event".into())));
    }
    Ok(futures::stream::iter(first)
        .chain(events.flat_map(futures::stream::iter))
        .boxed())
}

/// One event's items: a chunk, plus the end after a terminal event; an
/// `error` or `response.failed` event breaks the stream.
fn parse_event(data: String) -> Vec<Result<StreamEvent, ProviderError>> {
    let probe: EventProbe = match serde_json::from_str(&data) {
        Ok(probe) => probe,
        Err(e) => return vec![Err(ProviderError::InvalidResponse(e.to_string()))],
    };
    let failed = |message: String| {
        vec![Err(ProviderError::Status {
            status: 502,
            message,
            retry_after: None,
        })]
    };
    match probe.kind.as_str() {
        "error" => failed(
            probe
                .message
                .unwrap_or_else(|| "provider error in stream".into()),
        ),
        "response.failed" => failed(
            probe
                .response
                .and_then(|r| r.error)
                .and_then(|e| e.get("message").and_then(Value::as_str).map(str::to_owned))
                .unwrap_or_else(|| "the provider's response failed".into()),
        ),
        "response.completed" | "response.incomplete" => {
            let usage = probe.response.and_then(|r| r.usage).map(Into::into);
            vec![
                Ok(StreamEvent::Chunk {
                    data: Bytes::from(data),
                    usage,
                    usage_only: false,
                }),
                Ok(StreamEvent::Done),
            ]
        }
        _ => vec![Ok(StreamEvent::Chunk {
            data: Bytes::from(data),
            usage: None,
            usage_only: false,
        })],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::money::TokenUsage;

    #[test]
    fn the_terminal_event_carries_the_usage_and_ends_the_stream() {
        let data = r#"{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":8},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":17}}}"#;
        let items = parse_event(data.to_owned());
        match &items[..] {
            [Ok(StreamEvent::Chunk { usage, .. }), Ok(StreamEvent::Done)] => assert_eq!(
                *usage,
                Some(TokenUsage {
                    prompt_tokens: 12,
                    completion_tokens: 5,
                    cached_prompt_tokens: 8,
                    cache_write_tokens: 0,
                })
            ),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deltas_pass_and_failures_break_the_stream() {
        let delta = r#"{"type":"response.output_text.delta","item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi","sequence_number":4}"#;
        assert!(matches!(
            &parse_event(delta.to_owned())[..],
            [Ok(StreamEvent::Chunk { usage: None, .. })]
        ));
        let failed = r#"{"type":"response.failed","response":{"error":{"code":"server_error","message":"overloaded"}}}"#;
        let err = parse_event(failed.to_owned()).remove(0).unwrap_err();
        assert!(err.to_string().contains("overloaded"));
        let error =
            r#"{"type":"error","code":"rate_limit","message":"slow down","sequence_number":1}"#;
        assert!(parse_event(error.to_owned()).remove(0).is_err());
    }
}
