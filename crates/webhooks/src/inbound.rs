//! Inbound payment events from Stripe and Lago. A verified event that names
//! an organization and pays for credits grants them once per event id; any
//! other verified event is acknowledged and changes nothing, so that the
//! sender does not retry it forever.

use crate::events::{enqueue, granted_data};
use crate::signature::{LagoMode, verify_lago, verify_stripe};
use crate::{WebhookError, Webhooks};
use secrecy::ExposeSecret;
use serde::Serialize;
use serde_json::Value;
use sqlx::Row;
use tollgate_core::time;

/// Stripe events that grant by default.
pub const STRIPE_DEFAULT_GRANT_EVENTS: &[&str] = &[
    "checkout.session.completed",
    "payment_intent.succeeded",
    "invoice.paid",
];

/// Lago webhook types that grant by default.
pub const LAGO_DEFAULT_GRANT_EVENTS: &[&str] = &[
    "invoice.payment_status_updated",
    "invoice.paid_credit_added",
];

/// Cents to the `usd` unit (micro-dollars).
const MICROS_PER_CENT: i64 = 10_000;

/// What an inbound event did; answered as the webhook's 200 body.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundOutcome {
    /// `granted`, `duplicate` (this event id was handled before: nothing
    /// changed) or `ignored` (nothing to grant: nothing changed).
    #[cfg_attr(feature = "openapi", schema(schema_with = outcome_status_schema))]
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub organization_id: Option<String>,
    /// Granted, in the organization's unit.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub amount: Option<i64>,
    /// Why an event was ignored.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(nullable = false))]
    pub reason: Option<String>,
}

#[cfg(feature = "openapi")]
fn outcome_status_schema() -> utoipa::openapi::schema::Object {
    tollgate_core::openapi::one_of(&["granted", "duplicate", "ignored"])
}

impl InboundOutcome {
    fn ignored(reason: impl Into<String>) -> Self {
        InboundOutcome {
            status: "ignored",
            organization_id: None,
            amount: None,
            reason: Some(reason.into()),
        }
    }

    fn duplicate() -> Self {
        InboundOutcome {
            status: "duplicate",
            organization_id: None,
            amount: None,
            reason: None,
        }
    }
}

/// A grant that a payment event asks for.
struct PaidGrant {
    /// The dedup keys: the first is the event's own; Lago adds the invoice's.
    dedup: Vec<(&'static str, String)>,
    event_type: String,
    organization_id: String,
    amount: i64,
}

impl Webhooks {
    /// `POST /api/v1/billing/webhooks/stripe`: verifies `Stripe-Signature`
    /// against the raw body, then grants (see `docs/webhooks.md`).
    pub async fn stripe_event(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<InboundOutcome, WebhookError> {
        let secrets = &self.options().stripe_secrets;
        if secrets.is_empty() {
            return Err(WebhookError::NotConfigured("STRIPE_WEBHOOK_SECRET"));
        }
        let secrets: Vec<&str> = secrets.iter().map(|s| s.expose_secret()).collect();
        verify_stripe(signature, body, &secrets, time::now_secs())?;
        let event = parse_body(body)?;
        let id = text(&event["id"]).ok_or(WebhookError::Invalid {
            field: "id",
            message: "a Stripe event needs an id".into(),
        })?;
        let kind = text(&event["type"]).unwrap_or_default();
        if !self.options().stripe_grant_events.iter().any(|e| e == kind) {
            return Ok(InboundOutcome::ignored(format!(
                "event type `{kind}` does not grant"
            )));
        }
        let object = &event["data"]["object"];
        // By the object's kind, so that a configured event such as
        // `checkout.session.async_payment_succeeded` maps like its sibling.
        let object_kind = text(&object["object"])
            .or_else(|| kind.rsplit_once('.').map(|(object, _)| object))
            .unwrap_or_default();
        if object_kind == "checkout.session"
            && !matches!(
                text(&object["payment_status"]),
                None | Some("paid" | "no_payment_required")
            )
        {
            return Ok(InboundOutcome::ignored("checkout session is not paid yet"));
        }
        let Some(org_id) = text(&object["metadata"]["organization_id"]) else {
            return Ok(InboundOutcome::ignored("no metadata.organization_id"));
        };
        let paid_cents = match object_kind {
            "checkout.session" => &object["amount_total"],
            "payment_intent" => &object["amount_received"],
            "invoice" => &object["amount_paid"],
            _ => &Value::Null,
        };
        let amount = self
            .amount_for(
                org_id,
                credits_of(&object["metadata"]["credits"]),
                paid_cents.as_i64(),
                text(&object["currency"]),
            )
            .await?;
        let amount = match amount {
            Ok(amount) => amount,
            Err(reason) => return Ok(self.log_ignored("stripe", id, reason)),
        };
        self.grant_once(
            "stripe",
            PaidGrant {
                dedup: vec![("stripe", id.to_owned())],
                event_type: kind.to_owned(),
                organization_id: org_id.to_owned(),
                amount,
            },
        )
        .await
    }

    /// `POST /api/v1/billing/webhooks/lago`: verifies `X-Lago-Signature`
    /// (`hmac` or `jwt` mode), deduplicates on `X-Lago-Unique-Key`, then grants.
    pub async fn lago_event(
        &self,
        signature: Option<&str>,
        algorithm: Option<&str>,
        unique_key: Option<&str>,
        body: &[u8],
    ) -> Result<InboundOutcome, WebhookError> {
        let options = self.options();
        let secret = options
            .lago_secret
            .as_ref()
            .filter(|s| !s.expose_secret().is_empty());
        match (
            LagoMode::of(algorithm, signature),
            secret,
            &options.lago_jwt,
        ) {
            (_, None, None) => return Err(WebhookError::NotConfigured("LAGO_WEBHOOK_SECRET")),
            (Err(e), _, _) => return Err(e.into()),
            (Ok(LagoMode::Hmac), Some(secret), _) => {
                verify_lago(signature, body, secret.expose_secret())?
            }
            (Ok(LagoMode::Hmac), None, _) => {
                return Err(WebhookError::NotConfigured("LAGO_WEBHOOK_SECRET"));
            }
            (Ok(LagoMode::Jwt), _, Some(jwt)) => jwt.verify(signature, body)?,
            (Ok(LagoMode::Jwt), _, None) => {
                return Err(WebhookError::NotConfigured("LAGO_WEBHOOK_PUBLIC_KEY"));
            }
        }
        let unique_key = unique_key
            .map(str::trim)
            .filter(|k| !k.is_empty() && k.len() <= 255)
            .ok_or(WebhookError::Invalid {
                field: "X-Lago-Unique-Key",
                message: "the header is required (1 to 255 characters)".into(),
            })?;
        let event = parse_body(body)?;
        let kind = text(&event["webhook_type"]).unwrap_or_default();
        if !self.options().lago_grant_events.iter().any(|e| e == kind) {
            return Ok(InboundOutcome::ignored(format!(
                "webhook type `{kind}` does not grant"
            )));
        }
        let invoice = &event["invoice"];
        if !invoice.is_object() {
            return Ok(InboundOutcome::ignored("no invoice object"));
        }
        if text(&invoice["payment_status"]) != Some("succeeded") {
            return Ok(InboundOutcome::ignored("invoice payment has not succeeded"));
        }
        let org_id = match lago_metadata(&invoice["metadata"], "organization_id")
            .or_else(|| lago_metadata(&invoice["customer"]["metadata"], "organization_id"))
            .or_else(|| text(&invoice["customer"]["external_id"]))
        {
            Some(org) => org,
            None => return Ok(InboundOutcome::ignored("no organization in the invoice")),
        };
        let amount = self
            .amount_for(
                org_id,
                lago_metadata(&invoice["metadata"], "credits")
                    .map(|c| Value::String(c.to_owned()))
                    .as_ref()
                    .map_or(Credits::Absent, credits_of),
                invoice["total_amount_cents"].as_i64(),
                text(&invoice["currency"]),
            )
            .await?;
        let amount = match amount {
            Ok(amount) => amount,
            Err(reason) => return Ok(self.log_ignored("lago", unique_key, reason)),
        };
        let mut dedup = vec![("lago", unique_key.to_owned())];
        // Both paid-invoice events can arrive for one credit invoice, with
        // different unique keys: the invoice grants once.
        if let Some(invoice_id) = text(&invoice["lago_id"]) {
            dedup.push(("lago-invoice", invoice_id.to_owned()));
        }
        self.grant_once(
            "lago",
            PaidGrant {
                dedup,
                event_type: kind.to_owned(),
                organization_id: org_id.to_owned(),
                amount,
            },
        )
        .await
    }

    /// The grant of a payment: `credits` when given (in the organization's
    /// unit), else for a `usd` organization the paid cents × 10 000. The
    /// inner `Err` says why nothing is granted.
    async fn amount_for(
        &self,
        org_id: &str,
        credits: Credits,
        paid_cents: Option<i64>,
        currency: Option<&str>,
    ) -> Result<Result<i64, String>, WebhookError> {
        if org_id.len() > 255 || org_id.contains('\0') {
            return Ok(Err("not an organization id".into()));
        }
        let row = sqlx::query("SELECT billing_mode FROM organizations WHERE id = $1")
            .bind(org_id)
            .fetch_optional(self.db().pool())
            .await?;
        let Some(row) = row else {
            return Ok(Err(format!("unknown organization `{org_id}`")));
        };
        let mode: String = row.try_get("billing_mode")?;
        let amount = match credits {
            Credits::Given(credits) => credits,
            Credits::Malformed => return Ok(Err("metadata credits is not an integer".into())),
            Credits::Absent if mode != "usd" => {
                return Ok(Err(format!(
                    "a `{mode}` organization needs metadata credits"
                )));
            }
            Credits::Absent if currency.is_some_and(|c| !c.eq_ignore_ascii_case("usd")) => {
                return Ok(Err("the payment is not in USD".into()));
            }
            Credits::Absent => match paid_cents.and_then(|c| c.checked_mul(MICROS_PER_CENT)) {
                Some(amount) => amount,
                None => return Ok(Err("no amount paid".into())),
            },
        };
        if amount <= 0 {
            return Ok(Err("nothing to grant".into()));
        }
        Ok(Ok(amount))
    }

    fn log_ignored(&self, source: &str, id: &str, reason: String) -> InboundOutcome {
        tracing::warn!(source, event_id = id, %reason, "billing webhook ignored");
        InboundOutcome::ignored(reason)
    }

    /// Claims every dedup key, grants and queues `credits.granted`, in one
    /// transaction; a key already claimed means the event was handled.
    async fn grant_once(
        &self,
        source: &str,
        grant: PaidGrant,
    ) -> Result<InboundOutcome, WebhookError> {
        let now = time::now_millis();
        let mut tx = self.db().begin_write().await?;
        for (dedup_source, key) in &grant.dedup {
            let claimed = sqlx::query(
                "INSERT INTO inbound_webhook_events (source, event_id, event_type, organization_id, amount, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (source, event_id) DO NOTHING",
            )
            .bind(*dedup_source)
            .bind(key)
            .bind(&grant.event_type)
            .bind(&grant.organization_id)
            .bind(grant.amount)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            if claimed.rows_affected() == 0 {
                tx.rollback().await?;
                tracing::info!(source, event_id = %key, "billing webhook already handled");
                return Ok(InboundOutcome::duplicate());
            }
        }
        let (_, event_id) = grant.dedup.first().cloned().unwrap_or_default();
        let reason = format!("{source} {} {event_id}", grant.event_type);
        let outcome = self
            .inner
            .billing
            .grant_in(
                &mut tx,
                &grant.organization_id,
                grant.amount,
                None,
                Some(&reason),
            )
            .await?;
        let data = granted_data(
            &grant.organization_id,
            grant.amount,
            &outcome,
            source,
            Some(&event_id),
        );
        enqueue(
            &mut tx,
            &grant.organization_id,
            "credits.granted",
            data,
            None,
        )
        .await?;
        tx.commit().await?;
        tracing::info!(
            source,
            event_id = %event_id,
            organization_id = %grant.organization_id,
            amount = grant.amount,
            "billing webhook granted credits"
        );
        Ok(InboundOutcome {
            status: "granted",
            organization_id: Some(grant.organization_id),
            amount: Some(grant.amount),
            reason: None,
        })
    }
}

fn parse_body(body: &[u8]) -> Result<Value, WebhookError> {
    serde_json::from_slice(body).map_err(|e| WebhookError::Invalid {
        field: "body",
        message: format!("not JSON: {e}"),
    })
}

fn text(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}

/// The `credits` of an event's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credits {
    Absent,
    Given(i64),
    /// Present but not an integer: nothing is granted (never the amount
    /// paid instead, which may be in another unit).
    Malformed,
}

/// Stripe metadata values are strings; a JSON integer is accepted too.
fn credits_of(value: &Value) -> Credits {
    match value {
        Value::Null => Credits::Absent,
        Value::String(s) if s.trim().is_empty() => Credits::Absent,
        Value::String(s) => s.trim().parse().map_or(Credits::Malformed, Credits::Given),
        other => other.as_i64().map_or(Credits::Malformed, Credits::Given),
    }
}

/// A value of Lago metadata: a list of `{key, value}` (or, leniently, an object).
fn lago_metadata<'a>(metadata: &'a Value, key: &str) -> Option<&'a str> {
    match metadata {
        Value::Array(items) => items
            .iter()
            .find(|item| item["key"].as_str() == Some(key))
            .and_then(|item| text(&item["value"])),
        Value::Object(map) => map.get(key).and_then(text),
        _ => None,
    }
}
