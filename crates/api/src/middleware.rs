//! Per-request middleware: a request id on every response (errors
//! included), in the logs and in the handlers' extensions.

use crate::extract::RequestId;
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

pub async fn request_id(mut request: Request, next: Next) -> Response {
    let id = tollgate_core::ids::new_request_id();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    request
        .extensions_mut()
        .insert(RequestId(id.as_str().into()));
    let mut response = next.run(request).instrument(span.clone()).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response
            .headers_mut()
            .insert(tollgate_gateway::headers::REQUEST_ID, value);
    }
    let status = response.status().as_u16();
    // A 503 `service_unavailable` is the database being away: the
    // background tasks that keep polling it say so at a bounded rate
    // (`tollgate_core::outage`), so each refused call is not a warning too.
    let database_away = response.extensions().get::<tollgate_core::ErrorCode>()
        == Some(&tollgate_core::ErrorCode::ServiceUnavailable);
    span.in_scope(|| {
        if status >= 500 && !database_away {
            tracing::warn!(status, "request failed");
        } else {
            tracing::debug!(status, "request served");
        }
    });
    response
}

/// Counts every routed request by its route template, status and error
/// code, and times it to its response headers (`tollgate_http_*`).
pub async fn http_metrics(
    axum::extract::State(state): axum::extract::State<crate::state::AppState>,
    request: Request,
    next: Next,
) -> Response {
    let started = std::time::Instant::now();
    // Shared, not copied: a matched path is reference-counted.
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .cloned();
    let response = next.run(request).await;
    let code = response
        .extensions()
        .get::<tollgate_core::ErrorCode>()
        .map_or("", |c| c.as_str());
    state.metrics.record_http(
        route.as_ref().map_or("unmatched", |p| p.as_str()),
        response.status().as_u16(),
        code,
        started.elapsed(),
    );
    response
}
