//! `POST /v1/embeddings`: OpenAI Embeddings, billed by input tokens, with
//! the same fallbacks, retries, deployment caps and cooldowns as chat.

use super::dialect::Dialect;
use super::surface::Inbound;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use tollgate_gateway::Operation;
use tollgate_providers::EmbeddingRequest;
use tollgate_tenants::KeyScope;

pub async fn embeddings(
    State(state): State<AppState>,
    call: Inbound,
) -> Result<Response, ApiError> {
    let (request, options) = call.decode::<EmbeddingRequest>(KeyScope::Embeddings)?;
    let dialect = Dialect::OpenAi {
        include_usage: false,
    };
    call.serve(&state, Operation::Embed(request), options, dialect)
        .await
}
