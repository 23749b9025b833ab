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

use super::chat::serve;
use super::dialect::Dialect;
use super::models::usable_models;
use crate::error::ApiError;
use crate::extract::{BodyBytes, GoogleKey, RequestId, parse_json, require_scope};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde_json::{Value, json};
use std::time::Instant;
use tollgate_core::ModelEntry;
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
    headers: HeaderMap,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let started = Instant::now();
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
                let chat = inbound::to_chat_request(model, request, stream)
                    .map_err(ApiError::bad_request)?;
                let dialect = Dialect::Gemini {
                    model: model.to_owned(),
                };
                serve(
                    state, request_id, principal, &headers, body.len(), chat, dialect, started,
                )
                .await
            }
            "countTokens" => {
                require_scope(&principal, KeyScope::Chat)?;
                let mut value: Value = parse_json(&body)?;
                // Either `contents` or a whole `generateContentRequest`.
                if let Some(inner) = value.get_mut("generateContentRequest") {
                    value = inner.take();
                }
                let request: GenerateContentRequest = parse_json(value.to_string().as_bytes())?;
                let chat = inbound::to_chat_request(model, request, false)
                    .map_err(ApiError::bad_request)?;
                let tokens = super::count::prompt_tokens(&state, &principal, &chat).await?;
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
                let response =
                    super::embeddings::serve(state, request_id, principal, body.len(), request, started)
                        .await?;
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
    let body = inbound::error_body(e.status.as_u16(), &e.message);
    let mut response = (e.status, Json(body)).into_response();
    for (name, value) in e.headers {
        response.headers_mut().insert(name, value);
    }
    if let Some(secs) = e.retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    response
}
