//! `POST /v1/chat/completions`: OpenAI Chat Completions, plain and streamed.
//! Decodes the request for the gateway and encodes its outcome; the
//! gateway routes, retries and bills.

use super::dialect::Dialect;
use super::surface::Inbound;
use crate::error::ApiError;
use crate::state::AppState;
use axum::extract::State;
use axum::response::Response;
use tollgate_gateway::Operation;
use tollgate_providers::ChatRequest;
use tollgate_tenants::KeyScope;

pub async fn chat_completions(
    State(state): State<AppState>,
    call: Inbound,
) -> Result<Response, ApiError> {
    let (request, options) = call.decode::<ChatRequest>(KeyScope::Chat)?;
    let include_usage = request.stream_options.is_some_and(|o| o.include_usage);
    let dialect = Dialect::OpenAi { include_usage };
    call.serve(&state, Operation::Chat(request), options, dialect)
        .await
}
