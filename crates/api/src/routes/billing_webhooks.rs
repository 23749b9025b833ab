//! Inbound billing webhooks from Stripe and Lago. No bearer token: the
//! signature over the raw body is the authentication.

use crate::error::ApiError;
use crate::extract::BodyBytes;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_webhooks::InboundOutcome;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /api/v1/billing/webhooks/stripe`
pub async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Json<InboundOutcome>, ApiError> {
    let outcome = state
        .webhooks
        .stripe_event(header(&headers, "stripe-signature"), &body)
        .await?;
    Ok(Json(outcome))
}

/// `POST /api/v1/billing/webhooks/lago`
pub async fn lago(
    State(state): State<AppState>,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Json<InboundOutcome>, ApiError> {
    let outcome = state
        .webhooks
        .lago_event(
            header(&headers, "x-lago-signature"),
            header(&headers, "x-lago-signature-algorithm"),
            header(&headers, "x-lago-unique-key"),
            &body,
        )
        .await?;
    Ok(Json(outcome))
}
