//! Operations endpoints.

use crate::error::ErrorBody;
use crate::metrics::Format;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Status {
    /// `ok`.
    status: &'static str,
}

/// `GET /ready` when the database cannot be reached (`code:
/// database_unreachable`), or when this instance is fenced (`code:
/// instance_fenced`): no heartbeat of it reached the database for two
/// thirds of `TOLLGATE_INSTANCE_TIMEOUT_MS`, so it serves no call that
/// needs credit.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "unavailable", "error": {"message": "database unreachable", "type": "unavailable", "code": "database_unreachable"}}))]
pub struct NotReady {
    /// `unavailable`.
    status: &'static str,
    error: ErrorBody,
}

/// The process is up.
#[utoipa::path(
    get, path = "/health", tag = "operations", operation_id = "health", security(()),
    responses((status = 200, description = "Up", body = Status))
)]
pub async fn health() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// The database is reachable and this instance is not fenced.
#[utoipa::path(
    get, path = "/ready", tag = "operations", operation_id = "ready", security(()),
    responses(
        (status = 200, description = "Ready", body = Status),
        (status = 503, description = "The database is unreachable, or this instance is fenced (its heartbeats have not reached the database lately)", body = NotReady),
    )
)]
pub async fn ready(
    State(state): State<AppState>,
) -> Result<Json<Status>, (StatusCode, Json<NotReady>)> {
    // First: a fenced instance refuses calls that need credit even when a
    // ping gets through, and while the database is away it says more.
    if let Some(reason) = state.billing.fenced() {
        return Err((
            StatusCode::SERVICE_UNAVAILABLE,
            Json(NotReady::fenced(reason)),
        ));
    }
    if state.db.ping().await {
        return Ok(Json(Status { status: "ok" }));
    }
    Err((StatusCode::SERVICE_UNAVAILABLE, Json(NotReady::database())))
}

impl NotReady {
    fn database() -> NotReady {
        NotReady {
            status: "unavailable",
            error: ErrorBody {
                message: "database unreachable".into(),
                kind: "unavailable",
                code: "database_unreachable",
                param: None,
            },
        }
    }

    fn fenced(reason: String) -> NotReady {
        NotReady {
            status: "unavailable",
            error: ErrorBody {
                message: reason,
                kind: "unavailable",
                code: "instance_fenced",
                param: None,
            },
        }
    }
}

/// Prometheus metrics: the classic text format, or OpenMetrics when the
/// `Accept` header asks for `application/openmetrics-text`.
#[utoipa::path(
    get, path = "/metrics", tag = "operations", operation_id = "metrics", security(()),
    responses((status = 200, description = "Metrics", content(
        (String = "text/plain; version=0.0.4; charset=utf-8"),
        (String = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    )))
)]
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> impl IntoResponse {
    let format = Format::negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()));
    refresh_gauges(&state);
    (
        [(header::CONTENT_TYPE, format.content_type())],
        state.metrics.render(format),
    )
}

/// A count as a gauge's value (saturating: a gauge is an `i64`).
fn gauge(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
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
    metrics.cooldowns_open.set(gauge(open));
    metrics
        .settlement_queue
        .set(gauge(state.billing.settlement_queue_depth()));
    metrics
        .instance_fenced
        .set(i64::from(state.billing.fenced().is_some()));
    metrics
        .request_log_dropped
        .set(gauge(state.observer.request_log.dropped()));
    metrics
        .trace_spans_dropped
        .set(gauge(state.observer.tracer.spans_dropped()));
    for (lease, counters) in [
        ("organization", state.billing.lease_counters()),
        ("budget", state.billing.budget_lease_counters()),
    ] {
        let labels = crate::metrics::LeaseLabels { lease };
        metrics
            .lease_top_ups
            .get_or_create(&labels)
            .set(gauge(counters.top_ups));
        metrics
            .lease_waits
            .get_or_create(&labels)
            .set(gauge(counters.calls_waited));
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn not_ready_answers_the_documented_body() {
        assert_eq!(
            serde_json::to_value(super::NotReady::database()).unwrap(),
            json!({"status": "unavailable", "error": {"message": "database unreachable", "type": "unavailable", "code": "database_unreachable"}})
        );
    }

    #[test]
    fn a_fenced_instance_answers_the_same_shape_with_its_reason() {
        assert_eq!(
            serde_json::to_value(super::NotReady::fenced("why".into())).unwrap(),
            json!({"status": "unavailable", "error": {"message": "why", "type": "unavailable", "code": "instance_fenced"}})
        );
    }
}
