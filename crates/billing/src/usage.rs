//! Usage records: one per settled call.

use crate::{Billing, BillingError};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::any::AnyRow;
use tollgate_core::money::TokenUsage;
use tollgate_core::sql::SqlBuilder;

/// How a call ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UsageStatus {
    /// The provider answered in full.
    Ok,
    /// A stream ended early (cut by the provider or the client); billed for
    /// what the provider produced.
    Partial,
}

impl UsageStatus {
    pub const ALL: [UsageStatus; 2] = [UsageStatus::Ok, UsageStatus::Partial];

    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Ok => "ok",
            UsageStatus::Partial => "partial",
        }
    }
}

/// What a finished call reports to billing (and the settlement journal keeps).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageEntry {
    pub request_id: String,
    pub api_key_id: Option<String>,
    pub model: String,
    pub provider: String,
    pub usage: TokenUsage,
    /// The cost in the organization's unit, charged in full.
    pub cost: i64,
    pub list_cost_usd_micros: i64,
    pub byok: bool,
    pub stream: bool,
    pub status: UsageStatus,
    pub latency_ms: i64,
}

/// A usage record as the management API shows it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageRecord {
    pub request_id: String,
    pub model: String,
    pub provider: String,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    pub cached_tokens: i64,
    /// Prompt tokens written to the provider's prompt cache.
    pub cache_write_tokens: i64,
    /// What was deducted, in the organization's unit.
    pub cost: i64,
    pub list_cost_usd_micros: i64,
    pub byok: bool,
    pub stream: bool,
    /// `ok`, or `partial` for a stream that ended early.
    #[cfg_attr(feature = "openapi", schema(value_type = UsageStatus))]
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
        cache_write_tokens: row.try_get("cache_write_tokens")?,
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

/// Which usage records a query covers, beside the organization. Every
/// field narrows it; `None` leaves it open.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageFilter {
    /// From this instant (Unix milliseconds, inclusive).
    pub from_ms: Option<i64>,
    /// Until this instant (Unix milliseconds, exclusive).
    pub to_ms: Option<i64>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub api_key_id: Option<String>,
    pub byok: Option<bool>,
    /// `ok` or `partial`.
    pub status: Option<String>,
}

/// What a usage summary adds up by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum UsageGroup {
    /// The UTC day, as `YYYY-MM-DD`.
    Day,
    Model,
    ApiKey,
    Provider,
}

impl UsageGroup {
    pub fn parse(s: &str) -> Option<UsageGroup> {
        match s {
            "day" => Some(UsageGroup::Day),
            "model" => Some(UsageGroup::Model),
            "api_key" => Some(UsageGroup::ApiKey),
            "provider" => Some(UsageGroup::Provider),
            _ => None,
        }
    }

    /// The grouping expression: fixed SQL text, never a value.
    fn expression(self) -> &'static str {
        match self {
            UsageGroup::Day => "CAST(created_at / 86400000 AS BIGINT)",
            UsageGroup::Model => "model",
            UsageGroup::ApiKey => "api_key_id",
            UsageGroup::Provider => "provider",
        }
    }
}

/// One group of a usage summary; the numbers are sums over its records.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsageSummaryRow {
    /// The day (`YYYY-MM-DD`), model, API key id or provider; `null` for
    /// calls without a key.
    pub key: Option<String>,
    pub requests: i64,
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// Prompt tokens read from and written to the provider's prompt cache.
    pub cached_tokens: i64,
    pub cache_write_tokens: i64,
    /// In the organization's unit.
    pub cost: i64,
}

const USAGE_COLUMNS: &str = "SELECT id, request_id, model, provider, prompt_tokens, completion_tokens, \
     cached_tokens, cache_write_tokens, cost, list_cost_usd_micros, \
     CAST(CASE WHEN byok THEN 1 ELSE 0 END AS BIGINT) AS byok, \
     CAST(CASE WHEN stream THEN 1 ELSE 0 END AS BIGINT) AS stream, \
     status, latency_ms, api_key_id, created_at FROM usage_records";

/// `sql` followed by the organization and `filter` as a `WHERE` clause,
/// every value bound.
fn filtered(sql: &str, organization_id: &str, filter: &UsageFilter) -> SqlBuilder {
    let mut query = SqlBuilder::new(sql);
    query
        .push(" WHERE organization_id = ")
        .push_bind(organization_id);
    if let Some(from) = filter.from_ms {
        query.push(" AND created_at >= ").push_bind(from);
    }
    if let Some(to) = filter.to_ms {
        query.push(" AND created_at < ").push_bind(to);
    }
    let columns = [
        ("model", &filter.model),
        ("provider", &filter.provider),
        ("api_key_id", &filter.api_key_id),
        ("status", &filter.status),
    ];
    for (column, value) in columns {
        if let Some(value) = value {
            query
                .push(" AND ")
                .push(column)
                .push(" = ")
                .push_bind(value.as_str());
        }
    }
    if let Some(byok) = filter.byok {
        query.push(" AND byok = ").push_bind(byok);
    }
    query
}

impl Billing {
    /// An organization's usage records matching `filter`, newest first,
    /// `limit` at most, older than the record with `before` as request id
    /// when given.
    pub async fn usage(
        &self,
        organization_id: &str,
        filter: &UsageFilter,
        limit: i64,
        before: Option<&str>,
    ) -> Result<Vec<UsageRecord>, BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        let mut query = filtered(USAGE_COLUMNS, organization_id, filter);
        if let Some(before) = before {
            query
                .push(" AND id < COALESCE((SELECT id FROM usage_records WHERE request_id = ")
                .push_bind(before)
                .push(" AND organization_id = ")
                .push_bind(organization_id)
                .push("), 9223372036854775807)");
        }
        query
            .push(" ORDER BY id DESC LIMIT ")
            .push_bind(limit.clamp(1, 1000));
        let rows = query.build().fetch_all(self.db().pool()).await?;
        rows.iter()
            .map(|r| record_from_row(r).map_err(Into::into))
            .collect()
    }

    /// Up to `limit` records matching `filter` after the record with id
    /// `after` (0: from the first), oldest first, and the id to continue
    /// after; for exports that read every matching record page by page.
    pub async fn usage_page_after(
        &self,
        organization_id: &str,
        filter: &UsageFilter,
        after: i64,
        limit: i64,
    ) -> Result<(Vec<UsageRecord>, i64), BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        let mut query = filtered(USAGE_COLUMNS, organization_id, filter);
        query
            .push(" AND id > ")
            .push_bind(after)
            .push(" ORDER BY id LIMIT ")
            .push_bind(limit.clamp(1, 10_000));
        let rows = query.build().fetch_all(self.db().pool()).await?;
        let mut last = after;
        let mut records = Vec::with_capacity(rows.len());
        for row in &rows {
            last = row.try_get("id")?;
            records.push(record_from_row(row)?);
        }
        Ok((records, last))
    }

    /// Requests, tokens and cost of the records matching `filter`, summed
    /// per `group` (in the database, with `GROUP BY`), in key order.
    pub async fn usage_summary(
        &self,
        organization_id: &str,
        filter: &UsageFilter,
        group: UsageGroup,
    ) -> Result<Vec<UsageSummaryRow>, BillingError> {
        self.committed_within(self.inner.options.db_timeout).await?;
        let expression = group.expression();
        let mut sql = String::from("SELECT ");
        sql.push_str(expression);
        sql.push_str(
            " AS group_key, CAST(COUNT(*) AS BIGINT) AS requests, \
             CAST(COALESCE(SUM(prompt_tokens), 0) AS BIGINT) AS prompt_tokens, \
             CAST(COALESCE(SUM(completion_tokens), 0) AS BIGINT) AS completion_tokens, \
             CAST(COALESCE(SUM(cached_tokens), 0) AS BIGINT) AS cached_tokens, \
             CAST(COALESCE(SUM(cache_write_tokens), 0) AS BIGINT) AS cache_write_tokens, \
             CAST(COALESCE(SUM(cost), 0) AS BIGINT) AS cost FROM usage_records",
        );
        let mut query = filtered(&sql, organization_id, filter);
        query
            .push(" GROUP BY ")
            .push(expression)
            .push(" ORDER BY ")
            .push(expression);
        let rows = query.build().fetch_all(self.db().pool()).await?;
        rows.iter()
            .map(|row| {
                let key = match group {
                    UsageGroup::Day => Some(tollgate_core::budget::date_of_day(
                        row.try_get::<i64, _>("group_key")?,
                    )),
                    _ => row.try_get::<Option<String>, _>("group_key")?,
                };
                Ok(UsageSummaryRow {
                    key,
                    requests: row.try_get("requests")?,
                    prompt_tokens: row.try_get("prompt_tokens")?,
                    completion_tokens: row.try_get("completion_tokens")?,
                    cached_tokens: row.try_get("cached_tokens")?,
                    cache_write_tokens: row.try_get("cache_write_tokens")?,
                    cost: row.try_get("cost")?,
                })
            })
            .collect()
    }
}
