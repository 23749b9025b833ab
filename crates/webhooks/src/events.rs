//! Outbound events and the outbox: an event becomes one `webhook_deliveries`
//! row per subscription that wants it, inside the caller's transaction.

use crate::{WebhookError, Webhooks};
use serde::Serialize;
use serde_json::{Value, json};
use sqlx::{Any, Row, Transaction};
use tollgate_billing::GrantOutcome;
use tollgate_core::{ids, time};

/// Every event an organization can subscribe to.
pub const EVENT_TYPES: &[&str] = &[
    "credits.granted",
    "credits.low",
    "credits.depleted",
    "budget.exceeded",
    "usage.batch",
];

/// The type of an event, as the OpenAPI document names it: one of
/// [`EVENT_TYPES`] (events travel as strings; this only documents them).
#[cfg(feature = "openapi")]
pub struct WebhookEvent;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for WebhookEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(EVENT_TYPES.iter().copied()))
            .description(Some("An event an organization can subscribe to."))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for WebhookEvent {}

/// The body of every delivery (Standard Webhooks shape): what the outbox
/// stores and the worker sends as is.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"type": "credits.granted", "timestamp": "2026-12-01T18:05:00.123Z", "data": {"organization_id": "org_0192f0c1a2b3", "amount": 10_000_000, "balance": 12_500_000, "source": "stripe", "reference": "evt_1Q2w3E"}})))]
#[derive(Debug, Clone, Serialize)]
pub struct WebhookPayload<'a> {
    /// The event's name.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(value_type = WebhookEvent))]
    pub kind: &'a str,
    /// RFC 3339, UTC, with milliseconds.
    pub timestamp: String,
    /// Depends on the event; see `docs/webhooks.md`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub data: &'a Value,
}

/// A key's budget refused a call (see [`Webhooks::budget_exceeded`]).
#[derive(Debug, Clone)]
pub struct BudgetExceeded<'a> {
    pub organization_id: &'a str,
    pub api_key_id: &'a str,
    /// The budget, in the organization's unit.
    pub budget: i64,
    /// What the key has spent in the current period.
    pub spent: i64,
    /// `daily`, `weekly`, `monthly` or `total`.
    pub period: &'a str,
    /// When the current period started (Unix milliseconds; 0 for `total`).
    /// One event is sent per key and period, however many calls are refused.
    pub period_started_at: i64,
}

/// Whether a comma-separated event list holds `event`.
pub(crate) fn subscribed(events: &str, event: &str) -> bool {
    events.split(',').any(|e| e == event)
}

/// Writes `event` for every subscription of the organization that wants it,
/// in `tx`; returns how many deliveries were queued. With a `dedup_key`, a
/// subscription gets the event at most once per key.
pub(crate) async fn enqueue(
    tx: &mut Transaction<'_, Any>,
    organization_id: &str,
    event: &str,
    data: Value,
    dedup_key: Option<&str>,
) -> Result<u64, WebhookError> {
    let rows =
        sqlx::query("SELECT id, events FROM webhook_subscriptions WHERE organization_id = $1")
            .bind(organization_id)
            .fetch_all(&mut **tx)
            .await?;
    let now = time::now_millis();
    let mut queued = 0;
    for row in rows {
        let events: String = row.try_get("events")?;
        if !subscribed(&events, event) {
            continue;
        }
        let subscription_id: String = row.try_get("id")?;
        queued += enqueue_for(
            tx,
            &subscription_id,
            organization_id,
            event,
            &data,
            dedup_key,
            now,
        )
        .await?;
    }
    Ok(queued)
}

/// Writes one delivery of `event` for one subscription.
pub(crate) async fn enqueue_for(
    tx: &mut Transaction<'_, Any>,
    subscription_id: &str,
    organization_id: &str,
    event: &str,
    data: &Value,
    dedup_key: Option<&str>,
    now: i64,
) -> Result<u64, WebhookError> {
    let payload = WebhookPayload {
        kind: event,
        timestamp: rfc3339_millis(now),
        data,
    };
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries \
         (id, subscription_id, organization_id, event_type, payload, status, attempts, next_attempt_at, lease_until, dedup_key, created_at) \
         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, 0, $7, $6) \
         ON CONFLICT (subscription_id, dedup_key) DO NOTHING",
    )
    .bind(ids::new_id("msg"))
    .bind(subscription_id)
    .bind(organization_id)
    .bind(event)
    .bind(serde_json::to_string(&payload)?)
    .bind(now)
    .bind(dedup_key)
    .execute(&mut **tx)
    .await?;
    Ok(done.rows_affected())
}

/// The `credits.granted` data of a grant.
pub(crate) fn granted_data(
    organization_id: &str,
    amount: i64,
    outcome: &GrantOutcome,
    source: &str,
    reference: Option<&str>,
) -> Value {
    json!({
        "organization_id": organization_id,
        "amount": amount,
        "balance": outcome.balance,
        "source": source,
        "reference": reference,
    })
}

impl Webhooks {
    /// A grant through the management API: [`tollgate_billing::Billing::grant`]
    /// with its `credits.granted` event in the same transaction (none for an
    /// idempotent replay).
    pub async fn grant(
        &self,
        organization_id: &str,
        amount: i64,
        idempotency_key: Option<&str>,
        reason: Option<&str>,
    ) -> Result<GrantOutcome, WebhookError> {
        let mut tx = self.db().begin_write().await?;
        let outcome = self
            .inner
            .billing
            .grant_in(&mut tx, organization_id, amount, idempotency_key, reason)
            .await?;
        if !outcome.replayed {
            let data = granted_data(organization_id, amount, &outcome, "api", idempotency_key);
            enqueue(&mut tx, organization_id, "credits.granted", data, None).await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Queues `budget.exceeded` for the key's organization, once per key and
    /// budget period. For the budget check to call when it refuses a call;
    /// cheap enough to await, or to spawn off the request path.
    pub async fn budget_exceeded(&self, event: &BudgetExceeded<'_>) -> Result<u64, WebhookError> {
        let mut tx = self.db().begin_write().await?;
        let dedup = format!(
            "budget.exceeded:{}:{}",
            event.api_key_id, event.period_started_at
        );
        let data = json!({
            "organization_id": event.organization_id,
            "api_key_id": event.api_key_id,
            "budget": event.budget,
            "spent": event.spent,
            "period": event.period,
            "period_started_at": event.period_started_at / 1000,
        });
        let queued = enqueue(
            &mut tx,
            event.organization_id,
            "budget.exceeded",
            data,
            Some(&dedup),
        )
        .await?;
        tx.commit().await?;
        Ok(queued)
    }
}

/// `2026-12-01T18:05:00.123Z` for Unix milliseconds (UTC, proleptic Gregorian).
pub(crate) fn rfc3339_millis(millis: i64) -> String {
    let secs = millis.div_euclid(1000);
    let ms = millis.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = tollgate_core::budget::civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{ms:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_millis(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(
            rfc3339_millis(1_796_148_300_000),
            "2026-12-01T18:05:00.000Z"
        );
    }

    #[test]
    fn subscription_lists_match_whole_names() {
        assert!(subscribed("credits.low,usage.batch", "usage.batch"));
        assert!(!subscribed("credits.lowest", "credits.low"));
    }
}
