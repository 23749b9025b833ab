//! Organizations' webhook subscriptions and the record of their deliveries.

use crate::events::EVENT_TYPES;
use crate::{WebhookError, Webhooks};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::{ids, time};

/// A subscription as the API shows it (never its secret).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Webhook))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub organization_id: String,
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<crate::events::WebhookEvent>))]
    pub events: Vec<String>,
    pub credits_low_threshold: Option<i64>,
    /// Unix seconds.
    pub created_at: i64,
}

/// What `POST …/webhooks` asks for.
#[derive(Debug, Clone)]
pub struct NewSubscription<'a> {
    pub url: &'a str,
    pub events: &'a [String],
    pub credits_low_threshold: Option<i64>,
}

/// One delivery of an event to a subscription, with its attempts.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize)]
pub struct Delivery {
    /// The `webhook-id` header, the same on every attempt.
    pub id: String,
    #[cfg_attr(feature = "openapi", schema(value_type = crate::events::WebhookEvent))]
    pub event_type: String,
    /// `pending`, `delivered` or `failed` (gave up after the last attempt).
    #[cfg_attr(feature = "openapi", schema(schema_with = delivery_status_schema))]
    pub status: String,
    pub attempts: Vec<Attempt>,
    /// Unix seconds: when the next attempt is due (pending only).
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
}

#[cfg(feature = "openapi")]
fn delivery_status_schema() -> utoipa::openapi::schema::Object {
    tollgate_core::openapi::one_of(&["pending", "delivered", "failed"])
}

/// One attempt at a delivery.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = DeliveryAttempt))]
#[derive(Debug, Clone, Serialize)]
pub struct Attempt {
    pub attempt: i64,
    /// The receiver's HTTP status; absent when no answer came.
    pub status_code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
    /// Unix seconds.
    pub created_at: i64,
}

const MAX_URL_LEN: usize = 2048;

fn invalid(field: &'static str, message: impl Into<String>) -> WebhookError {
    WebhookError::Invalid {
        field,
        message: message.into(),
    }
}

fn valid_url(url: &str, allow_private: bool) -> Result<&str, WebhookError> {
    let url = url.trim();
    if url.len() > MAX_URL_LEN {
        return Err(invalid(
            "url",
            format!("must be at most {MAX_URL_LEN} bytes"),
        ));
    }
    if url.chars().any(char::is_control) {
        return Err(invalid("url", "must not hold control characters"));
    }
    let parsed =
        reqwest::Url::parse(url).map_err(|e| invalid("url", format!("is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(invalid("url", "must be an http or https URL with a host"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(invalid("url", "must not hold credentials"));
    }
    if !allow_private
        && (crate::addresses::literal_ip(&parsed)
            .is_some_and(|ip| !crate::addresses::is_public(ip))
            || parsed
                .host_str()
                .is_some_and(|h| h.eq_ignore_ascii_case("localhost")))
    {
        return Err(invalid(
            "url",
            "must be a public address (TOLLGATE_WEBHOOK_ALLOW_PRIVATE allows others)",
        ));
    }
    Ok(url)
}

fn valid_events(events: &[String]) -> Result<Vec<String>, WebhookError> {
    if events.is_empty() {
        return Err(invalid("events", "must name at least one event"));
    }
    let mut out: Vec<String> = Vec::new();
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            return Err(invalid(
                "events",
                format!(
                    "unknown event `{}`; known: {}",
                    event.escape_debug(),
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        if !out.contains(event) {
            out.push(event.clone());
        }
    }
    Ok(out)
}

fn subscription_of(row: &AnyRow) -> Result<Subscription, sqlx::Error> {
    let events: String = row.try_get("events")?;
    Ok(Subscription {
        id: row.try_get("id")?,
        organization_id: row.try_get("organization_id")?,
        url: row.try_get("url")?,
        events: events.split(',').map(str::to_owned).collect(),
        credits_low_threshold: row.try_get("credits_low_threshold")?,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

const COLUMNS: &str = "id, organization_id, url, events, credits_low_threshold, created_at";

impl Webhooks {
    /// Subscribes `new.url` to `new.events`; answers the subscription and
    /// its signing secret (`whsec_…`), which is stored sealed and never
    /// shown again.
    pub async fn create_subscription(
        &self,
        organization_id: &str,
        new: &NewSubscription<'_>,
    ) -> Result<(Subscription, String), WebhookError> {
        let url = valid_url(new.url, self.options().allow_private_addresses)?;
        let events = valid_events(new.events)?;
        if let Some(threshold) = new.credits_low_threshold
            && threshold < 0
        {
            return Err(invalid("credits_low_threshold", "must be at least 0"));
        }
        if events.iter().any(|e| e == "credits.low") && new.credits_low_threshold.is_none() {
            return Err(invalid(
                "credits_low_threshold",
                "is required with the credits.low event",
            ));
        }
        let now = time::now_millis();
        let subscription = Subscription {
            id: ids::new_id("wh"),
            organization_id: organization_id.to_owned(),
            url: url.to_owned(),
            events,
            credits_low_threshold: new.credits_low_threshold,
            created_at: now / 1000,
        };
        // `usage.batch` counts the usage after the subscription: its cursor
        // starts at the organization's last record. Read settled, or a record
        // with a lower id whose insert has not committed yet would fall below
        // the cursor and never be sent (see `settled_usage_id`). Read before
        // the transaction, so that the lock it takes is not held through it.
        let usage_cursor = self.settled_usage_id(Some(organization_id)).await?;
        let secret = crate::signature::new_secret();
        let mut tx = self.db().begin_write().await?;
        let sealed = self
            .inner
            .credentials
            .seal_secret(&mut tx, organization_id, &subscription.id, &secret)
            .await?;
        let balance: i64 =
            sqlx::query("SELECT balance FROM credit_accounts WHERE organization_id = $1")
                .bind(organization_id)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| row.try_get("balance"))
                .transpose()?
                .unwrap_or(0);
        // A balance already below the line is no crossing: the first event
        // comes when it rises above and falls again.
        let low = new.credits_low_threshold.is_some_and(|t| balance < t);
        sqlx::query(
            "INSERT INTO webhook_subscriptions \
             (id, organization_id, url, events, secret_sealed, credits_low_threshold, low_fired, depleted_fired, usage_cursor, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(&subscription.id)
        .bind(organization_id)
        .bind(&subscription.url)
        .bind(subscription.events.join(","))
        .bind(&sealed)
        .bind(subscription.credits_low_threshold)
        .bind(i64::from(low))
        .bind(i64::from(balance <= 0))
        .bind(usage_cursor)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((subscription, secret))
    }

    /// The organization's subscriptions, newest first.
    pub async fn subscriptions(
        &self,
        organization_id: &str,
    ) -> Result<Vec<Subscription>, WebhookError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE organization_id = $1 ORDER BY id DESC"
        ))
        .bind(organization_id)
        .fetch_all(self.db().pool())
        .await?;
        Ok(rows.iter().map(subscription_of).collect::<Result<_, _>>()?)
    }

    /// One subscription of the organization, or `NotFound`.
    pub async fn subscription(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<Subscription, WebhookError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM webhook_subscriptions WHERE organization_id = $1 AND id = $2"
        ))
        .bind(organization_id)
        .bind(id)
        .fetch_optional(self.db().pool())
        .await?
        .ok_or(WebhookError::NotFound)?;
        Ok(subscription_of(&row)?)
    }

    /// Removes a subscription with its pending deliveries and their record.
    pub async fn delete_subscription(
        &self,
        organization_id: &str,
        id: &str,
    ) -> Result<(), WebhookError> {
        let mut tx = self.db().begin_write().await?;
        sqlx::query("DELETE FROM webhook_attempts WHERE subscription_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "DELETE FROM webhook_deliveries WHERE subscription_id = $1 AND organization_id = $2",
        )
        .bind(id)
        .bind(organization_id)
        .execute(&mut *tx)
        .await?;
        let done =
            sqlx::query("DELETE FROM webhook_subscriptions WHERE organization_id = $1 AND id = $2")
                .bind(organization_id)
                .bind(id)
                .execute(&mut *tx)
                .await?;
        if done.rows_affected() == 0 {
            tx.rollback().await?;
            return Err(WebhookError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    /// The subscription's deliveries, newest first (`limit` older than the
    /// `before` delivery id), each with its attempts.
    pub async fn deliveries(
        &self,
        organization_id: &str,
        id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<Delivery>, WebhookError> {
        self.subscription(organization_id, id).await?;
        let rows = sqlx::query(
            "SELECT id, event_type, status, next_attempt_at, created_at, finished_at FROM webhook_deliveries \
             WHERE subscription_id = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
        )
        .bind(id)
        .bind(before.unwrap_or(""))
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.db().pool())
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let delivery_id: String = row.try_get("id")?;
            let status: String = row.try_get("status")?;
            let attempts = sqlx::query(
                "SELECT attempt, status_code, error, duration_ms, created_at FROM webhook_attempts \
                 WHERE delivery_id = $1 ORDER BY id",
            )
            .bind(&delivery_id)
            .fetch_all(self.db().pool())
            .await?
            .iter()
            .map(|a| {
                Ok(Attempt {
                    attempt: a.try_get("attempt")?,
                    status_code: a.try_get("status_code")?,
                    error: a.try_get("error")?,
                    duration_ms: a.try_get("duration_ms")?,
                    created_at: a.try_get::<i64, _>("created_at")? / 1000,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
            out.push(Delivery {
                id: delivery_id,
                event_type: row.try_get("event_type")?,
                next_attempt_at: (status == "pending")
                    .then(|| row.try_get::<i64, _>("next_attempt_at").map(|t| t / 1000))
                    .transpose()?,
                status,
                attempts,
                created_at: row.try_get::<i64, _>("created_at")? / 1000,
                finished_at: row
                    .try_get::<Option<i64>, _>("finished_at")?
                    .map(|t| t / 1000),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_http_or_https() {
        assert!(valid_url("https://example.com/hook", false).is_ok());
        assert!(valid_url("http://127.0.0.1:9000/", true).is_ok());
        assert!(valid_url("ftp://example.com/", true).is_err());
        assert!(valid_url("not a url", true).is_err());
        assert!(valid_url("https://user:pw@example.com/", true).is_err());
    }

    #[test]
    fn private_addresses_need_the_setting() {
        for url in [
            "http://127.0.0.1:9000/",
            "http://[::1]/",
            "http://169.254.169.254/latest",
            "http://localhost/",
        ] {
            assert!(valid_url(url, false).is_err(), "{url}");
            assert!(valid_url(url, true).is_ok(), "{url}");
        }
    }

    #[test]
    fn events_must_be_known() {
        assert!(
            valid_events(&["credits.low".into(), "credits.low".into()]).is_ok_and(|e| e.len() == 1)
        );
        assert!(valid_events(&["credits.lowish".into()]).is_err());
        assert!(valid_events(&[]).is_err());
    }
}
