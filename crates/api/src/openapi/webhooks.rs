//! The billing webhooks in the OpenAPI document: Stripe and Lago events in,
//! organizations' Standard Webhooks subscriptions out.

#![allow(dead_code, clippy::unused_async)]

use super::errors::{ListErrors, ReadErrors, WebhookAdminErrors};
use super::schemas::ErrorResponse;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

// ------------------------------------------------------------------ schemas

/// What an inbound billing event did (always 200 once the signature holds).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"status": "granted", "organization_id": "org_0192f0c1a2b3", "amount": 10_000_000}))]
pub struct InboundOutcome {
    /// `granted`, `duplicate` (this event id was handled before: nothing
    /// changed) or `ignored` (not a paying event, no organization, unknown
    /// organization, nothing to grant: nothing changed).
    pub status: String,
    #[schema(nullable = false)]
    pub organization_id: Option<String>,
    /// Granted, in the organization's unit.
    #[schema(nullable = false)]
    pub amount: Option<i64>,
    /// Why the event was ignored.
    #[schema(nullable = false)]
    pub reason: Option<String>,
}

/// An event an organization can subscribe to.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WebhookEvent {
    #[serde(rename = "credits.granted")]
    CreditsGranted,
    #[serde(rename = "credits.low")]
    CreditsLow,
    #[serde(rename = "credits.depleted")]
    CreditsDepleted,
    #[serde(rename = "budget.exceeded")]
    BudgetExceeded,
    #[serde(rename = "usage.batch")]
    UsageBatch,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"url": "https://example.com/tollgate-events", "events": ["credits.granted", "credits.low"], "credits_low_threshold": 1_000_000}))]
pub struct CreateWebhook {
    /// An `http` or `https` URL on a public address (unless the gateway
    /// runs with `TOLLGATE_WEBHOOK_ALLOW_PRIVATE`). Redirects are never followed.
    pub url: String,
    pub events: Vec<WebhookEvent>,
    /// `credits.low` is sent when the balance falls below this (required
    /// with `credits.low`), once per crossing.
    #[schema(nullable = false)]
    pub credits_low_threshold: Option<i64>,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "wh_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "url": "https://example.com/tollgate-events", "events": ["credits.granted", "credits.low"], "credits_low_threshold": 1_000_000, "created_at": 1_763_900_000}))]
pub struct Webhook {
    pub id: String,
    pub organization_id: String,
    pub url: String,
    pub events: Vec<WebhookEvent>,
    pub credits_low_threshold: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// A new subscription: the listed fields plus `secret`, shown only here.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "wh_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "url": "https://example.com/tollgate-events", "events": ["credits.granted"], "credits_low_threshold": null, "created_at": 1_763_900_000, "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSwJ1s4gEaVNFk="}))]
pub struct CreatedWebhook {
    #[serde(flatten)]
    pub info: Webhook,
    /// The Standard Webhooks signing secret (`whsec_` + base64 of 32 bytes).
    /// Store it now: it is never shown again.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub data: Vec<Webhook>,
    /// Always false: every subscription is in `data`.
    pub has_more: bool,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryAttempt {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The receiver's HTTP status; null when no answer came.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// Unix seconds.
    pub created_at: i64,
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "msg_0192f0c1a2b3", "event_type": "credits.granted", "status": "delivered", "attempts": [{"attempt": 1, "status_code": 500, "error": "receiver answered 500 Internal Server Error", "duration_ms": 12, "created_at": 1_763_900_000}, {"attempt": 2, "status_code": 200, "error": null, "duration_ms": 9, "created_at": 1_763_900_002}], "next_attempt_at": null, "created_at": 1_763_900_000, "finished_at": 1_763_900_002}))]
pub struct Delivery {
    /// The `webhook-id` header, the same on every attempt (receivers
    /// deduplicate on it).
    pub id: String,
    pub event_type: WebhookEvent,
    /// `pending`, `delivered` or `failed` (gave up after the last attempt).
    pub status: String,
    pub attempts: Vec<DeliveryAttempt>,
    /// Unix seconds: when the next attempt is due (pending only).
    pub next_attempt_at: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryPage {
    pub data: Vec<Delivery>,
    pub has_more: bool,
}

/// The payload every delivery carries (Standard Webhooks shape).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "credits.granted", "timestamp": "2026-12-01T18:05:00.123Z", "data": {"organization_id": "org_0192f0c1a2b3", "amount": 10_000_000, "balance": 12_500_000, "source": "stripe", "reference": "evt_1Q2w3E"}}))]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    pub kind: WebhookEvent,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// Depends on the event; see `docs/webhooks.md`.
    pub data: Value,
}

// -------------------------------------------------------------------- paths

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
    request_body(content = Value, description = "A Stripe event, exactly as Stripe sent it"),
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
pub async fn stripe_webhook() {}

/// Receive a Lago event.
///
/// Authenticated by `X-Lago-Signature` in Lago's `hmac` mode (base64
/// HMAC-SHA256 of the raw body with `LAGO_WEBHOOK_SECRET`), deduplicated on
/// `X-Lago-Unique-Key`. A succeeded invoice of
/// `invoice.payment_status_updated` or `invoice.paid_credit_added`
/// (configurable) grants; see `docs/webhooks.md` for the mapping.
#[utoipa::path(
    post, path = "/api/v1/billing/webhooks/lago", tag = "billing webhooks",
    operation_id = "receiveLagoEvent",
    security(("lago_signature" = [])),
    params(
        ("X-Lago-Unique-Key" = String, Header, description = "Lago's idempotency key of the message"),
        ("X-Lago-Signature-Algorithm" = Option<String>, Header, description = "`hmac` (the only mode accepted)"),
    ),
    request_body(content = Value, description = "A Lago webhook, exactly as Lago sent it"),
    responses(
        (status = 200, description = "Handled (granted, duplicate or ignored)", body = InboundOutcome),
        (status = 400, description = "No `X-Lago-Unique-Key`, or the body is not JSON", body = ErrorResponse,
            example = json!({"error": {"message": "`X-Lago-Unique-Key` the header is required (1 to 255 characters)", "type": "invalid_request_error", "code": "invalid_request"}})),
        (status = 401, description = "Missing or wrong signature, or a non-HMAC algorithm: nothing changed", body = ErrorResponse,
            example = json!({"error": {"message": "invalid signature: no signature matches the body", "type": "authentication_error", "code": "invalid_signature"}})),
        (status = 413, description = "Body too large", body = ErrorResponse),
        (status = 503, description = "`LAGO_WEBHOOK_SECRET` is not set", body = ErrorResponse,
            example = json!({"error": {"message": "LAGO_WEBHOOK_SECRET is not set: this webhook is disabled", "type": "server_error", "code": "webhook_not_configured"}})),
    )
)]
pub async fn lago_webhook() {}

/// Subscribe a URL to an organization's events.
///
/// Deliveries follow the Standard Webhooks spec (`webhook-id`,
/// `webhook-timestamp`, `webhook-signature: v1,<base64>`). Roles: platform
/// admin; org_admin of this organization.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/webhooks", tag = "webhooks",
    operation_id = "createWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateWebhook,
    responses(
        (status = 201, description = "The subscription and its secret, shown only here", body = CreatedWebhook),
        WebhookAdminErrors,
    )
)]
pub async fn create_webhook() {}

/// List an organization's webhook subscriptions, newest first (no secrets).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks", tag = "webhooks",
    operation_id = "listWebhooks",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The subscriptions", body = WebhookList),
        ReadErrors,
    )
)]
pub async fn list_webhooks() {}

/// Read one webhook subscription (no secret).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks/{id}", tag = "webhooks",
    operation_id = "getWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
    ),
    responses(
        (status = 200, description = "The subscription", body = Webhook),
        ReadErrors,
    )
)]
pub async fn get_webhook() {}

/// Remove a webhook subscription, with its pending deliveries.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/webhooks/{id}", tag = "webhooks",
    operation_id = "deleteWebhook",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
    ),
    responses(
        (status = 204, description = "Removed"),
        ReadErrors,
    )
)]
pub async fn delete_webhook() {}

/// List a subscription's deliveries, newest first, each with its attempts.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/webhooks/{id}/deliveries", tag = "webhooks",
    operation_id = "listWebhookDeliveries",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("id" = String, Path, description = "Subscription id"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size (default 100)"),
        ("before" = Option<String>, Query, description = "Cursor: a delivery's `id`; only older deliveries"),
    ),
    responses(
        (status = 200, description = "A page of deliveries", body = DeliveryPage),
        ListErrors,
    )
)]
pub async fn list_deliveries() {}
