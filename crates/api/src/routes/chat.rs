//! `POST /v1/chat/completions`: OpenAI Chat Completions, plain and streamed.
//! Decodes the request for the gateway and encodes its outcome; the
//! gateway routes, retries and bills.

use super::dialect::Dialect;
use super::surface::{option_headers, serve};
use crate::error::ApiError;
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use tollgate_gateway::admission::require_scope;
use tollgate_gateway::{CallRequest, Operation, call_options};
use tollgate_providers::ChatRequest;
use tollgate_tenants::KeyScope;

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    OrgKey(principal): OrgKey,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    // A key without the scope learns nothing about its body's faults.
    require_scope(&principal, KeyScope::Chat)?;
    let mut request: ChatRequest = parse_json(&body)?;
    request.validate().map_err(ApiError::bad_request)?;
    let options = call_options(&mut request.extra, option_headers(&headers), &principal)?;
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let operation = Operation::Chat(request);
    let call = CallRequest::new(principal, request_id, operation, options, body.len());
    serve(&state, call, Dialect::OpenAi { include_usage }).await
}
