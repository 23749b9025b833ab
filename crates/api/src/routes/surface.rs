//! What every data-plane surface shares: reading the gateway's option
//! headers, and writing the gateway's outcome as an HTTP answer (the
//! `x-tollgate-*` and `x-ratelimit-*` headers, a JSON body or an SSE
//! stream in the client's dialect). Billing and routing are the gateway's
//! (crates/gateway); a surface only decodes and encodes.
//!
//! A new surface: a handler that decodes its body into a `CallRequest`
//! (see the chat and messages handlers; an OpenAI-shaped body through
//! [`Inbound`]), a [`Dialect`] variant that writes
//! the answer body and the stream items in its format (`dialect.rs`), and
//! its own error shape if it has one (see `messages.rs`); then [`serve`].

use super::dialect::Dialect;
use crate::error::ApiError;
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json};
use crate::limits::quota_headers;
use crate::state::AppState;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use std::convert::Infallible;
use std::sync::Arc;
use tollgate_gateway::admission::require_scope;
use tollgate_gateway::{
    CallOptions, CallRequest, Operation, OptionHeaders, Outcome, Route, StreamItem, call_options,
    headers,
};
use tollgate_providers::responses::ResponsesRequest;
use tollgate_providers::{ChatRequest, EmbeddingRequest};
use tollgate_tenants::{KeyScope, Principal};

/// The gateway's option headers, as text (a value that is not text is
/// given as `""`, which the gateway refuses like any bad value).
pub fn option_headers(headers: &HeaderMap) -> OptionHeaders<'_> {
    let text = |name: &str| headers.get(name).map(|v| v.to_str().unwrap_or(""));
    OptionHeaders {
        power_level: text(headers::POWER_LEVEL),
        timeout_ms: text(headers::TIMEOUT_MS),
    }
}

/// An inbound call as its handler reads it: the request id, the
/// organization key that sent it (authenticated before the body is read:
/// a caller without a valid key learns nothing about its body's faults),
/// the headers and the raw body within the size limit.
pub struct Inbound {
    pub request_id: Arc<str>,
    pub principal: Arc<Principal>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl FromRequest<AppState> for Inbound {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        // Set by the surface's middleware on every request.
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|RequestId(id)| Arc::clone(id))
            .ok_or_else(|| ApiError::internal("request without its id"))?;
        let OrgKey(principal) = OrgKey::from_request_parts(&mut parts, state).await?;
        let headers = parts.headers.clone();
        let BodyBytes(body) =
            BodyBytes::from_request(Request::from_parts(parts, body), state).await?;
        Ok(Inbound {
            request_id,
            principal,
            headers,
            body,
        })
    }
}

/// An OpenAI-shaped request body: validated on its own, with the gateway's
/// options (`power_level`, `models`, …) among its extra fields.
pub trait OpenAiBody: DeserializeOwned {
    fn validate(&self) -> Result<(), String>;
    fn extra(&mut self) -> &mut Map<String, Value>;
}

impl OpenAiBody for ChatRequest {
    fn validate(&self) -> Result<(), String> {
        ChatRequest::validate(self)
    }
    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl OpenAiBody for EmbeddingRequest {
    fn validate(&self) -> Result<(), String> {
        EmbeddingRequest::validate(self)
    }
    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl OpenAiBody for ResponsesRequest {
    /// The rest is checked once its input is decoded into a chat request.
    fn validate(&self) -> Result<(), String> {
        if self.model.trim().is_empty() {
            return Err("`model` must not be empty".into());
        }
        Ok(())
    }
    fn extra(&mut self) -> &mut Map<String, Value> {
        &mut self.extra
    }
}

impl Inbound {
    /// The body as an OpenAI-shaped request, and the gateway's options
    /// taken out of it and the headers. The key's `scope` is checked
    /// first.
    pub fn decode<R: OpenAiBody>(&self, scope: KeyScope) -> Result<(R, CallOptions), ApiError> {
        require_scope(&self.principal, scope)?;
        let mut request: R = parse_json(&self.body)?;
        request.validate().map_err(ApiError::bad_request)?;
        let options = call_options(
            request.extra(),
            option_headers(&self.headers),
            &self.principal,
        )?;
        Ok((request, options))
    }

    /// Makes the call of `operation` with `options` and writes its outcome
    /// in `dialect` (see [`serve`]).
    pub async fn serve(
        self,
        state: &AppState,
        operation: Operation,
        options: CallOptions,
        dialect: Dialect,
    ) -> Result<Response, ApiError> {
        let mut call = CallRequest::new(
            self.principal,
            self.request_id,
            operation,
            options,
            self.body.len(),
        );
        crate::observe::prepare(state, &mut call, &self.headers, &self.body);
        serve(state, call, dialect).await
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
