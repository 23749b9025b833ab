//! What every data-plane surface shares: reading the gateway's option
//! headers, and writing the gateway's outcome as an HTTP answer (the
//! `x-tollgate-*` and `x-ratelimit-*` headers, a JSON body or an SSE
//! stream in the client's dialect). Billing and routing are the gateway's
//! (crates/gateway); a surface only decodes and encodes.
//!
//! A new surface: a handler that decodes its body into a `CallRequest`
//! (see the chat and messages handlers), a [`Dialect`] variant that writes
//! the answer body and the stream items in its format (`dialect.rs`), and
//! its own error shape if it has one (see `messages.rs`); then [`serve`].

use super::dialect::Dialect;
use crate::error::ApiError;
use crate::limits::quota_headers;
use crate::state::AppState;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use std::convert::Infallible;
use tollgate_gateway::{CallRequest, OptionHeaders, Outcome, Route, StreamItem, headers};

/// The gateway's option headers, as text (a value that is not text is
/// given as `""`, which the gateway refuses like any bad value).
pub fn option_headers(headers: &HeaderMap) -> OptionHeaders<'_> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    OptionHeaders {
        power_level: text(headers::POWER_LEVEL),
        timeout_ms: text(headers::TIMEOUT_MS),
    }
}

/// Makes the call and writes its outcome in `dialect`.
pub async fn serve(
    state: &AppState,
    call: CallRequest,
    dialect: Dialect,
) -> Result<Response, ApiError> {
    let outcome = state.gateway.call(call).await?;
    Ok(respond(outcome, dialect))
}

/// The HTTP answer of an outcome.
fn respond(outcome: Outcome, dialect: Dialect) -> Response {
    match outcome {
        Outcome::Answer {
            body,
            usage,
            route,
            cost,
        } => {
            let body = dialect.answer_body(body, &usage, route.wire);
            let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
            route_headers(response.headers_mut(), &route, cost);
            response
        }
        Outcome::Stream { route, events } => {
            let content_type = HeaderValue::from_static(dialect.stream_content_type());
            let encoder = dialect.encoder(route.wire);
            // Item by item; a stream's end waits for what it announces
            // (`Encoder::settled`) before its events go out.
            let body = futures::stream::unfold(
                (events, encoder),
                |(mut events, mut encoder)| async move {
                    let item = events.next().await?;
                    let end = matches!(item, StreamItem::End(_));
                    let bytes = encoder.item(item);
                    if end {
                        encoder.settled().await;
                    }
                    Some((futures::stream::iter(bytes), (events, encoder)))
                },
            )
            .flatten()
            .map(Ok::<_, Infallible>);
            let mut response = Response::new(Body::from_stream(body));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type);
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            // A stream's cost is in its usage record.
            route_headers(headers, &route, None);
            response
        }
    }
}

/// Sets the `x-tollgate-*` headers of contract section 3 (the request id is
/// set by the middleware on every response), the attempts and the quotas.
fn route_headers(map: &mut HeaderMap, route: &Route, cost: Option<i64>) {
    // Checked at compile time rather than on every answer.
    const MODEL: HeaderName = HeaderName::from_static(headers::MODEL);
    const PROVIDER: HeaderName = HeaderName::from_static(headers::PROVIDER);
    const BYOK: HeaderName = HeaderName::from_static(headers::BYOK);
    const COST: HeaderName = HeaderName::from_static(headers::COST);
    const ATTEMPTS: HeaderName = HeaderName::from_static(headers::ATTEMPTS);
    if let Ok(v) = HeaderValue::from_str(&route.model.id) {
        map.insert(MODEL, v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.model.provider) {
        map.insert(PROVIDER, v);
    }
    map.insert(
        BYOK,
        HeaderValue::from_static(if route.byok { "true" } else { "false" }),
    );
    if let Some(cost) = cost {
        map.insert(COST, HeaderValue::from(cost));
    }
    map.insert(ATTEMPTS, HeaderValue::from(route.attempts));
    quota_headers(map, route.quotas);
}
