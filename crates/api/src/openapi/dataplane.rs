//! The data plane's provider-shaped calls (`/v1/chat/completions`,
//! `/v1/embeddings`, `/v1/messages`) in the OpenAPI document:
//! `#[utoipa::path]` on bodiless stand-ins and the wire shapes they name.
//! Their handlers relay providers' bodies as `serde_json::Value` (any field
//! a provider adds goes through), so these shapes describe them rather than
//! type them. Answers Tollgate writes itself (the model lists, health,
//! readiness, the management plane) are typed by their handlers.
//! `tests/api/openapi.rs` checks real answers against both.

#![allow(dead_code, clippy::unused_async)]

use super::errors::{DataPlaneErrors, MessagesErrors};
use serde::Serialize;
use serde_json::Value;
use tollgate_core::PowerLevel;
use utoipa::ToSchema;

// ---------------------------------------------------------------- data plane

/// Create a chat completion (OpenAI).
///
/// `"model": "auto"` picks a model by power level (body `power_level` or
/// header `x-tollgate-power-level`). With `stream: true` the answer is
/// `text/event-stream` ending `data: [DONE]`. The gateway headers
/// (`x-tollgate-request-id`, `-model`, `-provider`, `-byok`, `-cost`) come
/// with every answer.
#[utoipa::path(
    post, path = "/v1/chat/completions", tag = "data plane",
    operation_id = "createChatCompletion",
    security(("api_key" = [])),
    params(
        ("x-tollgate-power-level" = Option<PowerLevel>, Header, description = "`eco`, `balanced` or `precision`, for `\"model\": \"auto\"`"),
        ("x-tollgate-timeout-ms" = Option<u64>, Header, minimum = 1, maximum = 3600000, description = "The client's own timeout, 1 to 3600000 ms: fallbacks, retries and each provider call end by then (504 `provider_timeout`, nothing charged)"),
    ),
    request_body = ChatCompletionRequest,
    responses(
        (status = 200, description = "The completion, or an SSE stream of chunks", content(
            (ChatCompletion = "application/json"),
            (SseEvent = "text/event-stream"),
        ), headers(
            ("x-tollgate-request-id" = String, description = "Unique id, also in the logs and the usage record"),
            ("x-tollgate-model" = String, description = "Catalog id of the model that answered"),
            ("x-tollgate-provider" = String, description = "Provider that answered"),
            ("x-tollgate-byok" = String, description = "`true` when the organization's own key paid the provider"),
            ("x-tollgate-cost" = String, description = "What was deducted, in the organization's unit"),
        )),
        DataPlaneErrors,
    )
)]
pub async fn chat_completions() {}

/// Create embeddings (OpenAI).
#[utoipa::path(
    post, path = "/v1/embeddings", tag = "data plane",
    operation_id = "createEmbedding",
    security(("api_key" = [])),
    request_body = EmbeddingRequest,
    responses(
        (status = 200, description = "The embeddings", body = EmbeddingList, headers(
            ("x-tollgate-request-id" = String, description = "Unique id, also in the usage record"),
            ("x-tollgate-cost" = String, description = "What was deducted, in the organization's unit"),
        )),
        DataPlaneErrors,
    )
)]
pub async fn embeddings() {}

/// Create a message (Anthropic Messages).
///
/// Errors use Anthropic's shape; `stream: true` answers Anthropic SSE
/// events.
#[utoipa::path(
    post, path = "/v1/messages", tag = "data plane",
    operation_id = "createMessage",
    security(("api_key" = []), ("x_api_key" = [])),
    params(
        ("anthropic-version" = Option<String>, Header, description = "Accepted and ignored"),
        ("x-tollgate-timeout-ms" = Option<u64>, Header, minimum = 1, maximum = 3600000, description = "The client's own timeout, 1 to 3600000 ms: fallbacks, retries and each provider call end by then (504, nothing charged)"),
    ),
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The message, or an SSE stream of events", content(
            (MessagesResponse = "application/json"),
            (SseEvent = "text/event-stream", example = json!({"event": "message_start", "data": "{\"type\":\"message_start\"}"})),
        )),
        MessagesErrors,
    )
)]
pub async fn messages() {}

// ------------------------------------------------------------------ schemas

/// Errors of `/v1/messages`, in Anthropic's shape.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid api key"}}))]
pub struct AnthropicError {
    /// Always `error`.
    #[serde(rename = "type")]
    pub kind: String,
    pub error: AnthropicErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct AnthropicErrorBody {
    #[serde(rename = "type")]
    pub kind: String,
    pub message: String,
}

// ------------------------------------------------------------- data plane

/// One message of a conversation.
#[derive(Serialize, ToSchema)]
pub struct ChatMessage {
    /// `system`, `developer`, `user`, `assistant` or `tool`.
    pub role: String,
    /// A string, or an array of content parts; null for an assistant message
    /// that only calls tools.
    pub content: Value,
}

/// OpenAI Chat Completions. Fields not listed here (`tools`,
/// `tool_choice`, `response_format`, `stop`, `seed`, …) are passed on.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "auto", "power_level": "eco", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 64}))]
pub struct ChatCompletionRequest {
    /// A catalog model id, or `auto` to pick by power level.
    pub model: String,
    pub messages: Vec<ChatMessage>,
    /// Answer as server-sent events ending with `data: [DONE]`.
    #[schema(nullable = false)]
    pub stream: Option<bool>,
    #[schema(nullable = false)]
    pub max_tokens: Option<i64>,
    #[schema(nullable = false)]
    pub max_completion_tokens: Option<i64>,
    #[schema(nullable = false)]
    pub temperature: Option<f64>,
    #[schema(nullable = false)]
    pub top_p: Option<f64>,
    /// For `"model": "auto"`: `eco`, `balanced` (default) or `precision`.
    #[schema(value_type = Option<PowerLevel>, nullable = false)]
    pub power_level: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct ChatChoice {
    pub index: i64,
    pub message: ChatMessage,
    /// `stop`, `length`, `tool_calls` or `content_filter`.
    pub finish_reason: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    pub prompt_tokens: i64,
    #[schema(nullable = false)]
    pub completion_tokens: Option<i64>,
    pub total_tokens: i64,
}

/// OpenAI's chat completion. With `stream: true` the answer is
/// `text/event-stream` of `chat.completion.chunk` objects.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "chatcmpl-123", "object": "chat.completion", "created": 1_763_900_000, "model": "gpt-4o-mini", "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello! How can I help?"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 7, "total_tokens": 16}}))]
pub struct ChatCompletion {
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    pub created: i64,
    pub model: String,
    pub choices: Vec<ChatChoice>,
    #[schema(nullable = false)]
    pub usage: Option<Usage>,
}

/// OpenAI Embeddings.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "text-embedding-3-small", "input": "The food was delicious"}))]
pub struct EmbeddingRequest {
    pub model: String,
    /// A string, an array of strings, or token arrays.
    pub input: Value,
    #[schema(nullable = false)]
    pub dimensions: Option<i64>,
    /// `float` (default) or `base64`.
    #[schema(nullable = false)]
    pub encoding_format: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Embedding {
    /// `embedding`.
    pub object: String,
    pub index: i64,
    /// Floats, or a base64 string with `encoding_format: base64`.
    pub embedding: Value,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"object": "embedding", "index": 0, "embedding": [0.0023, -0.0093]}], "model": "text-embedding-3-small", "usage": {"prompt_tokens": 5, "total_tokens": 5}}))]
pub struct EmbeddingList {
    /// `list`.
    pub object: String,
    pub data: Vec<Embedding>,
    pub model: String,
    pub usage: Usage,
}

/// Anthropic Messages. Other fields (`system`, `tools`, `stop_sequences`,
/// `temperature`, …) follow Anthropic's API.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "claude-3-5-haiku-latest", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello"}]}))]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: i64,
    pub messages: Vec<ChatMessage>,
    /// A string or an array of text blocks.
    pub system: Option<Value>,
    /// Answer as Anthropic server-sent events.
    #[schema(nullable = false)]
    pub stream: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct MessagesUsage {
    pub input_tokens: i64,
    pub output_tokens: i64,
}

/// Anthropic's message answer.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "msg_123", "type": "message", "role": "assistant", "model": "claude-3-5-haiku-latest", "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn", "stop_sequence": null, "usage": {"input_tokens": 8, "output_tokens": 3}}))]
pub struct MessagesResponse {
    pub id: String,
    /// `message`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `assistant`.
    pub role: String,
    pub model: String,
    /// Content blocks (`text`, `tool_use`).
    #[schema(value_type = Vec<Object>)]
    pub content: Vec<Value>,
    pub stop_reason: Option<String>,
    pub stop_sequence: Option<String>,
    pub usage: MessagesUsage,
}

// ------------------------------------------------------------ event streams

/// One server-sent event of a streamed answer (`text/event-stream`): the
/// document describes the stream event by event, as OpenAPI 3.2's sequential
/// media types do. Chat Completions streams send only `data:` lines (a JSON
/// chunk, the last one `[DONE]`); Anthropic Messages streams name each event
/// (`message_start`, `content_block_delta`, …, `message_stop`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"data": "{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}"}))]
pub struct SseEvent {
    /// The `event:` field, when the stream names its events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// The `data:` field: a JSON object, or `[DONE]` at the end of a Chat
    /// Completions stream.
    pub data: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<i64>,
}
