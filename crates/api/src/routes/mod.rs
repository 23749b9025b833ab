//! The whole HTTP surface: data plane (`/v1/…`), management plane
//! (`/api/v1/…`) and operations (`/health`, `/ready`, `/metrics`,
//! `/openapi.json`, `/docs`).

pub(crate) mod admin;
pub(crate) mod billing_webhooks;
mod chat;
mod dialect;
mod embeddings;
mod gemini;
mod messages;
pub(crate) mod models;
pub(crate) mod ops;
mod responses;
pub(crate) mod routing_health;
mod surface;

use crate::error::ApiError;
use crate::middleware::Surface;
use crate::state::AppState;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};

/// Builds the HTTP surface for a prepared gateway state.
pub fn app(state: AppState) -> Surface {
    let router = Router::new()
        .route("/v1/chat/completions", post(chat::chat_completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/messages", post(messages::messages))
        .route("/v1/messages/count_tokens", post(messages::count_tokens))
        .route("/v1/messages/{*rest}", any(messages::unknown))
        .route("/v1/responses", post(responses::create))
        .route(
            "/v1/responses/{id}",
            get(responses::get).delete(responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(responses::input_items_list),
        )
        .route("/v1/models", get(models::list_models))
        .route("/v1/models/{id}", get(models::get_model))
        .route("/v1beta/models", get(gemini::list))
        .route(
            "/v1beta/models/{*target}",
            post(gemini::call).get(gemini::get),
        )
        .route("/v1beta/{*rest}", any(gemini::unknown))
        .merge(admin::routes())
        .route(
            "/api/v1/billing/webhooks/stripe",
            post(billing_webhooks::stripe),
        )
        .route(
            "/api/v1/billing/webhooks/lago",
            post(billing_webhooks::lago),
        )
        .route(
            "/api/v1/routing/health",
            get(routing_health::routing_health),
        )
        .route("/health", get(ops::health))
        .route("/ready", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(crate::openapi::serve_document))
        .route("/docs", get(crate::openapi::serve_docs))
        .merge(crate::console::routes())
        // Routed requests only: their template is a bounded label.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::http_metrics,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .with_state(state);
    Surface::new(router)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        tollgate_core::ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}
