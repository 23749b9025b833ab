//! `POST /v1/messages`: Anthropic's Messages API in front of any model.
//!
//! The request is decoded into Tollgate's (OpenAI-format) request and goes
//! through the gateway like `/v1/chat/completions`; the answer comes back
//! as an Anthropic message or Anthropic's SSE event sequence, written chunk
//! by chunk. Errors use Anthropic's shape,
//! `{"type":"error","error":{"type","message"}}`. Auth: `x-api-key` or
//! `Authorization: Bearer`.

use super::dialect::Dialect;
use super::surface::{option_headers, serve};
use crate::error::{ApiError, add_headers};
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json};
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use tollgate_core::{ModelMode, ProviderKind};
use tollgate_gateway::admission::require_scope;
use tollgate_gateway::{CallRequest, Operation, call_options};
use tollgate_providers::anthropic::inbound::{InboundOptions, error_body, to_chat_request};
use tollgate_providers::anthropic::wire::MessagesRequest;
use tollgate_tenants::KeyScope;

pub async fn messages(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    caller: Result<OrgKey, ApiError>,
    headers: HeaderMap,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let outcome = async {
        let OrgKey(principal) = caller?;
        // Before the candidates are read: they depend on the key's rights.
        require_scope(&principal, KeyScope::Chat)?;
        let BodyBytes(body) = body?;
        let mut request: MessagesRequest = parse_json(&body)?;
        let options = call_options(&mut request.extra, option_headers(&headers), &principal)?;
        // Anthropic-only fields (`thinking`, `top_k`) reach Anthropic models;
        // OpenAI-compatible APIs would refuse them.
        let gateway = &state.gateway;
        let candidates =
            gateway.candidates(&principal, &request.model, &options, ModelMode::Chat)?;
        let keep_anthropic_fields = candidates
            .iter()
            .all(|m| gateway.provider_kind(m) == Some(ProviderKind::Anthropic));
        let model = request.model.clone();
        let chat = to_chat_request(
            request,
            InboundOptions {
                keep_anthropic_fields,
            },
        )
        .map_err(ApiError::bad_request)?;
        chat.validate().map_err(ApiError::bad_request)?;
        let operation = Operation::Chat(chat);
        let mut call = CallRequest::new(principal, request_id, operation, options, body.len());
        crate::observe::prepare(&state, &mut call, &headers, &body);
        serve(&state, call, Dialect::Anthropic { model }).await
    }
    .await;
    outcome.unwrap_or_else(anthropic_error)
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens"}` for a Messages
/// request: the provider's own count where it has one, else an estimate
/// (see `tollgate_gateway`'s `count`). Free.
pub async fn count_tokens(
    State(state): State<AppState>,
    caller: Result<OrgKey, ApiError>,
    headers: HeaderMap,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let outcome = async {
        let OrgKey(principal) = caller?;
        require_scope(&principal, KeyScope::Chat)?;
        let BodyBytes(body) = body?;
        let mut value: serde_json::Value = parse_json(&body)?;
        // A count has no output limit; the Messages shape wants one.
        if let Some(map) = value.as_object_mut() {
            map.entry("max_tokens")
                .or_insert(serde_json::Value::from(1));
        }
        let mut request: MessagesRequest = parse_json(value.to_string().as_bytes())?;
        let options = call_options(&mut request.extra, option_headers(&headers), &principal)?;
        let chat =
            to_chat_request(request, InboundOptions::default()).map_err(ApiError::bad_request)?;
        chat.validate().map_err(ApiError::bad_request)?;
        let tokens = state
            .gateway
            .count_tokens(
                &principal,
                &chat,
                &options,
                crate::observe::client_traceparent(&headers),
            )
            .await?;
        Ok::<_, ApiError>(Json(serde_json::json!({"input_tokens": tokens})).into_response())
    }
    .await;
    outcome.unwrap_or_else(anthropic_error)
}

/// Any other path under `/v1/messages/`: 404 in Anthropic's shape.
pub async fn unknown() -> Response {
    anthropic_error(ApiError::not_found("no such endpoint"))
}

/// An [`ApiError`] in Anthropic's error shape, with the same status.
fn anthropic_error(e: ApiError) -> Response {
    let body = error_body(e.code.status(), &e.message);
    let mut response = (e.status(), Json(body)).into_response();
    response.extensions_mut().insert(e.code);
    add_headers(&mut response, e.headers, e.retry_after);
    response
}
