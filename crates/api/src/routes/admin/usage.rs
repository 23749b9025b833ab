//! Usage records of an organization: newest-first pages with filters, sums
//! per day, model, key or provider, and a CSV export of every matching record.

use super::Page;
use crate::error::ApiError;
use crate::extract::{Caller, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_billing::{UsageFilter, UsageGroup, UsageRecord};

/// Records read from the database per page of a CSV export.
const EXPORT_PAGE: i64 = 1000;

/// The query string of `GET …/usage` and `GET …/usage/summary`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    limit: Option<i64>,
    before: Option<String>,
    /// Unix milliseconds, inclusive.
    from: Option<i64>,
    /// Unix milliseconds, exclusive.
    to: Option<i64>,
    model: Option<String>,
    provider: Option<String>,
    api_key_id: Option<String>,
    byok: Option<bool>,
    status: Option<String>,
    /// `json` (default) or `csv`.
    format: Option<String>,
    /// Summary only: `day`, `model`, `api_key` or `provider`.
    group_by: Option<String>,
}

impl UsageQuery {
    fn filter(&self) -> Result<UsageFilter, ApiError> {
        for (name, value) in [("from", self.from), ("to", self.to)] {
            if value.is_some_and(|v| v < 0) {
                return Err(ApiError::bad_request(format!(
                    "`{name}` must be a non-negative unix time in milliseconds"
                )));
            }
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from > to
        {
            return Err(ApiError::bad_request("`from` must not be after `to`"));
        }
        if let Some(status) = &self.status
            && status != "ok"
            && status != "partial"
        {
            return Err(ApiError::bad_request("`status` must be `ok` or `partial`"));
        }
        Ok(UsageFilter {
            from_ms: self.from,
            to_ms: self.to,
            model: self.model.clone(),
            provider: self.provider.clone(),
            api_key_id: self.api_key_id.clone(),
            byok: self.byok,
            status: self.status.clone(),
        })
    }

    /// Whether the answer is CSV: `format=csv`, or else an `Accept` that
    /// asks for `text/csv`.
    fn wants_csv(&self, headers: &HeaderMap) -> Result<bool, ApiError> {
        match self.format.as_deref() {
            Some("csv") => Ok(true),
            Some("json") => Ok(false),
            Some(_) => Err(ApiError::bad_request("`format` must be `json` or `csv`")),
            None => Ok(headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("text/csv"))),
        }
    }
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Response, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    if query.group_by.is_some() {
        return Err(ApiError::bad_request(
            "`group_by` belongs to `GET …/usage/summary`",
        ));
    }
    let filter = query.filter()?;
    if query.wants_csv(&headers)? {
        if query.limit.is_some() || query.before.is_some() {
            return Err(ApiError::bad_request(
                "a CSV export has every matching record: drop `limit` and `before`",
            ));
        }
        return Ok(csv_export(state, org.id, filter));
    }
    let page = Page {
        limit: query.limit,
        before: query.before,
    };
    let limit = page.limit()?;
    let mut records = state
        .billing
        .usage(&org.id, &filter, limit + 1, page.before.as_deref())
        .await?;
    let has_more = records.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(
        Json(json!({ "data": records, "has_more": has_more, "unit": org.billing_mode.unit() }))
            .into_response(),
    )
}

pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    if query.limit.is_some() || query.before.is_some() || query.format.is_some() {
        return Err(ApiError::bad_request(
            "a summary takes `group_by`, `from`, `to` and filters, not `limit`, `before` or `format`",
        ));
    }
    let group = query
        .group_by
        .as_deref()
        .and_then(UsageGroup::parse)
        .ok_or_else(|| {
            ApiError::bad_request("`group_by` must be one of day, model, api_key, provider")
        })?;
    let filter = query.filter()?;
    let rows = state.billing.usage_summary(&org.id, &filter, group).await?;
    Ok(Json(
        json!({ "data": rows, "unit": org.billing_mode.unit() }),
    ))
}

/// The columns of a CSV export, in order.
const CSV_HEADER: &str = "request_id,created_at,model,provider,api_key_id,prompt_tokens,\
completion_tokens,cached_tokens,cache_write_tokens,cost,list_cost_usd_micros,byok,stream,status,latency_ms\r\n";

/// Every matching record as CSV (RFC 4180), oldest first, read and sent a
/// page at a time so that memory stays flat however many there are.
fn csv_export(state: AppState, organization_id: String, filter: UsageFilter) -> Response {
    let first =
        futures::stream::once(async { Ok(bytes::Bytes::from_static(CSV_HEADER.as_bytes())) });
    let pages = futures::stream::unfold(Some(0i64), move |cursor| {
        let state = state.clone();
        let organization_id = organization_id.clone();
        let filter = filter.clone();
        async move {
            let after = cursor?;
            match state
                .billing
                .usage_page_after(&organization_id, &filter, after, EXPORT_PAGE)
                .await
            {
                Ok((records, _)) if records.is_empty() => None,
                Ok((records, last)) => {
                    let mut text = String::new();
                    for record in &records {
                        csv_line(&mut text, record);
                    }
                    Some((Ok(bytes::Bytes::from(text)), Some(last)))
                }
                Err(e) => {
                    // The status line is sent: cut the body so the client
                    // sees an incomplete export, not a short one.
                    tracing::error!(error = %e, "a usage export failed");
                    Some((Err(std::io::Error::other("usage export failed")), None))
                }
            }
        }
    });
    let mut response = Response::new(Body::from_stream(futures::StreamExt::chain(first, pages)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_static("attachment; filename=\"usage.csv\""),
    );
    response
}

fn csv_line(out: &mut String, r: &UsageRecord) {
    let fields = [
        r.request_id.as_str(),
        &r.created_at.to_string(),
        &r.model,
        &r.provider,
        r.api_key_id.as_deref().unwrap_or(""),
        &r.prompt_tokens.to_string(),
        &r.completion_tokens.to_string(),
        &r.cached_tokens.to_string(),
        &r.cache_write_tokens.to_string(),
        &r.cost.to_string(),
        &r.list_cost_usd_micros.to_string(),
        if r.byok { "true" } else { "false" },
        if r.stream { "true" } else { "false" },
        &r.status,
        &r.latency_ms.to_string(),
    ];
    for (i, field) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        csv_field(out, field);
    }
    out.push_str("\r\n");
}

/// One field, quoted (with inner quotes doubled) when it holds a comma, a
/// quote or a line break, as RFC 4180 says.
fn csv_field(out: &mut String, field: &str) {
    if field.contains([',', '"', '\r', '\n']) {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        let mut out = String::new();
        for field in ["plain", "a,b", "say \"hi\"", "two\nlines"] {
            super::csv_field(&mut out, field);
            out.push('|');
        }
        assert_eq!(out, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\nlines\"|");
    }
}
