//! `POST /v1/messages`: Anthropic's Messages API in front of any model.
//!
//! The request is turned into Tollgate's (OpenAI-format) request and goes
//! through the same candidates, holds and settlement as
//! `/v1/chat/completions`; the answer comes back as an Anthropic message or
//! Anthropic's SSE event sequence, written chunk by chunk. Errors use
//! Anthropic's shape, `{"type":"error","error":{"type","message"}}`.
//! Auth: `x-api-key` or `Authorization: Bearer`.

use super::chat::{estimated_tokens, relay};
use super::dialect::Dialect;
use super::org_policy::{allowed_candidates, default_level};
use crate::error::ApiError;
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json, require_scope};
use crate::limits::{admit, quota_headers};
use crate::state::AppState;
use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use std::time::Instant;
use tollgate_core::{ModelMode, PowerLevel, ProviderKind};
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
    let started = Instant::now();
    let outcome = async {
        let OrgKey(principal) = caller?;
        require_scope(&principal, KeyScope::Chat)?;
        let BodyBytes(body) = body?;
        let mut request: MessagesRequest = parse_json(&body)?;
        let level = power_level(
            request.extra.remove("power_level"),
            &headers,
            default_level(&principal),
        )?;
        let candidates = tollgate_routing::candidates(
            &state.catalog.current(),
            &request.model,
            level,
            ModelMode::Chat,
        )?;
        let candidates = allowed_candidates(&principal, &request.model, level, candidates)?;
        // Anthropic-only fields (`thinking`, `top_k`) reach Anthropic models;
        // OpenAI-compatible APIs would refuse them.
        let all_anthropic = candidates.iter().all(|m| {
            state
                .catalog
                .provider(&m.provider)
                .is_some_and(|p| p.kind == ProviderKind::Anthropic)
        });
        let model = request.model.clone();
        let options = InboundOptions {
            keep_anthropic_fields: all_anthropic,
        };
        let mut chat = to_chat_request(request, options).map_err(ApiError::bad_request)?;
        chat.validate().map_err(ApiError::bad_request)?;
        let needs = super::deployments::needs_of(&mut chat)?;
        let candidates = tollgate_routing::fit::fitting(candidates, &model, &needs)?;
        let timeout = super::chat::client_timeout(&headers)?;
        let admission = admit(&state, &principal, estimated_tokens(body.len(), &chat)).await?;
        let quotas = admission.quotas();
        let call = state.streams.spawn(relay(
            state.clone(),
            principal,
            chat,
            request_id,
            candidates,
            started,
            timeout,
            Dialect::Anthropic { model },
            admission,
        ));
        let mut response = call.await.map_err(ApiError::internal)??;
        quota_headers(response.headers_mut(), quotas);
        Ok(response)
    }
    .await;
    match outcome {
        Ok(response) => response,
        Err(e) => anthropic_error(e),
    }
}

/// `POST /v1/messages/count_tokens`: `{"input_tokens"}` for a Messages
/// request (see [`super::count`]).
pub async fn count_tokens(
    State(state): State<AppState>,
    caller: Result<OrgKey, ApiError>,
    body: Result<BodyBytes, ApiError>,
) -> Response {
    let outcome = async {
        let OrgKey(principal) = caller?;
        require_scope(&principal, KeyScope::Chat)?;
        let BodyBytes(body) = body?;
        let mut value: Value = parse_json(&body)?;
        // A count has no output limit; the Messages shape wants one.
        if let Some(map) = value.as_object_mut() {
            map.entry("max_tokens").or_insert(Value::from(1));
        }
        let request: MessagesRequest = parse_json(value.to_string().as_bytes())?;
        let chat =
            to_chat_request(request, InboundOptions::default()).map_err(ApiError::bad_request)?;
        chat.validate().map_err(ApiError::bad_request)?;
        let tokens = super::count::prompt_tokens(&state, &principal, &chat).await?;
        Ok::<_, ApiError>(Json(serde_json::json!({"input_tokens": tokens})).into_response())
    }
    .await;
    outcome.unwrap_or_else(anthropic_error)
}

/// Any other path under `/v1/messages/`: 404 in Anthropic's shape.
pub async fn unknown() -> Response {
    anthropic_error(ApiError::not_found("no such endpoint"))
}

/// The power level for `"model": "auto"`: the body's `power_level` (not
/// forwarded) or the `x-tollgate-power-level` header; else `default` (the
/// organization's default power level, or `balanced`).
fn power_level(
    from_body: Option<Value>,
    headers: &HeaderMap,
    default: PowerLevel,
) -> Result<PowerLevel, ApiError> {
    let invalid = || ApiError::bad_request("`power_level` must be one of eco, balanced, precision");
    match from_body {
        Some(Value::String(s)) => return s.parse().map_err(|_| invalid()),
        Some(Value::Null) => return Ok(default),
        Some(_) => return Err(invalid()),
        None => {}
    }
    match headers.get("x-tollgate-power-level") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid),
        None => Ok(default),
    }
}

/// An [`ApiError`] in Anthropic's error shape, with the same status.
fn anthropic_error(e: ApiError) -> Response {
    let body = error_body(e.status.as_u16(), &e.message);
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
