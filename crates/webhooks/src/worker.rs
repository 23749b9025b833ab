//! The delivery worker. Every poll it:
//!
//! 1. queues `credits.low` / `credits.depleted` for balances that crossed
//!    a subscription's line since the last look (a flag per subscription,
//!    flipped with a conditional `UPDATE`, so one crossing is one event
//!    across all replicas);
//! 2. every `usage_batch_interval`, queues `usage.batch` summaries of usage
//!    records newer than each subscription's cursor (moved the same way),
//!    up to an id below which every record has committed, so that none is
//!    skipped;
//! 3. claims due deliveries by setting their `lease_until` with one
//!    conditional `UPDATE … RETURNING`, so each row goes to one replica,
//!    and sends them; a row whose replica died is claimed again once its
//!    lease runs out, so nothing is lost on restart.

use crate::events::{enqueue_for, subscribed};
use crate::{WebhookError, Webhooks};
use secrecy::ExposeSecret;
use serde_json::json;
use sqlx::Row;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tollgate_core::Backend;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_core::time;

/// The worker polls the database every interval on every replica: an
/// outage is logged once per task, then as a periodic summary.
static CROSSINGS_FAILED: OutageLog =
    OutageLog::new(Dependency::Database, "webhooks: checking balances failed");
static USAGE_FAILED: OutageLog =
    OutageLog::new(Dependency::Database, "webhooks: summarising usage failed");
static DELIVERY_FAILED: OutageLog =
    OutageLog::new(Dependency::Database, "webhooks: delivering failed");

/// Deliveries claimed per round.
const BATCH: usize = 16;
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

struct Claimed {
    id: String,
    subscription_id: String,
    organization_id: String,
    payload: String,
    attempts: i64,
}

enum Outcome {
    Delivered(u16),
    Failed {
        status_code: Option<u16>,
        error: String,
    },
}

impl Webhooks {
    /// Runs until aborted (at shutdown): balance crossings, usage batches
    /// and deliveries, every poll interval.
    pub async fn run_worker(self) {
        let mut tick =
            tokio::time::interval(self.options().poll_interval.max(Duration::from_millis(10)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_batch = Instant::now();
        loop {
            tick.tick().await;
            match self.queue_balance_crossings().await {
                Ok(_) => CROSSINGS_FAILED.recovered(),
                Err(e) => CROSSINGS_FAILED.failed(&e),
            }
            if last_batch.elapsed() >= self.options().usage_batch_interval {
                last_batch = Instant::now();
                match self.queue_usage_batches().await {
                    Ok(_) => USAGE_FAILED.recovered(),
                    Err(e) => USAGE_FAILED.failed(&e),
                }
            }
            loop {
                match self.deliver_due().await {
                    Ok(n) if n == BATCH => continue,
                    Ok(_) => {
                        DELIVERY_FAILED.recovered();
                        break;
                    }
                    Err(e) => {
                        DELIVERY_FAILED.failed(&e);
                        break;
                    }
                }
            }
        }
    }

    async fn queue_balance_crossings(&self) -> Result<(), WebhookError> {
        let rows = sqlx::query(
            "SELECT s.id, s.organization_id, s.events, s.credits_low_threshold, s.low_fired, s.depleted_fired, c.balance \
             FROM webhook_subscriptions s JOIN credit_accounts c ON c.organization_id = s.organization_id \
             WHERE s.events LIKE '%credits.%'",
        )
        .fetch_all(self.db().pool())
        .await?;
        for row in rows {
            let id: String = row.try_get("id")?;
            let org: String = row.try_get("organization_id")?;
            let events: String = row.try_get("events")?;
            let threshold: Option<i64> = row.try_get("credits_low_threshold")?;
            let balance: i64 = row.try_get("balance")?;
            let low = threshold.is_some_and(|t| balance < t);
            if subscribed(&events, "credits.low")
                && low != (row.try_get::<i64, _>("low_fired")? != 0)
            {
                let data =
                    json!({"organization_id": org, "balance": balance, "threshold": threshold});
                self.flip(&id, &org, "low_fired", low, "credits.low", data)
                    .await?;
            }
            let depleted = balance <= 0;
            if subscribed(&events, "credits.depleted")
                && depleted != (row.try_get::<i64, _>("depleted_fired")? != 0)
            {
                let data = json!({"organization_id": org, "balance": balance});
                self.flip(
                    &id,
                    &org,
                    "depleted_fired",
                    depleted,
                    "credits.depleted",
                    data,
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Sets a crossing flag; the replica whose `UPDATE` changed it queues
    /// the event when the balance went below the line.
    async fn flip(
        &self,
        subscription_id: &str,
        organization_id: &str,
        flag: &'static str,
        on: bool,
        event: &str,
        data: serde_json::Value,
    ) -> Result<(), WebhookError> {
        // `flag` is one of two column names fixed in this file, never input.
        let sql = match flag {
            "low_fired" => {
                "UPDATE webhook_subscriptions SET low_fired = $1 WHERE id = $2 AND low_fired = $3"
            }
            _ => {
                "UPDATE webhook_subscriptions SET depleted_fired = $1 WHERE id = $2 AND depleted_fired = $3"
            }
        };
        let mut tx = self.db().begin_write().await?;
        let changed = sqlx::query(sql)
            .bind(i64::from(on))
            .bind(subscription_id)
            .bind(i64::from(!on))
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 1 && on {
            enqueue_for(
                &mut tx,
                subscription_id,
                organization_id,
                event,
                &data,
                None,
                time::now_millis(),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn queue_usage_batches(&self) -> Result<(), WebhookError> {
        let subscriptions = sqlx::query(
            "SELECT s.id, s.organization_id, s.events, s.usage_cursor, o.billing_mode \
             FROM webhook_subscriptions s JOIN organizations o ON o.id = s.organization_id \
             WHERE s.events LIKE '%usage.batch%'",
        )
        .fetch_all(self.db().pool())
        .await?;
        let mut due = Vec::with_capacity(subscriptions.len());
        for sub in subscriptions {
            let events: String = sub.try_get("events")?;
            if subscribed(&events, "usage.batch") {
                due.push(sub);
            }
        }
        if due.is_empty() {
            return Ok(());
        }
        let bound = match self.db().backend() {
            // One writer at a time: every id below the ones a summary reads
            // has committed already, so a summary takes all it sees.
            Backend::Sqlite => i64::MAX,
            Backend::Postgres => self.settled_usage_id(None).await?,
        };
        for sub in due {
            let id: String = sub.try_get("id")?;
            let org: String = sub.try_get("organization_id")?;
            let cursor: i64 = sub.try_get("usage_cursor")?;
            let mode: String = sub.try_get("billing_mode")?;
            let rows = sqlx::query(
                "SELECT model, COUNT(*) AS calls, CAST(SUM(prompt_tokens) AS BIGINT) AS prompt_tokens, \
                 CAST(SUM(completion_tokens) AS BIGINT) AS completion_tokens, CAST(SUM(cost) AS BIGINT) AS cost, \
                 MAX(id) AS last_id, MIN(created_at) AS first_at, MAX(created_at) AS last_at \
                 FROM usage_records WHERE organization_id = $1 AND id > $2 AND id <= $3 \
                 GROUP BY model ORDER BY model",
            )
            .bind(&org)
            .bind(cursor)
            .bind(bound)
            .fetch_all(self.db().pool())
            .await?;
            if rows.is_empty() {
                continue;
            }
            let (mut calls, mut prompt, mut completion, mut cost) = (0i64, 0i64, 0i64, 0i64);
            let (mut last_id, mut first_at, mut last_at) = (cursor, i64::MAX, 0i64);
            let mut by_model = Vec::with_capacity(rows.len());
            for row in &rows {
                let (c, p, o, k): (i64, i64, i64, i64) = (
                    row.try_get("calls")?,
                    row.try_get("prompt_tokens")?,
                    row.try_get("completion_tokens")?,
                    row.try_get("cost")?,
                );
                calls += c;
                prompt = prompt.saturating_add(p);
                completion = completion.saturating_add(o);
                cost = cost.saturating_add(k);
                last_id = last_id.max(row.try_get("last_id")?);
                first_at = first_at.min(row.try_get("first_at")?);
                last_at = last_at.max(row.try_get("last_at")?);
                by_model.push(json!({
                    "model": row.try_get::<String, _>("model")?,
                    "calls": c, "prompt_tokens": p, "completion_tokens": o, "cost": k,
                }));
            }
            let unit = match mode.as_str() {
                "usd" => "usd_micros",
                other => other,
            };
            let data = json!({
                "organization_id": org,
                "calls": calls,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "cost": cost,
                "unit": unit,
                "first_at": first_at / 1000,
                "last_at": last_at / 1000,
                "by_model": by_model,
            });
            let mut tx = self.db().begin_write().await?;
            let moved = sqlx::query(
                "UPDATE webhook_subscriptions SET usage_cursor = $1 WHERE id = $2 AND usage_cursor = $3",
            )
            .bind(last_id)
            .bind(&id)
            .bind(cursor)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if moved == 1 {
                enqueue_for(
                    &mut tx,
                    &id,
                    &org,
                    "usage.batch",
                    &data,
                    None,
                    time::now_millis(),
                )
                .await?;
            }
            tx.commit().await?;
        }
        Ok(())
    }

    /// Claims and sends the due deliveries; answers how many were claimed.
    async fn deliver_due(&self) -> Result<usize, WebhookError> {
        let now = time::now_millis();
        let lease =
            i64::try_from((self.options().timeout * 2 + Duration::from_secs(10)).as_millis())
                .unwrap_or(i64::MAX / 4);
        let rows = sqlx::query(
            "UPDATE webhook_deliveries SET lease_until = $1 \
             WHERE id IN (SELECT id FROM webhook_deliveries \
                 WHERE status = 'pending' AND next_attempt_at <= $2 AND lease_until <= $2 \
                 ORDER BY next_attempt_at LIMIT $3) \
             AND status = 'pending' AND lease_until <= $2 \
             RETURNING id, subscription_id, organization_id, payload, attempts",
        )
        .bind(now.saturating_add(lease))
        .bind(now)
        .bind(i64::try_from(BATCH).unwrap_or(16))
        .fetch_all(self.db().pool())
        .await?;
        let claimed = rows.len();
        let mut tasks = JoinSet::new();
        for row in rows {
            let delivery = Claimed {
                id: row.try_get("id")?,
                subscription_id: row.try_get("subscription_id")?,
                organization_id: row.try_get("organization_id")?,
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
            };
            let this = self.clone();
            tasks.spawn(async move {
                if let Err(e) = this.deliver(&delivery).await {
                    tracing::warn!(delivery_id = %delivery.id, error = %e, "webhooks: recording a delivery failed");
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(claimed)
    }

    async fn deliver(&self, delivery: &Claimed) -> Result<(), WebhookError> {
        let Some(sub) =
            sqlx::query("SELECT url, secret_sealed FROM webhook_subscriptions WHERE id = $1")
                .bind(&delivery.subscription_id)
                .fetch_optional(self.db().pool())
                .await?
        else {
            return Ok(()); // Deleted meanwhile: its deliveries went with it.
        };
        let url: String = sub.try_get("url")?;
        let sealed: String = sub.try_get("secret_sealed")?;
        let started = Instant::now();
        let outcome = match self
            .inner
            .credentials
            .open_secret(
                &delivery.organization_id,
                &delivery.subscription_id,
                &sealed,
            )
            .await
        {
            Ok(secret) => self.send(&url, secret.expose_secret(), delivery).await,
            Err(e) => Outcome::Failed {
                status_code: None,
                error: format!("the signing secret could not be opened: {e}"),
            },
        };
        self.record(delivery, &outcome, started.elapsed()).await
    }

    async fn send(&self, url: &str, secret: &str, delivery: &Claimed) -> Outcome {
        if !self.options().allow_private_addresses
            && reqwest::Url::parse(url)
                .ok()
                .and_then(|u| crate::addresses::literal_ip(&u))
                .is_some_and(|ip| !crate::addresses::is_public(ip))
        {
            return Outcome::Failed {
                status_code: None,
                error: "the URL is not a public address".into(),
            };
        }
        let timestamp = time::now_secs();
        let body = delivery.payload.as_bytes();
        let Some(signature) =
            crate::signature::standard_signature(secret, &delivery.id, timestamp, body)
        else {
            return Outcome::Failed {
                status_code: None,
                error: "the signing secret is malformed".into(),
            };
        };
        let sent = self
            .inner
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &delivery.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(delivery.payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) if response.status().is_success() => {
                Outcome::Delivered(response.status().as_u16())
            }
            Ok(response) => {
                let status = response.status();
                Outcome::Failed {
                    status_code: Some(status.as_u16()),
                    error: if status.is_redirection() {
                        format!("receiver answered {status}; redirects are not followed")
                    } else {
                        format!("receiver answered {status}")
                    },
                }
            }
            Err(e) => Outcome::Failed {
                status_code: None,
                error: if e.is_timeout() {
                    "timed out".to_owned()
                } else if e.is_connect() {
                    // The innermost cause says why: refused, no public address, TLS.
                    let mut cause: &dyn std::error::Error = &e;
                    while let Some(inner) = cause.source() {
                        cause = inner;
                    }
                    format!("could not connect: {cause}")
                } else {
                    "request failed".to_owned()
                },
            },
        }
    }

    /// Writes the attempt and the delivery's next state in one transaction.
    async fn record(
        &self,
        delivery: &Claimed,
        outcome: &Outcome,
        took: Duration,
    ) -> Result<(), WebhookError> {
        let now = time::now_millis();
        let attempt = delivery.attempts + 1;
        let (status, status_code, error, next) = match outcome {
            Outcome::Delivered(code) => ("delivered", Some(*code), None, now),
            Outcome::Failed { status_code, error } => {
                let give_up = attempt >= i64::from(self.options().max_attempts.max(1));
                let status = if give_up { "failed" } else { "pending" };
                let wait = backoff(self.options().backoff_base, attempt);
                let next =
                    now.saturating_add(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX / 4));
                (status, *status_code, Some(error.as_str()), next)
            }
        };
        let mut tx = self.db().begin_write().await?;
        sqlx::query(
            "INSERT INTO webhook_attempts (delivery_id, subscription_id, attempt, status_code, error, duration_ms, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&delivery.id)
        .bind(&delivery.subscription_id)
        .bind(attempt)
        .bind(status_code.map(i64::from))
        .bind(error)
        .bind(i64::try_from(took.as_millis()).unwrap_or(i64::MAX))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE webhook_deliveries SET status = $1, attempts = $2, next_attempt_at = $3, lease_until = 0, \
             finished_at = $4 WHERE id = $5",
        )
        .bind(status)
        .bind(attempt)
        .bind(next)
        .bind((status != "pending").then_some(now))
        .bind(&delivery.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        self.inner.attempt_outcomes.count(status);
        match status {
            "failed" => {
                tracing::warn!(delivery_id = %delivery.id, attempts = attempt, "webhook delivery failed for good")
            }
            "pending" => {
                tracing::info!(delivery_id = %delivery.id, attempt, error, "webhook delivery failed; will retry")
            }
            _ => tracing::debug!(delivery_id = %delivery.id, attempt, "webhook delivered"),
        }
        Ok(())
    }
}

/// The wait after the `attempt`-th failure: `base × 2^(attempt-1)`, at most
/// an hour, with "equal jitter" (a random point in its upper half), so that
/// receivers coming back are not hit by every retry at once.
pub(crate) fn backoff(base: Duration, attempt: i64) -> Duration {
    let exponent = u32::try_from((attempt - 1).clamp(0, 30)).unwrap_or(30);
    let full = base
        .saturating_mul(2u32.saturating_pow(exponent))
        .min(MAX_BACKOFF);
    let half = full / 2;
    let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::random_range(0..=jitter_ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let base = Duration::from_secs(2);
        for _ in 0..100 {
            let first = backoff(base, 1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff(base, 3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            assert!(backoff(base, 40) <= MAX_BACKOFF);
        }
    }
}
