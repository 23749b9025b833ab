//! The payload of an organization's outbound webhook deliveries, in the
//! OpenAPI document (a delivery is a request Tollgate sends, not one of its
//! operations, so no handler names it).

use serde::Serialize;
use serde_json::Value;
use tollgate_webhooks::WebhookEvent;
use utoipa::ToSchema;

#[allow(dead_code)]
/// The payload every delivery carries (Standard Webhooks shape).
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"type": "credits.granted", "timestamp": "2026-12-01T18:05:00.123Z", "data": {"organization_id": "org_0192f0c1a2b3", "amount": 10_000_000, "balance": 12_500_000, "source": "stripe", "reference": "evt_1Q2w3E"}}))]
pub struct WebhookPayload {
    #[serde(rename = "type")]
    #[schema(value_type = WebhookEvent)]
    pub kind: String,
    /// RFC 3339, UTC.
    pub timestamp: String,
    /// Depends on the event; see `docs/webhooks.md`.
    pub data: Value,
}
