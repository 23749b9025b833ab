//! The HTTP surface: routes, recording, faults, auth and the answers.
//!
//! Handlers take the whole request rather than extractors so that headers
//! are only copied when recording is on.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};
use base64::Engine as _;
use futures::{StreamExt as _, stream};
use serde::Serialize;

use crate::wire::{
    AssistantMessage, ChatCompletion, ChatRequest, Choice, Chunk, ChunkChoice, Delta, Embedding,
    EmbeddingList, EmbeddingRequest, EmbeddingUsage, EmbeddingVector, ErrorBody, ErrorDetail,
    InputItem, MODELS_LIST, SERVICE_TIER, SYSTEM_FINGERPRINT, Usage,
};
use crate::{Fault, RecordedRequest, Reply, Shared};

/// Largest request body read; larger ones get 413.
const BODY_LIMIT: usize = 64 * 1024 * 1024;
/// Largest `dimensions` accepted for embeddings.
const MAX_DIMENSIONS: u64 = 65_536;
const DEFAULT_DIMENSIONS: usize = 8;
/// Pause between the last bytes of a cut stream and the cut, so that they
/// are flushed to the client before the connection drops.
const CUT_GRACE: Duration = Duration::from_millis(20);

const INVALID_REQUEST: &str = "invalid_request_error";
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/models", get(models))
        .route("/v1/messages", post(crate::native::anthropic_messages))
        .route(
            "/v1/messages/count_tokens",
            post(crate::native::anthropic_count_tokens),
        )
        .route("/v1/responses", post(crate::responses::responses))
        .route("/v1beta/models/{target}", post(crate::native::gemini))
        .route("/v1/models/{target}", post(crate::native::gemini))
        // An OTLP/HTTP sink that counts spans, so that a load run can
        // measure tracing at 100% and check that every span arrived.
        .route(
            "/v1/traces",
            post(crate::otlp::export).get(crate::otlp::received),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(shared)
}

// ---------------------------------------------------------------- handlers

async fn chat(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body, cut) = match prelude_with(&s, req, true, openai_auth).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    let stall = parts.extensions.get::<Stall>().is_some();
    let slow = parts.extensions.get::<Slow>().copied();
    let req: ChatRequest<'_> = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return cut_or(cut, unparsable(&e)),
    };
    let Some(model) = req.model.as_deref() else {
        return cut_or(cut, no_model());
    };
    let prompt = match &req.messages {
        None => {
            return cut_or(
                cut,
                error(
                    StatusCode::BAD_REQUEST,
                    "Missing required parameter: 'messages'.",
                    INVALID_REQUEST,
                    Some("messages"),
                    Some("missing_required_parameter"),
                ),
            );
        }
        Some(prompt) if prompt.messages == 0 => {
            return cut_or(
                cut,
                error(
                    StatusCode::BAD_REQUEST,
                    "Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.",
                    INVALID_REQUEST,
                    Some("messages"),
                    Some("empty_array"),
                ),
            );
        }
        Some(prompt) => prompt,
    };
    let streaming = req.stream.unwrap_or(false);
    if cut.is_some() && !streaming {
        return aborted();
    }

    if let Some((name, arguments)) = crate::tools::called(
        req.tools.as_ref(),
        req.tool_choice.as_ref(),
        prompt.last_is_tool,
    ) {
        let n = s.next_id();
        let id = format!("chatcmpl-mock{n:012x}");
        let call = crate::tools::ToolCall {
            id: &id,
            call_id: format!("call_mock{n:012x}"),
            model,
            created: unix_now(),
            name,
            arguments,
            prompt_tokens: prompt.tokens(),
        };
        if !streaming {
            return with_request_id(json(StatusCode::OK, &call.completion()), &id);
        }
        let include_usage = req
            .stream_options
            .as_ref()
            .and_then(|o| o.include_usage)
            .unwrap_or(false);
        return with_request_id(sse(call.sse(include_usage), false), &id);
    }
    let reply = crate::native::reply_for(
        &s,
        req.response_format
            .as_ref()
            .and_then(|f| f.get("json_schema"))
            .and_then(|j| j.get("schema")),
    );
    let limit = match (req.max_tokens, req.max_completion_tokens) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let total = reply.words();
    let sent = limit.map_or(total, |l| {
        usize::try_from(l).unwrap_or(usize::MAX).min(total)
    });
    // Each of the `n` choices is the same reply; the usage counts them all,
    // as OpenAI's does.
    let choices = req.n.unwrap_or(1).clamp(1, 128);
    let plan = Answer {
        id: format!("chatcmpl-mock{:012x}", s.next_id()),
        choices,
        created: unix_now(),
        model,
        reply: &reply,
        sent,
        finish_reason: if sent < total { "length" } else { "stop" },
        usage: Usage::new(prompt.tokens(), sent as u64 * u64::from(choices)),
    };

    if !streaming {
        return with_request_id(json(StatusCode::OK, &plan.completion()), &plan.id);
    }
    let include_usage = req
        .stream_options
        .as_ref()
        .and_then(|o| o.include_usage)
        .unwrap_or(false);
    match plan.sse(include_usage, cut) {
        Ok(events) if stall => with_request_id(stalled_sse(s.as_ref(), events), &plan.id),
        Ok(events) => match slow {
            Some(Slow(gap)) => with_request_id(slow_sse(events, gap), &plan.id),
            None => with_request_id(sse(events, cut.is_some()), &plan.id),
        },
        Err(_) => internal_error(),
    }
}

async fn embeddings(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let (body, cut) = match prelude(&s, req, true).await {
        Ok(go_on) => go_on,
        Err(answer) => return answer,
    };
    if cut.is_some() {
        return aborted();
    }
    let req: EmbeddingRequest<'_> = match serde_json::from_slice(&body) {
        Ok(req) => req,
        Err(e) => return unparsable(&e),
    };
    let Some(model) = req.model.as_deref() else {
        return no_model();
    };
    let Some(input) = &req.input else {
        return error(
            StatusCode::BAD_REQUEST,
            "Missing required parameter: 'input'.",
            INVALID_REQUEST,
            Some("input"),
            Some("missing_required_parameter"),
        );
    };
    let items = input.items();
    if items.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "Invalid 'input': empty array. Expected an array with minimum length 1, but got an empty array instead.",
            INVALID_REQUEST,
            Some("input"),
            Some("empty_array"),
        );
    }
    let dimensions = match req.dimensions {
        None => DEFAULT_DIMENSIONS,
        Some(d) if (1..=MAX_DIMENSIONS).contains(&d) => d as usize,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid 'dimensions': must be between 1 and 65536.",
                INVALID_REQUEST,
                Some("dimensions"),
                Some("invalid_value"),
            );
        }
    };
    let base64 = match req.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "Invalid 'encoding_format': expected 'float' or 'base64'.",
                INVALID_REQUEST,
                Some("encoding_format"),
                Some("invalid_value"),
            );
        }
    };

    let tokens = items.iter().map(InputItem::tokens).sum();
    let data = items
        .iter()
        .enumerate()
        .map(|(index, item)| {
            let vector = embedding_vector(item, dimensions);
            Embedding {
                object: "embedding",
                index,
                embedding: if base64 {
                    let bytes: Vec<u8> = vector.iter().flat_map(|x| x.to_le_bytes()).collect();
                    EmbeddingVector::Base64(base64::engine::general_purpose::STANDARD.encode(bytes))
                } else {
                    EmbeddingVector::Float(vector)
                },
            }
        })
        .collect();
    let list = EmbeddingList {
        object: "list",
        data,
        model,
        usage: EmbeddingUsage {
            prompt_tokens: tokens,
            total_tokens: tokens,
        },
    };
    let id = format!("req_mock{:012x}", s.next_id());
    with_request_id(json(StatusCode::OK, &list), &id)
}

async fn models(State(s): State<Arc<Shared>>, req: Request) -> Response {
    match prelude(&s, req, false).await {
        Ok(_) => raw_json(StatusCode::OK, Body::from(MODELS_LIST)),
        Err(answer) => answer,
    }
}

async fn not_found(State(s): State<Arc<Shared>>, req: Request) -> Response {
    invalid_url(&s, req, StatusCode::NOT_FOUND).await
}

async fn method_not_allowed(State(s): State<Arc<Shared>>, req: Request) -> Response {
    invalid_url(&s, req, StatusCode::METHOD_NOT_ALLOWED).await
}

async fn invalid_url(s: &Shared, req: Request, status: StatusCode) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    s.record(|| recorded(&parts, &body));
    wait(s.latency).await;
    let message = format!("Invalid URL ({} {})", parts.method, parts.uri.path());
    error(status, &message, INVALID_REQUEST, None, None)
}

// ------------------------------------------------- the common request path

/// Reads and records the request, applies its fault (when `takes_faults`)
/// and the latency, and checks auth. `Ok` carries the body and the
/// [`Fault::CutStreamAfter`] count, if that was the fault; `Err` is the
/// answer to send now.
async fn prelude(
    s: &Shared,
    req: Request,
    takes_faults: bool,
) -> Result<(Bytes, Option<usize>), Response> {
    prelude_with(s, req, takes_faults, openai_auth)
        .await
        .map(|(_, body, cut)| (body, cut))
}

/// The OpenAI check: `Authorization: Bearer <anything>`; the refusal, if any.
pub(crate) fn openai_auth(parts: &Parts) -> Option<Response> {
    if authorized(&parts.headers) {
        return None;
    }
    Some(error(
        StatusCode::UNAUTHORIZED,
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password field (with blank username) if you're accessing the API from your browser and are prompted for a username and password. You can obtain an API key from https://platform.openai.com/account/api-keys.",
        INVALID_REQUEST,
        None,
        None,
    ))
}

/// [`prelude`] with the provider's own auth check; `Ok` also carries the
/// request head.
pub(crate) async fn prelude_with(
    s: &Shared,
    req: Request,
    takes_faults: bool,
    auth: fn(&Parts) -> Option<Response>,
) -> Result<(Parts, Bytes, Option<usize>), Response> {
    let (mut parts, body) = req.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => {
            s.record(|| recorded(&parts, &[]));
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "Request body too large or unreadable.",
                INVALID_REQUEST,
                None,
                None,
            ));
        }
    };
    s.record(|| recorded(&parts, &body));

    let mut cut = None;
    match if takes_faults { s.take_fault() } else { None } {
        None => {}
        Some(Fault::Latency(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::CutStreamAfter(n)) => cut = Some(n),
        Some(Fault::StallStreamAfter(n)) => {
            cut = Some(n);
            parts.extensions.insert(Stall);
        }
        Some(Fault::SlowStream(gap)) => {
            parts.extensions.insert(Slow(gap));
        }
        Some(Fault::Hang) => {
            let mut shutdown = s.shutdown.subscribe();
            let _ = shutdown.wait_for(|down| *down).await;
            return Err(aborted());
        }
        Some(Fault::Status {
            status,
            body,
            retry_after,
        }) => {
            wait(s.latency).await;
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut answer = json(status, &body);
            if let Some(secs) = retry_after {
                answer
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            return Err(answer);
        }
    }
    wait(s.latency).await;

    if let Some(answer) = auth(&parts) {
        return Err(cut_or(cut, answer));
    }
    Ok((parts, body, cut))
}

pub(crate) async fn wait(latency: Duration) {
    // A zero sleep still waits for the next timer tick.
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

fn authorized(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    match value.split_once(' ') {
        Some((scheme, key)) => scheme.eq_ignore_ascii_case("bearer") && !key.trim().is_empty(),
        None => false,
    }
}

fn recorded(parts: &Parts, body: &[u8]) -> RecordedRequest {
    let text = |v: &HeaderValue| String::from_utf8_lossy(v.as_bytes()).into_owned();
    RecordedRequest {
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        authorization: parts.headers.get(header::AUTHORIZATION).map(text),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), text(value)))
            .collect(),
        body: if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(body).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(body).into_owned())
            })
        },
    }
}

// ------------------------------------------------------------ chat answers

/// Everything a chat answer, plain or streamed, is made of.
struct Answer<'a> {
    id: String,
    created: u64,
    model: &'a str,
    reply: &'a Reply,
    /// How many choices a plain answer has (a stream always has one).
    choices: u32,
    /// How many reply words are sent.
    sent: usize,
    finish_reason: &'static str,
    usage: Usage,
}

impl Answer<'_> {
    fn completion(&self) -> ChatCompletion<'_> {
        ChatCompletion {
            id: &self.id,
            object: "chat.completion",
            created: self.created,
            model: self.model,
            choices: (0..self.choices)
                .map(|index| Choice {
                    index,
                    message: AssistantMessage {
                        role: "assistant",
                        content: self.reply.prefix(self.sent),
                        refusal: (),
                        annotations: [],
                    },
                    logprobs: (),
                    finish_reason: self.finish_reason,
                })
                .collect(),
            usage: self.usage,
            service_tier: SERVICE_TIER,
            system_fingerprint: SYSTEM_FINGERPRINT,
        }
    }

    fn chunk<'c>(
        &'c self,
        choices: &'c [ChunkChoice<'c>],
        usage: Option<Option<Usage>>,
    ) -> Chunk<'c> {
        Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: self.model,
            service_tier: SERVICE_TIER,
            system_fingerprint: SYSTEM_FINGERPRINT,
            choices,
            usage,
        }
    }

    /// All the SSE events of the stream, in one buffer; with `cut`, only the
    /// role chunk and at most `cut` content chunks.
    fn sse(&self, include_usage: bool, cut: Option<usize>) -> serde_json::Result<Vec<u8>> {
        let null_usage = include_usage.then_some(None);
        let mut events = Vec::with_capacity(320 * (self.sent + 4));
        let delta_chunk = |events: &mut Vec<u8>, delta: Delta<'_>, finish: Option<&str>| {
            let choice = [ChunkChoice {
                index: 0,
                delta,
                logprobs: (),
                finish_reason: finish,
            }];
            push_event(events, &self.chunk(&choice, null_usage))
        };

        let role = Delta {
            role: Some("assistant"),
            content: Some(""),
        };
        delta_chunk(&mut events, role, None)?;
        let content_chunks = cut.map_or(self.sent, |n| n.min(self.sent));
        for i in 0..content_chunks {
            let content = Delta {
                role: None,
                content: Some(self.reply.delta(i)),
            };
            delta_chunk(&mut events, content, None)?;
        }
        if cut.is_some() {
            return Ok(events);
        }
        delta_chunk(&mut events, Delta::default(), Some(self.finish_reason))?;
        if include_usage {
            push_event(&mut events, &self.chunk(&[], Some(Some(self.usage))))?;
        }
        events.extend_from_slice(b"data: [DONE]\n\n");
        Ok(events)
    }
}

fn push_event<T: Serialize>(events: &mut Vec<u8>, chunk: &T) -> serde_json::Result<()> {
    events.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *events, chunk)?;
    events.extend_from_slice(b"\n\n");
    Ok(())
}

/// Marks a request whose stream stalls ([`Fault::StallStreamAfter`]).
#[derive(Clone, Copy)]
struct Stall;

/// A stream that sends `events`, then nothing more until the mock stops.
fn stalled_sse(s: &Shared, events: Vec<u8>) -> Response {
    let mut shutdown = s.shutdown.subscribe();
    let mut response = sse(Vec::new(), false);
    *response.body_mut() = Body::from_stream(
        stream::iter([Ok::<_, io::Error>(Bytes::from(events))]).chain(stream::once(async move {
            let _ = shutdown.wait_for(|down| *down).await;
            Err(io::Error::other(
                "mock provider: stalled stream ended (fault)",
            ))
        })),
    );
    response
}

/// Marks a request whose stream is slow ([`Fault::SlowStream`]).
#[derive(Clone, Copy)]
struct Slow(Duration);

/// A stream that sends each of `events` (`data: …\n\n`) `gap` after the
/// one before.
fn slow_sse(events: Vec<u8>, gap: Duration) -> Response {
    let events: Vec<Bytes> = events
        .split_inclusive(|&b| b == b'\n')
        .collect::<Vec<_>>()
        .chunks(2)
        .map(|event| Bytes::from(event.concat()))
        .collect();
    let mut response = sse(Vec::new(), false);
    *response.body_mut() = Body::from_stream(stream::iter(events).then(move |event| async move {
        tokio::time::sleep(gap).await;
        Ok::<_, io::Error>(event)
    }));
    response
}

/// A `text/event-stream` answer sent with chunked encoding, as OpenAI does;
/// when `cut`, the connection drops after the events.
pub(crate) fn sse(events: Vec<u8>, cut: bool) -> Response {
    let events = stream::iter([Ok::<_, io::Error>(Bytes::from(events))]);
    let body = if cut {
        Body::from_stream(events.chain(stream::once(async {
            tokio::time::sleep(CUT_GRACE).await;
            Err(io::Error::other("mock provider: stream cut (fault)"))
        })))
    } else {
        Body::from_stream(events)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// -------------------------------------------------------------- embeddings

/// A unit vector of `dimensions` floats that depends only on the input.
pub(crate) fn embedding_vector(item: &InputItem<'_>, dimensions: usize) -> Vec<f32> {
    const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
    let fnv = |hash: u64, bytes: &[u8]| {
        bytes
            .iter()
            .fold(hash, |h, &b| (h ^ u64::from(b)).wrapping_mul(FNV_PRIME))
    };
    let seed = match item {
        InputItem::Text(text) => fnv(FNV_OFFSET, text.as_bytes()),
        InputItem::Tokens(ids) => ids.iter().fold(fnv(FNV_OFFSET, b"tokens:"), |h, id| {
            fnv(h, &id.to_le_bytes())
        }),
    };
    let mut vector: Vec<f32> = (0..dimensions as u64)
        .map(|d| {
            let bits = splitmix64(seed ^ d.wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 40;
            (bits as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ------------------------------------------------------- response helpers

pub(crate) fn raw_json(status: StatusCode, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    // A chat completion is ~600 bytes: one allocation, no regrowth.
    let mut bytes = Vec::with_capacity(1024);
    match serde_json::to_writer(&mut bytes, value) {
        Ok(()) => raw_json(status, Body::from(bytes)),
        Err(_) => internal_error(),
    }
}

pub(crate) fn with_request_id(mut response: Response, id: &str) -> Response {
    if let Ok(value) = HeaderValue::from_str(id) {
        response.headers_mut().insert(X_REQUEST_ID, value);
    }
    response
}

fn error(
    status: StatusCode,
    message: &str,
    kind: &str,
    param: Option<&str>,
    code: Option<&str>,
) -> Response {
    json(
        status,
        &ErrorBody {
            error: ErrorDetail {
                message,
                kind,
                param,
                code,
            },
        },
    )
}

fn internal_error() -> Response {
    raw_json(
        StatusCode::INTERNAL_SERVER_ERROR,
        Body::from(
            r#"{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}"#,
        ),
    )
}

fn unparsable(e: &serde_json::Error) -> Response {
    if e.is_data() {
        let message = format!("Invalid request body: {e}");
        error(
            StatusCode::BAD_REQUEST,
            &message,
            INVALID_REQUEST,
            None,
            None,
        )
    } else {
        error(
            StatusCode::BAD_REQUEST,
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
            INVALID_REQUEST,
            None,
            None,
        )
    }
}

fn no_model() -> Response {
    error(
        StatusCode::BAD_REQUEST,
        "you must provide a model parameter",
        INVALID_REQUEST,
        None,
        None,
    )
}

/// A response whose body fails at once: hyper then closes the connection
/// without having written anything, not even the status line.
pub(crate) fn aborted() -> Response {
    Response::new(Body::from_stream(stream::once(async {
        Err::<Bytes, _>(io::Error::other("mock provider: connection cut (fault)"))
    })))
}

/// With a [`Fault::CutStreamAfter`] pending, a request that gets no stream
/// has its connection dropped instead of `answer`.
pub(crate) fn cut_or(cut: Option<usize>, answer: Response) -> Response {
    if cut.is_some() { aborted() } else { answer }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding_vector(&InputItem::Text("hello world"), 16);
        let b = embedding_vector(&InputItem::Text("hello world"), 16);
        let c = embedding_vector(&InputItem::Text("hello there"), 16);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_key() {
        let mut headers = HeaderMap::new();
        assert!(!authorized(&headers));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bearer sk-1"),
        );
        assert!(authorized(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer  "));
        assert!(!authorized(&headers));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert!(!authorized(&headers));
    }
}
