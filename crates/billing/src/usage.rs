//! Usage records: one per settled call.

use crate::{Billing, BillingError};
use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::money::TokenUsage;

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageStatus {
    /// The provider answered in full.
    Ok,
    /// A stream ended early (cut by the provider or the client); billed for
    /// what the provider produced.
    Partial,
}

impl UsageStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Ok => "ok",
            UsageStatus::Partial => "partial",
        }
    }
}

/// What a finished call reports to billing.
#[derive(Debug, Clone)]
pub struct UsageEntry {
    pub request_id: String,
    pub api_key_id: Option<String>,
    pub model: String,
    pub provider: String,
    pub usage: TokenUsage,
    /// The cost in the organization's unit (capped by the hold when charged).
    pub cost: i64,
    pub list_cost_usd_micros: i64,
    pub byok: bool,
    pub stream: bool,
    pub status: UsageStatus,
    pub latency_ms: i64,
}

/// A usage record as the management API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    pub model: String,
    pub provider: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    /// What was deducted, in the organization's unit.
    pub cost: i64,
    pub list_cost_usd_micros: i64,
    pub byok: bool,
    pub stream: bool,
    pub status: String,
    pub latency_ms: i64,
    pub api_key_id: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

fn record_from_row(row: &AnyRow) -> Result<UsageRecord, sqlx::Error> {
    Ok(UsageRecord {
        request_id: row.try_get("request_id")?,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        prompt_tokens: row.try_get("prompt_tokens")?,
        completion_tokens: row.try_get("completion_tokens")?,
        cached_tokens: row.try_get("cached_tokens")?,
        cost: row.try_get("cost")?,
        list_cost_usd_micros: row.try_get("list_cost_usd_micros")?,
        // Read as integers: sqlx's Any driver cannot decode SQLite booleans.
        byok: row.try_get::<i64, _>("byok")? != 0,
        stream: row.try_get::<i64, _>("stream")? != 0,
        status: row.try_get("status")?,
        latency_ms: row.try_get("latency_ms")?,
        api_key_id: row.try_get("api_key_id")?,
        created_at: row.try_get::<i64, _>("created_at")? / 1000,
    })
}

impl Billing {
    /// An organization's usage records, newest first, `limit` at most,
    /// older than the record with `before` as request id when given.
    pub async fn usage(
        &self,
        organization_id: &str,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<UsageRecord>, BillingError> {
        let rows = sqlx::query(
            "SELECT request_id, model, provider, prompt_tokens, completion_tokens, cached_tokens, \
             cost, list_cost_usd_micros, \
             CAST(CASE WHEN byok THEN 1 ELSE 0 END AS BIGINT) AS byok, CAST(CASE WHEN stream THEN 1 ELSE 0 END AS BIGINT) AS stream, status, latency_ms, api_key_id, created_at \
             FROM usage_records WHERE organization_id = $1 \
             AND id < COALESCE((SELECT id FROM usage_records WHERE request_id = $2 AND organization_id = $1), 9223372036854775807) \
             ORDER BY id DESC LIMIT $3",
        )
        .bind(organization_id)
        .bind(before)
        .bind(limit.clamp(1, 1000))
        .fetch_all(self.db().pool())
        .await?;
        rows.iter()
            .map(|r| record_from_row(r).map_err(Into::into))
            .collect()
    }
}
