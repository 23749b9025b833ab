//! `POST /v1/embeddings`: OpenAI Embeddings, billed by input tokens, with
//! the same fallbacks, retries, deployment caps and cooldowns as chat.

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
use tollgate_providers::EmbeddingRequest;
use tollgate_tenants::KeyScope;

pub async fn embeddings(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    OrgKey(principal): OrgKey,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    // A key without the scope learns nothing about its body's faults.
    require_scope(&principal, KeyScope::Embeddings)?;
    let mut request: EmbeddingRequest = parse_json(&body)?;
    request.validate().map_err(ApiError::bad_request)?;
    let options = call_options(&mut request.extra, option_headers(&headers), &principal)?;
    let operation = Operation::Embed(request);
    let call = CallRequest::new(principal, request_id, operation, options, body.len());
    let dialect = Dialect::OpenAi {
        include_usage: false,
    };
    serve(&state, call, dialect).await
}
