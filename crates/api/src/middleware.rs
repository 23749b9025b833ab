//! Per-request middleware: [`Surface`], the entry of every request (its
//! request id on every response, errors included, in the logs and in the
//! handlers' extensions; a handler's panic answered in our error shape),
//! and the routed requests' metrics.

use crate::error::ApiError;
use crate::extract::RequestId;
use axum::Router;
use axum::body::HttpBody;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::FutureExt;
use std::convert::Infallible;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use tower::Service;
use tracing::Instrument;

/// A request's answer, as [`Surface`] returns it. A struct rather than an
/// alias of the boxed future: a future that awaits a `dyn Future` alias
/// trips rustc's higher-ranked `Send` check (rust-lang/rust#64552).
pub struct Answer(Pin<Box<dyn Future<Output = Response> + Send>>);

impl Future for Answer {
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().0.as_mut().poll(cx).map(Ok)
    }
}

/// The whole HTTP surface as one service: each request gets its id, then
/// goes to the router; a handler that panics answers 500 in our shape.
///
/// As `Router::layer`s, these two would wrap every route instead, each a
/// boxed service cloned and a future boxed on every request; here they
/// cost one box.
#[derive(Clone)]
pub struct Surface {
    router: Router,
}

impl Surface {
    pub(crate) fn new(router: Router) -> Surface {
        Surface { router }
    }
}

impl<B> Service<http::Request<B>> for Surface
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // The router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        Answer(Box::pin(enter(self.router.clone(), request)))
    }
}

async fn enter<B>(mut router: Router, mut request: http::Request<B>) -> Response
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    let id = tollgate_core::ids::new_request_id();
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    request
        .extensions_mut()
        .insert(RequestId(id.as_str().into()));
    let answer = AssertUnwindSafe(router.call(request))
        .catch_unwind()
        .instrument(span.clone())
        .await;
    let mut response = match answer {
        Ok(Ok(response)) => response,
        Ok(Err(never)) => match never {},
        Err(_) => ApiError::internal("a handler panicked").into_response(),
    };
    const REQUEST_ID: HeaderName = HeaderName::from_static(tollgate_gateway::headers::REQUEST_ID);
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn answer(surface: Surface, path: &str) -> (Response, serde_json::Value) {
        let request = http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap();
        let response = surface.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (Response::from_parts(parts, axum::body::Body::empty()), json)
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_500_in_the_error_shape_with_its_request_id() {
        let router = Router::new().route(
            "/boom",
            get(|| async {
                panic!("boom");
                #[allow(unreachable_code)]
                ""
            }),
        );
        let (response, body) = answer(Surface::new(router), "/boom").await;
        assert_eq!(response.status(), 500);
        assert_eq!(body["error"]["code"], "internal_error");
        let id = response.headers()[tollgate_gateway::headers::REQUEST_ID]
            .to_str()
            .unwrap();
        assert_eq!(id.len(), 36, "a UUID: {id}");
    }

    #[tokio::test]
    async fn every_answer_carries_a_new_request_id_which_the_handler_sees() {
        let router = Router::new().route(
            "/id",
            get(
                |axum::Extension(RequestId(id)): axum::Extension<RequestId>| async move {
                    axum::Json(serde_json::json!({ "id": &*id }))
                },
            ),
        );
        let surface = Surface::new(router);
        let (first, body) = answer(surface.clone(), "/id").await;
        let header = first.headers()[tollgate_gateway::headers::REQUEST_ID]
            .to_str()
            .unwrap();
        assert_eq!(body["id"], header);
        let (second, _) = answer(surface, "/id").await;
        assert_ne!(
            second.headers()[tollgate_gateway::headers::REQUEST_ID],
            header
        );
    }
}
