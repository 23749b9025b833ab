//! Operations endpoints.

use crate::metrics::Format;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

pub async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.db.ping().await {
        (StatusCode::OK, Json(json!({"status": "ok"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(
                json!({"status": "unavailable", "error": {"message": "database unreachable", "type": "unavailable", "code": "database_unreachable"}}),
            ),
        )
    }
}

/// `GET /metrics`: the classic Prometheus text format, or OpenMetrics when
/// the `Accept` header prefers it.
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    refresh_gauges(&state);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.metrics.render(format),
    )
}

/// The values read at each scrape rather than counted as they change.
fn refresh_gauges(state: &AppState) {
    let metrics = &state.metrics;
    let open = state
        .gateway
        .health
        .snapshot(std::time::Instant::now())
        .iter()
        .filter(|d| d.cooldown_remaining.is_some())
        .count();
    metrics
        .cooldowns_open
        .set(i64::try_from(open).unwrap_or(i64::MAX));
    metrics
        .settlement_queue
        .set(i64::try_from(state.billing.settlement_queue_depth()).unwrap_or(i64::MAX));
    metrics
        .request_log_dropped
        .set(i64::try_from(state.observer.request_log.dropped()).unwrap_or(i64::MAX));
    metrics
        .trace_spans_dropped
        .set(i64::try_from(state.observer.tracer.spans_dropped()).unwrap_or(i64::MAX));
}
