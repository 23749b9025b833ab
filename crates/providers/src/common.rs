//! What the native adapters share: turning a provider's SSE into OpenAI
//! chunks event by event, reading the first one before answering, and the
//! OpenAI JSON they all produce.

use crate::client::Target;
use crate::client::{ChatStream, StreamEvent};
use crate::error::ProviderError;
use crate::openai::error_from_response;
use crate::sse::{SseEvent, SseStream};
use crate::transport::{Answer, Http, Outgoing};
use bytes::Bytes;
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};
use tollgate_core::money::TokenUsage;

/// Sends `request`, which an adapter has addressed and authorised, as
/// `target`'s call: with the call's `traceparent`, and a non-2xx answer
/// read into the provider's error.
pub(crate) async fn post(
    http: &Http,
    target: &Target<'_>,
    mut request: Outgoing,
) -> Result<Answer, ProviderError> {
    if let Some(traceparent) = target.traceparent {
        request = request.header("traceparent", traceparent)?;
    }
    let response = http.send(request).await?;
    if response.status().is_success() {
        return Ok(response);
    }
    Err(error_from_response(target, response).await)
}

/// `value` as exactly one URL path segment: every byte outside RFC 3986's
/// unreserved set is percent-encoded, so a client's `/`, `..`, `?` or `#`
/// can never leave the provider's API path or add a query string (with the
/// platform's key attached). Empty and dot-only values have no meaning as a
/// name and are refused rather than encoded.
pub(crate) fn path_segment(value: &str, what: &str) -> Result<String, ProviderError> {
    if value.is_empty() || value.bytes().all(|b| b == b'.') {
        return Err(ProviderError::InvalidRequest(format!(
            "{what} `{value}` is not a valid name"
        )));
    }
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 0x0f)]));
        }
    }
    Ok(out)
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Translates one provider's stream into OpenAI chunk events.
pub(crate) trait Translate: Send + 'static {
    /// One SSE event (its `event:` name, empty when none, and its `data`).
    fn event(&mut self, name: &str, data: &str, out: &mut Vec<Result<StreamEvent, ProviderError>>);
    /// The provider closed the stream; whatever completes it (or nothing,
    /// when it ended early and the caller must treat it as cut).
    fn end(&mut self, out: &mut Vec<Result<StreamEvent, ProviderError>>);
}

/// The events of an SSE answer, translated as they arrive (never buffered
/// whole). Returns once the first translated event is there, so that an
/// error before it is an `Err` the router can fall back on.
pub(crate) async fn translate_sse<T: Translate>(
    response: Answer,
    translator: T,
) -> Result<ChatStream, ProviderError> {
    let events = SseStream::new(response.bytes_stream());
    let mut stream = translated(events, translator).boxed();
    match stream.next().await {
        Some(Ok(first)) => Ok(futures::stream::once(async move { Ok(first) })
            .chain(stream)
            .boxed()),
        Some(Err(e)) => Err(e),
        None => Err(ProviderError::InvalidResponse(
            "stream ended before any event".into(),
        )),
    }
}

struct State<S, T> {
    events: S,
    translator: T,
    pending: VecDeque<Result<StreamEvent, ProviderError>>,
    ended: bool,
}

fn translated<S, E, T>(
    events: S,
    translator: T,
) -> impl Stream<Item = Result<StreamEvent, ProviderError>> + Send
where
    S: Stream<Item = Result<SseEvent, E>> + Unpin + Send,
    E: std::fmt::Display,
    T: Translate,
{
    let state = State {
        events,
        translator,
        pending: VecDeque::new(),
        ended: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(item) = st.pending.pop_front() {
                if item.is_err() {
                    // Nothing follows a failure.
                    st.pending.clear();
                    st.ended = true;
                }
                return Some((item, st));
            }
            if st.ended {
                return None;
            }
            let mut out = Vec::new();
            match st.events.next().await {
                Some(Ok(event)) => st.translator.event(&event.event, &event.data, &mut out),
                Some(Err(e)) => {
                    out.push(Err(ProviderError::InvalidResponse(e.to_string())));
                }
                None => {
                    st.translator.end(&mut out);
                    st.ended = true;
                }
            }
            st.pending.extend(out);
        }
    })
}

/// A `chat.completion.chunk` event with one choice.
pub(crate) fn delta_chunk(
    id: &str,
    model: &str,
    created: u64,
    delta: Value,
    finish_reason: Option<&str>,
) -> StreamEvent {
    let data = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    StreamEvent::Chunk {
        data: Bytes::from(data.to_string()),
        usage: None,
        usage_only: false,
    }
}

/// The last chunk of a stream: no choices, the call's usage.
pub(crate) fn usage_chunk(
    id: &str,
    model: &str,
    created: u64,
    usage: TokenUsage,
    reasoning_tokens: i64,
) -> StreamEvent {
    let data = json!({
        "id": id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [],
        "usage": usage_json(&usage, reasoning_tokens),
    });
    StreamEvent::Chunk {
        data: Bytes::from(data.to_string()),
        usage: Some(usage),
        usage_only: true,
    }
}

/// OpenAI's `usage` object for a call's token counts.
/// Tokens written to the prompt cache have no OpenAI field; they go in
/// `cache_creation_input_tokens`, as LiteLLM reports them.
pub(crate) fn usage_json(usage: &TokenUsage, reasoning_tokens: i64) -> Value {
    let mut json = json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total(),
        "prompt_tokens_details": {"cached_tokens": usage.cached_prompt_tokens},
        "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
    });
    if usage.cache_write_tokens > 0
        && let Some(map) = json.as_object_mut()
    {
        map.insert(
            "cache_creation_input_tokens".into(),
            json!(usage.cache_write_tokens),
        );
    }
    json
}

/// The text of a Chat answer's `message` (its `content` as a string, or
/// its text parts joined); empty when there is none.
pub(crate) fn message_text(message: Option<&Value>) -> String {
    match message.and_then(|m| m.get("content")) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect(),
        _ => String::new(),
    }
}

/// A `data:` URL's media type and base64 payload (`data:image/png;base64,…`).
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((
        if media_type.is_empty() {
            "application/octet-stream"
        } else {
            media_type
        },
        data,
    ))
}

/// A tool call's `arguments` (a JSON text) as a JSON object.
pub(crate) fn arguments_object(arguments: &Value, at: &str) -> Result<Value, ProviderError> {
    match arguments {
        Value::Null => Ok(json!({})),
        Value::Object(_) => Ok(arguments.clone()),
        Value::String(s) if s.trim().is_empty() => Ok(json!({})),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err(ProviderError::InvalidRequest(format!(
                "`{at}` must be a JSON object encoded as a string"
            ))),
        },
        _ => Err(ProviderError::InvalidRequest(format!(
            "`{at}` must be a JSON object encoded as a string"
        ))),
    }
}

/// The OpenAI `stop` parameter as a list of sequences.
pub(crate) fn stop_sequences(stop: Option<&Value>) -> Option<Vec<Value>> {
    match stop? {
        Value::String(s) => Some(vec![Value::String(s.clone())]),
        Value::Array(items) if !items.is_empty() => Some(items.clone()),
        _ => None,
    }
}

/// The `function` object and name of an OpenAI `tools[i]` entry, which a
/// native adapter can only send on as a function declaration; `family`
/// names the provider family in the error ("an Anthropic model").
pub(crate) fn function_tool<'a>(
    i: usize,
    tool: &'a Value,
    family: &str,
) -> Result<(&'a Value, &'a str), ProviderError> {
    let function = tool
        .get("function")
        .filter(|_| {
            tool.get("type")
                .and_then(Value::as_str)
                .unwrap_or("function")
                == "function"
        })
        .ok_or_else(|| {
            ProviderError::InvalidRequest(format!(
                "`tools[{i}]` must be a function tool for {family}"
            ))
        })?;
    let name = function
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            ProviderError::InvalidRequest(format!("`tools[{i}].function.name` is missing"))
        })?;
    Ok((function, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_cannot_leave_their_segment() {
        assert_eq!(
            path_segment("gemini-2.5-flash", "model").unwrap(),
            "gemini-2.5-flash"
        );
        assert_eq!(
            path_segment("../../escape", "model").unwrap(),
            "..%2F..%2Fescape"
        );
        assert_eq!(
            path_segment("x?key=abc&", "model").unwrap(),
            "x%3Fkey%3Dabc%26"
        );
        assert_eq!(path_segment("a#b%2e c", "model").unwrap(), "a%23b%252e%20c");
        assert_eq!(path_segment("é", "model").unwrap(), "%C3%A9");
        for refused in ["", ".", ".."] {
            assert!(matches!(
                path_segment(refused, "model"),
                Err(ProviderError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn data_urls_split_into_media_type_and_payload() {
        assert_eq!(
            parse_data_url("data:image/png;base64,iVBORw0KGgo="),
            Some(("image/png", "iVBORw0KGgo="))
        );
        assert_eq!(parse_data_url("https://example.com/a.png"), None);
        assert_eq!(parse_data_url("data:text/plain,hello"), None);
    }

    #[test]
    fn arguments_must_be_an_object() {
        assert_eq!(
            arguments_object(&json!("{\"a\":1}"), "x").unwrap(),
            json!({"a": 1})
        );
        assert_eq!(arguments_object(&json!(""), "x").unwrap(), json!({}));
        assert!(arguments_object(&json!("[1]"), "x").is_err());
    }
}
