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
    span.in_scope(|| {
        if status >= 500 {
            tracing::warn!(status, "request failed");
        } else {
            tracing::debug!(status, "request served");
        }
    });
    response
}
