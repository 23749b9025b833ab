//! A mock LLM provider that speaks OpenAI's, Anthropic's and Gemini's wire
//! formats, so that Tollgate's tests and load benchmarks never reach the
//! internet.
//!
//! [`MockProvider::start`] serves on `127.0.0.1:<free port>` inside the
//! current tokio runtime; point an OpenAI-style client at
//! [`MockProvider::base_url`] (it ends in `/v1`). The binary
//! `tollgate-mock-provider` serves the same thing standalone, with recording
//! off, for load tests.
//!
//! # Endpoints
//!
//! | method and path | answer |
//! | --- | --- |
//! | `POST /v1/chat/completions` | a `chat.completion` object, or with `"stream": true` server-sent `chat.completion.chunk` events ending `data: [DONE]` |
//! | `POST /v1/embeddings` | a `list` of `embedding` objects |
//! | `GET /v1/models` | a `list` of `model` objects (a fixed catalog) |
//! | `POST /v1/messages` | Anthropic Messages: a `message`, or with `"stream": true` Anthropic's SSE events (`message_start`, `content_block_start`, `ping`, `content_block_delta`, `content_block_stop`, `message_delta`, `message_stop`) |
//! | `POST /v1/messages/count_tokens` | Anthropic's `{"input_tokens"}`, by the usage rule below |
//! | `POST /v1/responses` | OpenAI Responses: a `response` object, or with `"stream": true` the Responses SSE events (see the `responses` module) |
//! | `POST /v1beta/models/{model}:generateContent` (also under `/v1/models/`) | a Gemini `GenerateContentResponse` |
//! | `POST …:streamGenerateContent?alt=sse` | one `GenerateContentResponse` chunk per reply word, the last with `finishReason` and full `usageMetadata` |
//! | `POST …:embedContent`, `…:batchEmbedContents` | `{"embedding": {"values"}}`, `{"embeddings": [...]}` (`outputDimensionality`, default 8) |
//! | `POST …:countTokens` | `{"totalTokens"}`: the words of every `text` in `contents`, or for a `generateContentRequest` its `promptTokenCount` |
//! | `POST /v1/traces` | an OTLP/HTTP sink: 200 to an `ExportTraceServiceRequest` (protobuf), whose spans it counts; 400 to anything else |
//! | `GET /v1/traces` | `{"spans": N}`: the spans received so far (also [`MockProvider::spans_received`]) |
//! | anything else | 404 (or 405) in OpenAI's error shape |
//!
//! Anthropic wants `x-api-key` (else 401 `authentication_error`) and
//! `anthropic-version` (else 400), and `max_tokens` in the body; errors use
//! `{"type":"error","error":{"type","message"}}`. Gemini wants
//! `x-goog-api-key` or `?key=` (else 403 `PERMISSION_DENIED`); errors use
//! `{"error":{"code","message","status"}}`. Their usage follows the rule
//! below: `input_tokens` / `promptTokenCount` = words + 3 per message (the
//! `system` / `systemInstruction` counting as one), `output_tokens` /
//! `candidatesTokenCount` = words sent (the limit is `max_tokens` /
//! `generationConfig.maxOutputTokens`; `stop_reason` `max_tokens` /
//! `finishReason` `MAX_TOKENS` when it cuts). **Tool calls:** when the
//! request declares tools and its last turn carries no tool result
//! (`tool_result` / `functionResponse`; for Chat Completions a `tool`
//! message, and not with `tool_choice: "none"`; see the `tools` module
//! for OpenAI's plain and streamed shape), the answer calls the first tool,
//! with `"mock"` for each required property of its schema: Anthropic answers
//! the text "Let me check." plus a `tool_use` block (`stop_reason`
//! `tool_use`), Gemini a `functionCall` part, OpenAI Chat a `tool_calls`
//! entry (Responses a `function_call` item); each counts **7** output
//! tokens. A Gemini prompt containing `BLOCKME` is answered with
//! `promptFeedback.blockReason` `SAFETY`. **Prompt cache (Anthropic):** the
//! words of each block marked `cache_control` are reported as
//! `cache_creation_input_tokens` the first time that block is seen and as
//! `cache_read_input_tokens` afterwards (and left out of `input_tokens`).
//! **Structured output:** a JSON schema asked for (`response_format`
//! `json_schema`, Anthropic's `output_config.format`, Gemini's
//! `responseSchema` / `responseJsonSchema`, Responses' `text.format`) makes
//! the reply one word, a compact JSON value of that schema (`"mock"`, `1`,
//! `1.5`, `true`, `[]`, objects with their required properties). Faults apply as below (a
//! [`Fault::Status`] body is sent as given, so use the provider's error shape);
//! [`Fault::CutStreamAfter`] cuts after that many text deltas.
//!
//! Every endpoint wants `Authorization: Bearer <anything non-empty>`; without
//! it the answer is 401 `{"error":{"message":…,"type":"invalid_request_error","param":null,"code":null}}`.
//! Any key is accepted. A chat body that is not JSON, or lacks `model` or a
//! non-empty `messages` array, gets 400; so does an embeddings body without
//! `model` or `input`.
//!
//! # Deterministic answers and usage
//!
//! Tests can predict every answer exactly:
//!
//! * **Reply words.** The reply text ([`DEFAULT_REPLY`] unless changed with
//!   [`MockOptions::reply`] or [`MockProvider::set_reply`]) is split on
//!   whitespace (`str::split_whitespace`) into words.
//! * **Truncation.** The limit is `max_completion_tokens` or `max_tokens`
//!   (the smaller when both are given). When the limit is below the number of
//!   words, only the first `limit` words are sent and `finish_reason` is
//!   `"length"`; otherwise all words are sent and `finish_reason` is `"stop"`.
//! * **Content.** The words sent, joined with single spaces.
//! * **`n`.** A plain answer has `n` identical choices (default 1, at most
//!   128); a stream always has one.
//! * **`completion_tokens`** = the number of words sent, times `n` (every
//!   choice counts, as at OpenAI).
//! * **`prompt_tokens`** = sum over the request's `messages` of
//!   (words in the message's text + 3). A message's text is its `content`
//!   when that is a string, or, when `content` is an array of parts, the
//!   `text` field of every part that has one (other parts, such as images,
//!   count 0); a missing or `null` content counts 0 words. Words are counted
//!   with `str::split_whitespace`. Roles, names and tool calls count nothing.
//!   Example: `[{"role":"user","content":"Say hello"}]` → 2 + 3 = 5.
//! * **`total_tokens`** = `prompt_tokens + completion_tokens`; the details
//!   (`cached_tokens`, `reasoning_tokens`, …) are always 0.
//! * **Streaming** sends one chunk with delta `{"role":"assistant","content":""}`,
//!   then one chunk per word whose content is the word, preceded by a space
//!   for every word but the first (so the deltas joined equal the plain
//!   answer's content), then a chunk with an empty delta and the
//!   `finish_reason`. Only when the request has
//!   `"stream_options": {"include_usage": true}` does a last chunk follow with
//!   `"choices": []` and the usage above, and then every earlier chunk carries
//!   `"usage": null`. The stream ends with `data: [DONE]`.
//! * **The response `model`** echoes the request's `model`. Only one choice
//!   is ever returned (`n` is ignored).
//! * **Embeddings.** One vector per input (`input` is a string, an array of
//!   strings, an array of token ids or an array of such arrays), of length
//!   `dimensions` when given, else 8, unit length, derived only from the
//!   input's text (same text, same vector). `encoding_format: "base64"`
//!   gives little-endian `f32`s in base64, as OpenAI does.
//!   `prompt_tokens` = `total_tokens` = the whitespace-separated words of all
//!   string inputs plus the number of ids of token-id inputs.
//!
//! # Faults
//!
//! [`MockProvider::push_fault`] queues a [`Fault`]; each chat or embeddings
//! request (authorized or not) takes the oldest queued fault, if any, before
//! anything else is checked. `GET /v1/models` never takes one. With no fault
//! queued the request path takes no lock.

mod native;
mod otlp;
mod responses;
mod server;
mod tools;
mod wire;

use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::sync::watch;

/// The assistant text answered when no other reply was set (11 words).
pub const DEFAULT_REPLY: &str = "Hello! I am a mock model and this is my answer.";

/// A running mock provider. Dropping it shuts the server down gracefully:
/// it stops accepting connections, closes idle keep-alive connections, lets
/// answers in progress finish, and ends any [`Fault::Hang`] by closing its
/// connection.
pub struct MockProvider {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

/// How a [`MockProvider`] behaves; see [`MockOptions::default`].
#[derive(Debug, Clone)]
pub struct MockOptions {
    /// Waited before every answer (on top of any [`Fault::Latency`]); for a
    /// stream, before its first byte.
    pub latency: Duration,
    /// Store every request for [`MockProvider::requests`]. Turn off for load
    /// tests, where the store would only grow.
    pub record: bool,
    /// The assistant text; see the crate docs for how it becomes the answer.
    pub reply: String,
}

impl Default for MockOptions {
    /// No latency, recording on, [`DEFAULT_REPLY`].
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            record: true,
            reply: DEFAULT_REPLY.to_owned(),
        }
    }
}

/// One request as the mock received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query string, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The `Authorization` header's value, if any (e.g. `Bearer sk-…`).
    pub authorization: Option<String>,
    /// Every header, names in lowercase, in the order received (the values
    /// of a repeated header together).
    pub headers: Vec<(String, String)>,
    /// The body as JSON; `Null` when empty, a JSON string holding the text
    /// when it is not JSON.
    pub body: serde_json::Value,
}

impl RecordedRequest {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A misbehaviour for one request; see [`MockProvider::push_fault`].
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Answer this status and JSON body instead (use OpenAI's error shape,
    /// e.g. from [`Fault::status`] or [`openai_error`]), with a
    /// `Retry-After: <seconds>` header when `retry_after` is set. A status
    /// outside 100..=999 is sent as 500.
    Status {
        /// HTTP status code.
        status: u16,
        /// The JSON body sent.
        body: serde_json::Value,
        /// Seconds for the `Retry-After` header.
        retry_after: Option<u64>,
    },
    /// Wait this long, then answer normally.
    Latency(Duration),
    /// For a streaming chat request: send the role chunk and then this many
    /// content chunks (at most one per reply word), then drop the connection
    /// without the finish chunk, the usage chunk or `data: [DONE]`. For any
    /// other request: drop the connection without answering.
    CutStreamAfter(usize),
    /// For a streaming OpenAI chat request: send the role chunk and this
    /// many content chunks, then keep the connection open without another
    /// byte until the client goes away or the [`MockProvider`] is dropped
    /// (a provider that stalls mid-stream). Elsewhere: as `CutStreamAfter`.
    StallStreamAfter(usize),
    /// For a streaming OpenAI chat request: send each event of the whole
    /// answer this long after the one before (a provider that generates
    /// slowly). Elsewhere: no effect.
    SlowStream(Duration),
    /// Never answer; the connection stays open until the client gives up or
    /// the [`MockProvider`] is dropped.
    Hang,
}

impl Fault {
    /// A [`Fault::Status`] with the error body OpenAI sends for that status
    /// (e.g. 429 `rate_limit_exceeded`, 500 `server_error`) and no
    /// `Retry-After`.
    pub fn status(status: u16) -> Fault {
        let (message, kind, code) = match status {
            400 => (
                "Invalid request (mock fault).",
                "invalid_request_error",
                None,
            ),
            401 => (
                "Incorrect API key provided: mock. You can find your API key at https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            403 => (
                "You are not allowed to sample from this model (mock fault).",
                "invalid_request_error",
                None,
            ),
            404 => (
                "The model does not exist or you do not have access to it (mock fault).",
                "invalid_request_error",
                Some("model_not_found"),
            ),
            429 => (
                "Rate limit reached for requests (mock fault). Please try again in 1s.",
                "requests",
                Some("rate_limit_exceeded"),
            ),
            500 => (
                "The server had an error while processing your request. Sorry about that!",
                "server_error",
                None,
            ),
            502 => ("Bad gateway (mock fault).", "server_error", None),
            503 => (
                "The server is overloaded or not ready yet.",
                "server_error",
                None,
            ),
            504 => ("Gateway timeout (mock fault).", "server_error", None),
            s if s >= 500 => ("Server error (mock fault).", "server_error", None),
            _ => (
                "Request failed (mock fault).",
                "invalid_request_error",
                None,
            ),
        };
        Fault::Status {
            status,
            body: openai_error(message, kind, code),
            retry_after: None,
        }
    }
}

/// An OpenAI error body: `{"error":{"message","type","param":null,"code"}}`.
pub fn openai_error(message: &str, kind: &str, code: Option<&str>) -> serde_json::Value {
    serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    })
}

impl MockProvider {
    /// Serves on `127.0.0.1` at a free port with [`MockOptions::default`],
    /// in a task of the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When no loopback port can be bound, or outside a tokio runtime.
    pub async fn start() -> MockProvider {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        match Self::start_on(addr, MockOptions::default()).await {
            Ok(mock) => mock,
            Err(e) => panic!("mock provider: cannot bind {addr}: {e}"),
        }
    }

    /// Serves on `addr` (port 0 picks a free one) with `opts`, in a task of
    /// the current tokio runtime.
    pub async fn start_on(addr: SocketAddr, opts: MockOptions) -> io::Result<MockProvider> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Small SSE writes must not wait for delayed ACKs (Nagle).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let shared = Arc::new(Shared::new(opts));
        let app = server::router(Arc::clone(&shared));
        let mut shutdown = shared.shutdown.subscribe();
        tokio::spawn(async move {
            let stop = async move {
                let _ = shutdown.wait_for(|down| *down).await;
            };
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await;
        });
        Ok(MockProvider { addr, shared })
    }

    /// The address served on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI-style base URL, `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in arrival order (empty when recording
    /// is off).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// How many requests were received, recorded or not.
    pub fn request_count(&self) -> usize {
        self.shared.request_count.load(Ordering::Relaxed)
    }

    /// Spans received so far by the OTLP/HTTP sink at `/v1/traces`.
    pub fn spans_received(&self) -> u64 {
        self.shared.spans_received.load(Ordering::Relaxed)
    }

    /// Queues a fault; each chat or embeddings request takes the oldest one.
    pub fn push_fault(&self, fault: Fault) {
        let mut faults = lock(&self.shared.faults);
        faults.push_back(fault);
        self.shared.queued_faults.fetch_add(1, Ordering::Release);
    }

    /// Replaces the assistant text for the requests that follow.
    pub fn set_reply(&self, text: &str) {
        let reply = Arc::new(Reply::new(text));
        *self
            .shared
            .reply
            .write()
            .unwrap_or_else(PoisonError::into_inner) = reply;
    }
}

impl Drop for MockProvider {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

impl std::fmt::Debug for MockProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockProvider")
            .field("addr", &self.addr)
            .field("request_count", &self.request_count())
            .finish_non_exhaustive()
    }
}

/// State shared by the handle and the request handlers.
pub(crate) struct Shared {
    pub(crate) latency: Duration,
    pub(crate) record: bool,
    reply: RwLock<Arc<Reply>>,
    faults: Mutex<VecDeque<Fault>>,
    /// Length of `faults`, read without the lock on every request.
    queued_faults: AtomicUsize,
    requests: Mutex<Vec<RecordedRequest>>,
    request_count: AtomicUsize,
    next_id: AtomicU64,
    /// Spans received by the OTLP sink (`/v1/traces`).
    pub(crate) spans_received: AtomicU64,
    /// Texts of the blocks marked `cache_control` seen so far: Anthropic's
    /// prompt cache (a first sight writes it, a later one reads it).
    prompt_cache: Mutex<std::collections::HashSet<String>>,
    /// Set to `true` when the [`MockProvider`] is dropped.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    fn new(opts: MockOptions) -> Self {
        Self {
            latency: opts.latency,
            record: opts.record,
            reply: RwLock::new(Arc::new(Reply::new(&opts.reply))),
            faults: Mutex::new(VecDeque::new()),
            queued_faults: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            request_count: AtomicUsize::new(0),
            next_id: AtomicU64::new(1),
            spans_received: AtomicU64::new(0),
            prompt_cache: Mutex::new(std::collections::HashSet::new()),
            shutdown: watch::Sender::new(false),
        }
    }

    pub(crate) fn take_fault(&self) -> Option<Fault> {
        if self.queued_faults.load(Ordering::Acquire) == 0 {
            return None;
        }
        let mut faults = lock(&self.faults);
        let fault = faults.pop_front();
        if fault.is_some() {
            self.queued_faults.fetch_sub(1, Ordering::Release);
        }
        fault
    }

    pub(crate) fn reply(&self) -> Arc<Reply> {
        Arc::clone(&self.reply.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Whether `text` was already in the prompt cache; it is afterwards.
    pub(crate) fn cached(&self, text: &str) -> bool {
        let mut cache = self
            .prompt_cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        !cache.insert(text.to_owned())
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Counts the request, and stores it when recording is on.
    pub(crate) fn record(&self, make: impl FnOnce() -> RecordedRequest) {
        self.request_count.fetch_add(1, Ordering::Relaxed);
        if self.record {
            let request = make();
            lock(&self.requests).push(request);
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The reply split into words, kept as one string so that any prefix of
/// words, and any single streamed delta, is a slice of it (no allocation per
/// request).
pub(crate) struct Reply {
    /// The words joined with single spaces.
    text: String,
    /// `ends[i]` is the byte offset in `text` just past word `i`.
    ends: Vec<usize>,
}

impl Reply {
    pub(crate) fn new(reply: &str) -> Self {
        let mut text = String::with_capacity(reply.len());
        let mut ends = Vec::new();
        for word in reply.split_whitespace() {
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(word);
            ends.push(text.len());
        }
        Self { text, ends }
    }

    pub(crate) fn words(&self) -> usize {
        self.ends.len()
    }

    /// The first `n` words joined with single spaces (`n` ≤ [`Self::words`]).
    pub(crate) fn prefix(&self, n: usize) -> &str {
        match n.checked_sub(1).and_then(|last| self.ends.get(last)) {
            Some(&end) => &self.text[..end],
            None => "",
        }
    }

    /// Word `i`, preceded by a space unless it is the first.
    pub(crate) fn delta(&self, i: usize) -> &str {
        let start = match i.checked_sub(1) {
            Some(prev) => self.ends.get(prev).copied().unwrap_or(self.text.len()),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(self.text.len());
        &self.text[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_prefixes_and_deltas_are_slices_of_the_joined_words() {
        let reply = Reply::new("  Hello!  I am\n here ");
        assert_eq!(reply.words(), 4);
        assert_eq!(reply.prefix(0), "");
        assert_eq!(reply.prefix(2), "Hello! I");
        assert_eq!(reply.prefix(4), "Hello! I am here");
        let joined: String = (0..4).map(|i| reply.delta(i)).collect();
        assert_eq!(joined, "Hello! I am here");
        assert_eq!(reply.delta(1), " I");
    }

    #[test]
    fn default_reply_has_eleven_words() {
        assert_eq!(Reply::new(DEFAULT_REPLY).words(), 11);
    }
}
