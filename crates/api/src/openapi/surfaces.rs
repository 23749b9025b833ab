//! The OpenAPI description of the data-plane surfaces beside Chat and
//! Messages: OpenAI Responses, the Gemini API, Anthropic's token count and
//! one model by id. Their bodies follow the providers' own APIs; the
//! schemas name the fields Tollgate reads and let the rest through.

#![allow(dead_code, clippy::unused_async)]

use super::dataplane::{MessagesRequest, SseEvent};
use super::errors::{DataPlaneErrors, GeminiErrors, GeminiListErrors, MessagesErrors, ReadErrors};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

/// An OpenAI Responses request. `input` is a string or input items
/// (`message`, `function_call`, `function_call_output`); tools are
/// function tools; `text.format` may ask for a JSON schema.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"model": "gpt-4o-mini", "instructions": "Be brief", "input": "Say hello"}))]
pub struct ResponsesRequest {
    pub model: String,
    /// A string, or an array of input items.
    pub input: Value,
    pub instructions: Option<String>,
    pub tools: Option<Vec<Value>>,
    pub tool_choice: Option<Value>,
    /// `{"format": {"type": "text" | "json_object" | "json_schema", …}}`.
    pub text: Option<Value>,
    /// `{"effort": "low" | "medium" | "high"}`.
    pub reasoning: Option<Value>,
    pub max_output_tokens: Option<i64>,
    pub metadata: Option<Value>,
    /// Keep the response for `GET /v1/responses/{id}` and
    /// `previous_response_id` (default `true`).
    #[schema(nullable = false)]
    pub store: Option<bool>,
    /// Continue the conversation of a stored response of this organization.
    pub previous_response_id: Option<String>,
    /// Answer as Responses server-sent events.
    #[schema(nullable = false)]
    pub stream: Option<bool>,
    /// Not supported: `true` answers 400 naming `background` (answers are
    /// served while the client waits; stream long ones).
    #[schema(nullable = false)]
    pub background: Option<bool>,
}

/// A Responses object (`object: "response"`).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "resp_0192f0c1a2b3", "object": "response", "created_at": 1_763_900_000, "status": "completed", "model": "gpt-4o-mini", "output": [{"type": "message", "id": "msg_0192f0c1a2b3_0", "status": "completed", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!", "annotations": []}]}], "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12}}))]
pub struct ResponseObject {
    pub id: String,
    /// `response`.
    pub object: String,
    pub created_at: i64,
    /// `completed`, `incomplete` (cut at `max_output_tokens`), `failed`.
    pub status: String,
    pub model: String,
    /// `message` and `function_call` items.
    pub output: Vec<Value>,
    pub usage: Option<Value>,
    pub previous_response_id: Option<String>,
    pub metadata: Value,
}

/// The input items of a stored response, one page (OpenAI's list).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"type": "message", "id": "in_0192f0c1a2b3_0", "role": "user", "status": "completed", "content": [{"type": "input_text", "text": "Say hello"}]}], "first_id": "in_0192f0c1a2b3_0", "last_id": "in_0192f0c1a2b3_0", "has_more": false}))]
pub struct InputItemList {
    /// `list`.
    pub object: String,
    /// Input items as sent (`message`, `function_call`,
    /// `function_call_output`), each with an `id` and a `status`.
    pub data: Vec<Value>,
    pub first_id: Option<String>,
    pub last_id: Option<String>,
    pub has_more: bool,
}

/// What `DELETE /v1/responses/{id}` answers.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "resp_0192f0c1a2b3", "object": "response", "deleted": true}))]
pub struct ResponseDeleted {
    pub id: String,
    pub object: String,
    pub deleted: bool,
}

/// Anthropic's token count.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"input_tokens": 10}))]
pub struct InputTokens {
    pub input_tokens: i64,
}

/// A Gemini `generateContent` request (also the body of
/// `streamGenerateContent` and, alone or under `generateContentRequest`,
/// of `countTokens`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"systemInstruction": {"parts": [{"text": "Be brief"}]}, "contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}))]
pub struct GenerateContentRequest {
    /// Turns: `role` `user` or `model`, `parts` (`text`, `inlineData`,
    /// `fileData`, `functionCall`, `functionResponse`).
    pub contents: Vec<Value>,
    pub system_instruction: Option<Value>,
    /// `functionDeclarations` tools.
    pub tools: Option<Vec<Value>>,
    pub tool_config: Option<Value>,
    /// `temperature`, `topP`, `maxOutputTokens`, `stopSequences`,
    /// `responseMimeType`, `responseSchema`, `thinkingConfig`, …
    pub generation_config: Option<Value>,
}

/// A Gemini `GenerateContentResponse` (or one chunk of a stream).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hello!"}]}, "finishReason": "STOP", "index": 0}], "usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 2, "totalTokenCount": 12}, "modelVersion": "gemini-2.5-flash", "responseId": "chatcmpl-0192f0c1a2b3"}))]
pub struct GenerateContentResponse {
    pub candidates: Vec<Value>,
    pub usage_metadata: Option<Value>,
    pub model_version: String,
    pub response_id: String,
}

/// Gemini's token count.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"totalTokens": 10}))]
pub struct TotalTokens {
    pub total_tokens: i64,
}

/// `embedContent`: `{"content": {"parts": [{"text"}]}}`;
/// `batchEmbedContents`: `{"requests": [{"content"}, …]}`.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"content": {"parts": [{"text": "hello world"}]}}))]
pub struct EmbedContentRequest {
    pub content: Option<Value>,
    pub requests: Option<Vec<Value>>,
    pub output_dimensionality: Option<i64>,
}

/// `embedContent`: `{"embedding": {"values"}}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"embedding": {"values": [0.12, -0.03]}}))]
pub struct EmbedContentResponse {
    pub embedding: Value,
}

/// `batchEmbedContents`: `{"embeddings": [{"values"}, …]}`.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"embeddings": [{"values": [0.12, -0.03]}]}))]
pub struct BatchEmbedContentsResponse {
    pub embeddings: Vec<Value>,
}

/// What a Gemini call answers, by method: `generateContent` a
/// `GenerateContentResponse`, `countTokens` a count, `embedContent` and
/// `batchEmbedContents` embeddings.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum GeminiAnswer {
    Generate(GenerateContentResponse),
    Count(TotalTokens),
    Embed(EmbedContentResponse),
    BatchEmbed(BatchEmbedContentsResponse),
}

/// A model in Gemini's shape.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"name": "models/gemini-flash", "baseModelId": "gemini-flash", "version": "001", "displayName": "gemini-flash", "inputTokenLimit": 1_048_576, "outputTokenLimit": 65_536, "supportedGenerationMethods": ["generateContent", "streamGenerateContent", "countTokens"]}))]
pub struct GeminiModel {
    /// `models/{id}`.
    pub name: String,
    pub base_model_id: String,
    pub version: String,
    pub display_name: String,
    pub input_token_limit: i64,
    pub output_token_limit: i64,
    pub supported_generation_methods: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct GeminiModelList {
    pub models: Vec<GeminiModel>,
}

/// Errors of the Gemini paths, in Google's shape.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"error": {"code": 404, "message": "model `x` is not found", "status": "NOT_FOUND"}}))]
pub struct GoogleError {
    pub error: GoogleErrorBody,
}

#[derive(Serialize, ToSchema)]
pub struct GoogleErrorBody {
    pub code: u16,
    pub message: String,
    /// `INVALID_ARGUMENT`, `UNAUTHENTICATED`, `PERMISSION_DENIED`,
    /// `NOT_FOUND`, `RESOURCE_EXHAUSTED`, `UNAVAILABLE`, …
    pub status: String,
}

/// Create a model response (OpenAI Responses).
///
/// Any catalog model, whatever its provider. `stream: true` answers the
/// Responses SSE events (`response.created` … `response.completed`).
/// Served natively by a provider that speaks the Responses API (its
/// `responses_api` setting: OpenAI), whose object and events are relayed
/// with Tollgate's id; translated to and from the provider's own API for
/// every other (OpenAI-compatible APIs, Anthropic, Gemini). Built-in tools,
/// `item_reference` and `background: true` answer 400.
#[utoipa::path(
    post, path = "/v1/responses", tag = "data plane",
    operation_id = "createResponse",
    security(("api_key" = [])),
    request_body = ResponsesRequest,
    responses(
        (status = 200, description = "The response, or an SSE stream of Responses events", content(
            (ResponseObject = "application/json"),
            (SseEvent = "text/event-stream", example = json!({"event": "response.output_text.delta", "data": "{\"type\":\"response.output_text.delta\",\"delta\":\"Hi\"}"})),
        )),
        DataPlaneErrors,
    )
)]
pub async fn create_response() {}

/// Read a stored response of this organization.
#[utoipa::path(
    get, path = "/v1/responses/{id}", tag = "data plane",
    operation_id = "getResponse",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Response id (`resp_…`)")),
    responses(
        (status = 200, description = "The response as answered", body = ResponseObject),
        ReadErrors,
    )
)]
pub async fn get_response() {}

/// Delete a stored response of this organization.
#[utoipa::path(
    delete, path = "/v1/responses/{id}", tag = "data plane",
    operation_id = "deleteResponse",
    security(("api_key" = [])),
    params(("id" = String, Path, description = "Response id (`resp_…`)")),
    responses(
        (status = 200, description = "Deleted", body = ResponseDeleted),
        ReadErrors,
    )
)]
pub async fn delete_response() {}

/// List the input items of a stored response of this organization.
///
/// The items the response was asked with, in OpenAI's list shape; 404
/// for another organization's response.
#[utoipa::path(
    get, path = "/v1/responses/{id}/input_items", tag = "data plane",
    operation_id = "listResponseInputItems",
    security(("api_key" = [])),
    params(
        ("id" = String, Path, description = "Response id (`resp_…`)"),
        ("limit" = Option<i64>, Query, description = "1 to 100, default 20"),
        ("order" = Option<String>, Query, description = "`desc` (default: the last item sent first) or `asc`"),
        ("after" = Option<String>, Query, description = "An item id: list the items after it"),
        ("before" = Option<String>, Query, description = "An item id: list the items before it"),
    ),
    responses(
        (status = 200, description = "One page of input items", body = InputItemList),
        ReadErrors,
    )
)]
pub async fn list_input_items() {}

/// Count a Messages request's input tokens (Anthropic).
///
/// The provider's own count for Anthropic and Gemini models; for
/// OpenAI-compatible ones an estimate (about 4 bytes a token). Free.
#[utoipa::path(
    post, path = "/v1/messages/count_tokens", tag = "data plane",
    operation_id = "countMessageTokens",
    security(("api_key" = []), ("x_api_key" = [])),
    request_body = MessagesRequest,
    responses(
        (status = 200, description = "The count", body = InputTokens),
        MessagesErrors,
    )
)]
pub async fn count_message_tokens() {}

/// Call a model the Gemini way.
///
/// `{model}:{method}` with method `generateContent`,
/// `streamGenerateContent` (SSE with `alt=sse`; without it one JSON array
/// of chunks, streamed as `application/json`, as Google answers),
/// `countTokens`, `embedContent` or `batchEmbedContents`; any catalog
/// model, whatever its provider. The key is also accepted as
/// `x-goog-api-key` or `?key=`.
#[utoipa::path(
    post, path = "/v1beta/models/{model_method}", tag = "data plane",
    operation_id = "geminiCall",
    security(("api_key" = []), ("goog_api_key" = [])),
    params(
        ("model_method" = String, Path, description = "`{model}:{method}`, e.g. `gemini-flash:generateContent`"),
        ("key" = Option<String>, Query, description = "The API key, instead of a header"),
        ("alt" = Option<String>, Query, description = "`sse`: streamGenerateContent as server-sent events (else one JSON array)"),
    ),
    request_body(content = GenerateContentRequest, description = "generateContent, streamGenerateContent and countTokens; embedContent takes an EmbedContentRequest"),
    responses(
        (status = 200, description = "The answer (a JSON array of chunks for a stream without `alt=sse`), an SSE stream of chunks, a count or embeddings", content(
            (GeminiAnswer = "application/json"),
            (SseEvent = "text/event-stream"),
        )),
        GeminiErrors,
    )
)]
pub async fn gemini_call() {}

/// The models this organization can use, in Gemini's shape.
#[utoipa::path(
    get, path = "/v1beta/models", tag = "data plane",
    operation_id = "geminiListModels",
    security(("api_key" = []), ("goog_api_key" = [])),
    params(("key" = Option<String>, Query, description = "The API key, instead of a header")),
    responses(
        (status = 200, description = "The model list", body = GeminiModelList),
        GeminiListErrors,
    )
)]
pub async fn gemini_models() {}
