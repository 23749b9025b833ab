//! OpenAI's Responses API in front of any model: `POST /v1/responses`
//! (plain and streamed), `GET` and `DELETE /v1/responses/{id}`,
//! `GET /v1/responses/{id}/input_items`. `background: true` is refused
//! (400 naming it): answers are served while the client waits.
//!
//! The request is decoded in two forms, the provider's Responses body and
//! its Chat translation; the gateway sends the first to a provider that
//! speaks Responses (OpenAI) and the second to any other, and the answer is
//! relayed or encoded as a Responses object or its SSE events. With `store` (the
//! default) the final object and the conversation are kept for the
//! organization (`TOLLGATE_RESPONSES_RETENTION_DAYS`), so `GET` and
//! `previous_response_id` find them, with the input items; another
//! organization gets 404.

use super::dialect::{Dialect, STORE_WAIT};
use super::surface::Inbound;
use crate::error::ApiError;
use crate::extract::{OrgKey, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::sync::Mutex;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tollgate_gateway::Operation;
use tollgate_providers::ChatMessage;
use tollgate_providers::responses::items::{ItemsQuery, input_items, page};
use tollgate_providers::responses::native::{ResponsesCall, decode};
use tollgate_providers::responses::{ResponseContext, ResponsesRequest, assistant_message};
use tollgate_tenants::{KeyScope, Principal};

pub async fn create(State(state): State<AppState>, inbound: Inbound) -> Result<Response, ApiError> {
    let (request, options) = inbound.decode::<ResponsesRequest>(KeyScope::Chat)?;
    let history = match request.previous_response_id.as_deref() {
        Some(previous) => history(&state, &inbound.principal, previous).await?,
        None => Vec::new(),
    };
    let call = decode(&request, history).map_err(ApiError::bad_request)?;
    call.chat.validate().map_err(ApiError::bad_request)?;
    let context = ResponseContext::new(tollgate_core::ids::new_id("resp"), &request);
    let (done, stored, storing) = if request.store() {
        let (done, object) = oneshot::channel();
        let (ack, acked) = oneshot::channel::<()>();
        let storing = keep(
            &state,
            &inbound.principal,
            &request,
            &call,
            &context,
            object,
            ack,
        );
        (Some(done), Some(acked), Some(storing))
    } else {
        (None, None, None)
    };
    let stream = call.chat.stream;
    let dialect = Dialect::Responses {
        context,
        done: Mutex::new(done),
        stored: Mutex::new(stored),
    };
    let response = inbound
        .serve(&state, Operation::Responses(call), options, dialect)
        .await?;
    // A plain answer is stored before it is sent, so that a follow-up
    // naming it finds it (a stream's last event waits the same way).
    if let Some(storing) = storing.filter(|_| !stream) {
        let _ = tokio::time::timeout(STORE_WAIT, storing).await;
    }
    Ok(response)
}

/// The conversation of the organization's response `previous`.
async fn history(
    state: &AppState,
    principal: &Principal,
    previous: &str,
) -> Result<Vec<ChatMessage>, ApiError> {
    let stored = state
        .responses
        .get(&principal.organization_id, previous)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "previous response `{previous}` not found (`previous_response_id`)"
            ))
        })?;
    serde_json::from_str(&stored.messages).map_err(ApiError::internal)
}

/// Keeps the response once the answer is complete (a stream's last event):
/// the object, the conversation (the request's turns plus the answer's) and
/// the input items; `ack` is told once it is stored.
fn keep(
    state: &AppState,
    principal: &Principal,
    request: &ResponsesRequest,
    call: &ResponsesCall,
    context: &ResponseContext,
    object: oneshot::Receiver<Value>,
    ack: oneshot::Sender<()>,
) -> JoinHandle<()> {
    let mut messages = call.chat.messages.clone();
    // Instructions are not carried over to a follow-up (OpenAI's rule).
    let instructed = request
        .instructions
        .as_deref()
        .is_some_and(|i| !i.is_empty());
    if instructed && messages.first().is_some_and(|m| m.role == "system") {
        messages.remove(0);
    }
    let items = Value::Array(input_items(request, &context.id)).to_string();
    let store = state.responses.clone();
    let organization_id = principal.organization_id.clone();
    let id = context.id.clone();
    state.gateway.streams.spawn(async move {
        let Ok(object) = object.await else {
            return;
        };
        messages.push(assistant_message(&object));
        let messages = serde_json::to_string(&messages).unwrap_or_else(|_| "[]".into());
        let object = object.to_string();
        if let Err(e) = store
            .insert(&id, &organization_id, &object, &messages, &items)
            .await
        {
            tracing::error!(error = %e, "storing a response failed");
        }
        let _ = ack.send(());
    })
}

pub async fn get(
    State(state): State<AppState>,
    OrgKey(principal): OrgKey,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let stored = state
        .responses
        .get(&principal.organization_id, &id)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(|| not_found(&id))?;
    let object: Value = serde_json::from_str(&stored.response).map_err(ApiError::internal)?;
    Ok(Json(object).into_response())
}

pub async fn delete(
    State(state): State<AppState>,
    OrgKey(principal): OrgKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if state
        .responses
        .delete(&principal.organization_id, &id)
        .await
        .map_err(ApiError::from_db)?
    {
        Ok(Json(
            json!({"id": id, "object": "response", "deleted": true}),
        ))
    } else {
        Err(not_found(&id))
    }
}

pub async fn input_items_list(
    State(state): State<AppState>,
    OrgKey(principal): OrgKey,
    Path(id): Path<String>,
    QueryParams(query): QueryParams<ItemsQuery>,
) -> Result<Json<Value>, ApiError> {
    let stored = state
        .responses
        .input_items(&principal.organization_id, &id)
        .await
        .map_err(ApiError::from_db)?
        .ok_or_else(|| not_found(&id))?;
    let items: Vec<Value> = serde_json::from_str(&stored).map_err(ApiError::internal)?;
    Ok(Json(page(items, &query).map_err(ApiError::bad_request)?))
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("response `{id}` not found"))
}
