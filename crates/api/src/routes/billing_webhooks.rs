//! Inbound billing webhooks from Stripe and Lago. No bearer token: the
//! signature over the raw body is the authentication.

use crate::error::ApiError;
use crate::error::ErrorResponse;
use crate::extract::BodyBytes;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use tollgate_webhooks::InboundOutcome;

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Receive a Stripe event.
///
/// Authenticated by `Stripe-Signature` (`t=…,v1=…`) over the raw body with
/// `STRIPE_WEBHOOK_SECRET` (several secrets, comma-separated, while one is
/// rotated), 5 minutes' tolerance. `checkout.session.completed`,
/// `payment_intent.succeeded` and `invoice.paid` (configurable) whose
/// object's `metadata.organization_id` names an organization grant
/// `metadata.credits`, or for a `usd` organization the amount paid in
/// cents × 10 000; once per event id. Anything else is acknowledged with
/// 200 and changes nothing.
#[utoipa::path(
    post, path = "/api/v1/billing/webhooks/stripe", tag = "billing webhooks",
    operation_id = "receiveStripeEvent",
    security(("stripe_signature" = [])),
    request_body(content = serde_json::Value, description = "A Stripe event, exactly as Stripe sent it"),
    responses(
        (status = 200, description = "Handled (granted, duplicate or ignored)", body = InboundOutcome),
        (status = 400, description = "The signed body is not a JSON event with an id", body = ErrorResponse,
            example = json!({"error": {"message": "`body` not JSON: expected value at line 1 column 1", "type": "invalid_request_error", "code": "invalid_request"}})),
        (status = 401, description = "Missing, malformed, stale or wrong signature: nothing changed", body = ErrorResponse,
            example = json!({"error": {"message": "invalid signature: no signature matches the body", "type": "authentication_error", "code": "invalid_signature"}})),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 503, description = "`STRIPE_WEBHOOK_SECRET` is not set", body = ErrorResponse,
            example = json!({"error": {"message": "STRIPE_WEBHOOK_SECRET is not set: this webhook is disabled", "type": "server_error", "code": "webhook_not_configured"}})),
    )
)]
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

/// Receive a Lago event.
///
/// Authenticated by `X-Lago-Signature` in either of Lago's modes: `hmac`
/// (base64 HMAC-SHA256 of the raw body with `LAGO_WEBHOOK_SECRET`) or `jwt`
/// (an RS256 JWT, checked with `LAGO_WEBHOOK_PUBLIC_KEY`, issued by
/// `LAGO_API_URL`, whose `data` is the raw body); deduplicated on
/// `X-Lago-Unique-Key`. A succeeded invoice of
/// `invoice.payment_status_updated` or `invoice.paid_credit_added`
/// (configurable) grants; see `docs/webhooks.md` for the mapping.
#[utoipa::path(
    post, path = "/api/v1/billing/webhooks/lago", tag = "billing webhooks",
    operation_id = "receiveLagoEvent",
    security(("lago_signature" = [])),
    params(
        ("X-Lago-Unique-Key" = String, Header, description = "Lago's idempotency key of the message"),
        ("X-Lago-Signature-Algorithm" = Option<String>, Header, description = "`hmac` or `jwt` (Lago's default); without it, a signature shaped as a JWT is one"),
    ),
    request_body(content = serde_json::Value, description = "A Lago webhook, exactly as Lago sent it"),
    responses(
        (status = 200, description = "Handled (granted, duplicate or ignored)", body = InboundOutcome),
        (status = 400, description = "No `X-Lago-Unique-Key`, or the body is not JSON", body = ErrorResponse,
            example = json!({"error": {"message": "`X-Lago-Unique-Key` the header is required (1 to 255 characters)", "type": "invalid_request_error", "code": "invalid_request"}})),
        (status = 401, description = "Missing or wrong signature, or an unknown algorithm: nothing changed", body = ErrorResponse,
            example = json!({"error": {"message": "invalid signature: no signature matches the body", "type": "authentication_error", "code": "invalid_signature"}})),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 503, description = "The signature's mode is not configured: `LAGO_WEBHOOK_SECRET` for `hmac`, `LAGO_WEBHOOK_PUBLIC_KEY` for `jwt`", body = ErrorResponse,
            example = json!({"error": {"message": "LAGO_WEBHOOK_SECRET is not set: this webhook is disabled", "type": "server_error", "code": "webhook_not_configured"}})),
    )
)]
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
