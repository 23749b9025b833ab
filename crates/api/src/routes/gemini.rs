//! Google's Gemini API in front of any model: `POST
//! /v1beta/models/{model}:generateContent`, `:streamGenerateContent`
//! (`alt=sse`), `:countTokens`, `:embedContent`, `:batchEmbedContents`, and
//! `GET /v1beta/models[/{model}]`.
//!
//! Requests are decoded to Tollgate's (Chat or embeddings) request and
//! served like `/v1/chat/completions` and `/v1/embeddings`, whatever the
//! model's provider; answers are encoded in Gemini's shape. The key is
//! accepted as `x-goog-api-key`, `?key=` or `Authorization: Bearer`;
//! errors use Google's `{"error":{"code","message","status"}}`.

use super::dialect::Dialect;
use super::models::usable_models;
use super::surface::{option_headers, serve};
use crate::error::{ApiError, add_headers};
use crate::extract::{BodyBytes, GoogleKey, RequestId, parse_json};
use crate::state::AppState;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Map, Value, json};
use tollgate_core::ModelEntry;
use tollgate_gateway::admission::require_scope;
use tollgate_gateway::{CallRequest, Operation, call_options};
use tollgate_providers::gemini::inbound;
use tollgate_providers::gemini::wire::GenerateContentRequest;
use tollgate_tenants::KeyScope;

/// The largest embeddings answer read back to re-encode it.
const MAX_EMBEDDINGS_BODY: usize = 64 * 1024 * 1024;

/// `POST /v1beta/models/{model}:{method}`.
pub async fn call(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    caller: Result<GoogleKey, ApiError>,
    Path(target): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let outcome = async {
        let GoogleKey(principal) = caller?;
        let BodyBytes(body) = body?;
        let target = target.strip_prefix("models/").unwrap_or(&target);
        let Some((model, method)) = target.rsplit_once(':') else {
            return Err(ApiError::not_found(format!(
                "no such method: `{target}` (expected `{{model}}:generateContent` or another method)"
            )));
        };
        match method {
            "generateContent" | "streamGenerateContent" => {
                require_scope(&principal, KeyScope::Chat)?;
                let request: GenerateContentRequest = parse_json(&body)?;
                let stream = method == "streamGenerateContent";
                let mut chat = inbound::to_chat_request(model, request, stream)
                    .map_err(ApiError::bad_request)?;
                chat.validate().map_err(ApiError::bad_request)?;
                let options =
                    call_options(&mut chat.extra, option_headers(&headers), &principal)?;
                let sse = query
                    .as_deref()
                    .is_some_and(|q| q.split('&').any(|p| p == "alt=sse"));
                let dialect = Dialect::Gemini {
                    model: model.to_owned(),
                    sse,
                };
                let operation = Operation::Chat(chat);
                let mut call = CallRequest::new(principal, request_id, operation, options, body.len());
                crate::observe::prepare(&state, &mut call, &headers, &body);
                serve(&state, call, dialect).await
            }
            "countTokens" => {
                require_scope(&principal, KeyScope::Chat)?;
                let mut value: Value = parse_json(&body)?;
                // Either `contents` or a whole `generateContentRequest`.
                if let Some(inner) = value.get_mut("generateContentRequest") {
                    value = inner.take();
                }
                let request: GenerateContentRequest = parse_json(value.to_string().as_bytes())?;
                let mut chat = inbound::to_chat_request(model, request, false)
                    .map_err(ApiError::bad_request)?;
                let options =
                    call_options(&mut chat.extra, option_headers(&headers), &principal)?;
                let tokens = state
                    .gateway
                    .count_tokens(
                        &principal,
                        &chat,
                        &options,
                        crate::observe::client_traceparent(&headers),
                    )
                    .await?;
                Ok(Json(json!({"totalTokens": tokens})).into_response())
            }
            "embedContent" | "batchEmbedContents" => {
                require_scope(&principal, KeyScope::Embeddings)?;
                let value: Value = parse_json(&body)?;
                let batch = method == "batchEmbedContents";
                let request = if batch {
                    inbound::batch_embedding_request(model, &value)
                } else {
                    inbound::embedding_request(model, &value)
                }
                .map_err(ApiError::bad_request)?;
                request.validate().map_err(ApiError::bad_request)?;
                // Gemini's fields are not the gateway's options.
                let options = call_options(&mut Map::new(), option_headers(&headers), &principal)?;
                let operation = Operation::Embed(request);
                let mut call = CallRequest::new(principal, request_id, operation, options, body.len());
                crate::observe::prepare(&state, &mut call, &headers, &body);
                let dialect = Dialect::OpenAi {
                    include_usage: false,
                };
                let response = serve(&state, call, dialect).await?;
                reencode(response, |answer| {
                    if batch {
                        inbound::batch_embed_response(answer)
                    } else {
                        inbound::embed_content_response(answer)
                    }
                })
                .await
            }
            other => Err(ApiError::not_found(format!("no such method: `{other}`"))),
        }
    }
    .await;
    outcome.unwrap_or_else(google_error)
}

/// A JSON answer's body rewritten by `encode`, its headers kept.
async fn reencode(
    response: Response,
    encode: impl FnOnce(&Value) -> Value,
) -> Result<Response, ApiError> {
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_EMBEDDINGS_BODY)
        .await
        .map_err(ApiError::internal)?;
    let answer: Value = serde_json::from_slice(&bytes).map_err(ApiError::internal)?;
    let body = encode(&answer).to_string();
    parts.headers.remove(header::CONTENT_LENGTH);
    Ok(Response::from_parts(parts, axum::body::Body::from(body)))
}

fn model_json(model: &ModelEntry) -> Value {
    let methods = match model.mode {
        tollgate_core::ModelMode::Chat => {
            json!(["generateContent", "streamGenerateContent", "countTokens"])
        }
        tollgate_core::ModelMode::Embedding => json!(["embedContent", "batchEmbedContents"]),
    };
    json!({
        "name": format!("models/{}", model.id),
        "baseModelId": model.id,
        "version": "001",
        "displayName": model.id,
        "inputTokenLimit": model.context_window,
        "outputTokenLimit": model.max_output_tokens,
        "supportedGenerationMethods": methods,
    })
}

/// `GET /v1beta/models`: the models this organization can use.
pub async fn list(State(state): State<AppState>, caller: Result<GoogleKey, ApiError>) -> Response {
    let GoogleKey(principal) = match caller {
        Ok(caller) => caller,
        Err(e) => return google_error(e),
    };
    let models: Vec<Value> = usable_models(&state, &principal)
        .await
        .iter()
        .map(|m| model_json(m))
        .collect();
    Json(json!({"models": models})).into_response()
}

/// `GET /v1beta/models/{model}`.
pub async fn get(
    State(state): State<AppState>,
    caller: Result<GoogleKey, ApiError>,
    Path(target): Path<String>,
) -> Response {
    let GoogleKey(principal) = match caller {
        Ok(caller) => caller,
        Err(e) => return google_error(e),
    };
    let id = target.strip_prefix("models/").unwrap_or(&target);
    match usable_models(&state, &principal)
        .await
        .iter()
        .find(|m| m.id == id)
    {
        Some(model) => Json(model_json(model)).into_response(),
        None => google_error(ApiError::not_found(format!("model `{id}` is not found"))),
    }
}

/// Any other path under `/v1beta/`: 404 in Google's shape.
pub async fn unknown() -> Response {
    google_error(ApiError::not_found("no such endpoint"))
}

/// An [`ApiError`] in Google's error shape, with the same status.
fn google_error(e: ApiError) -> Response {
    let body = inbound::error_body(e.code.status(), &e.message);
    let mut response = (e.status(), Json(body)).into_response();
    add_headers(&mut response, e.headers, e.retry_after);
    response
}
