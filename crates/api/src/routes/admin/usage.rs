//! Usage records of an organization: newest-first pages with filters, sums
//! per day, model, key or provider, and a CSV export of every matching record.

use super::{Page, UnitPage};
use crate::error::ApiError;
use crate::extract::{Caller, PathParams, QueryParams};
use crate::openapi::errors::ListErrors;
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use tollgate_billing::{UsageFilter, UsageGroup, UsageRecord, UsageStatus, UsageSummaryRow};
use tollgate_core::Unit;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::{IntoParams, ToSchema};

/// Records read from the database per page of a CSV export.
const EXPORT_PAGE: i64 = 1000;

/// The query string of `GET …/usage`, `…/usage/summary` and
/// `…/usage/export`; each takes the part [`ListParams`], [`SummaryParams`]
/// and [`ExportParams`] document.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (a usage record's
    /// `request_id`): only older records.
    before: Option<String>,
    /// Only records from this instant (unix milliseconds, inclusive).
    #[param(minimum = 0)]
    from: Option<i64>,
    /// Only records before this instant (unix milliseconds, exclusive).
    #[param(minimum = 0)]
    to: Option<i64>,
    /// Only this catalog model id.
    model: Option<String>,
    /// Only this provider.
    provider: Option<String>,
    /// Only calls made with this API key id.
    api_key_id: Option<String>,
    /// Only calls paid (`true`) or not paid (`false`) with the organization's own key.
    byok: Option<bool>,
    /// Only `ok` or only `partial` (streams that ended early) records.
    #[param(value_type = Option<UsageStatus>)]
    status: Option<String>,
    /// The list's answer: `json` (default: a page) or `csv` (every
    /// matching record, oldest first, as `…/usage/export` answers; without
    /// `limit` or `before`). Without it, `Accept: text/csv` asks for CSV.
    #[param(value_type = Option<UsageFormat>, inline)]
    format: Option<String>,
    /// What the summary sums by.
    #[param(value_type = Option<UsageGroup>)]
    group_by: Option<String>,
}

/// What `GET …/usage` answers with.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)] // Only documents the `format` parameter's values.
enum UsageFormat {
    Json,
    Csv,
}

/// The filters every usage operation takes.
const FILTERS: [&str; 7] = [
    "from",
    "to",
    "model",
    "provider",
    "api_key_id",
    "byok",
    "status",
];

/// The parameters of [`UsageQuery`] named `names`, as documented.
fn usage_params(names: &[&str]) -> Vec<Parameter> {
    UsageQuery::into_params(|| Some(ParameterIn::Query))
        .into_iter()
        .filter(|p| names.contains(&p.name.as_str()) || FILTERS.contains(&p.name.as_str()))
        .collect()
}

/// The query of `GET …/usage`: a page, the format, and the filters.
pub struct ListParams;

impl IntoParams for ListParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        usage_params(&["limit", "before", "format"])
    }
}

/// The query of `GET …/usage/summary`: `group_by`, and the filters.
pub struct SummaryParams;

impl IntoParams for SummaryParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let mut params = usage_params(&["group_by"]);
        for param in params.iter_mut().filter(|p| p.name == "group_by") {
            param.required = Required::True;
        }
        params
    }
}

/// The query of `GET …/usage/export`: the filters.
pub struct ExportParams;

impl IntoParams for ExportParams {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        usage_params(&[])
    }
}

/// Usage summed per group, in key order.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"data": [{"key": "gpt-4o-mini", "requests": 1_204, "prompt_tokens": 512_000, "completion_tokens": 98_000, "cost": 135_600}], "unit": "usd_micros"}))]
pub struct UsageSummary {
    data: Vec<UsageSummaryRow>,
    unit: Unit,
}

impl UsageQuery {
    fn filter(&self) -> Result<UsageFilter, ApiError> {
        super::check_time_range(self.from, self.to)?;
        if let Some(status) = &self.status
            && !UsageStatus::ALL.iter().any(|s| s.as_str() == status)
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

/// List an organization's usage records, newest first.
///
/// Filters combine (AND); `from` and `to` are unix milliseconds. With
/// `format=csv` (or, without `format`, an `Accept` header that asks for
/// `text/csv`) the answer is every matching record as CSV, oldest first,
/// exactly as `GET …/usage/export` answers it (`limit` and `before` are
/// then refused).
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/usage", tag = "usage",
    operation_id = "listUsage",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), ListParams),
    responses(
        (status = 200, description = "A page of usage records; with `format=csv`, the CSV export", content(
            (UnitPage<UsageRecord> = "application/json"),
            (String = "text/csv; charset=utf-8", example = json!(csv_example())),
        )),
        ListErrors,
    )
)]
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
    let limit = super::page_limit(query.limit)?;
    let records = state
        .billing
        .usage(&org.id, &filter, limit + 1, query.before.as_deref())
        .await?;
    Ok(Json(UnitPage {
        page: Page::cut(records, limit, |r| r.request_id.clone()),
        unit: org.billing_mode.unit(),
    })
    .into_response())
}

/// Export an organization's usage records as CSV: every matching record,
/// oldest first, RFC 4180 with a header line.
///
/// Takes the filters of the list. Roles: platform admin; org_admin and
/// org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/usage/export", tag = "usage",
    operation_id = "exportUsage",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), ExportParams),
    responses(
        (status = 200, description = "The CSV export", content_type = "text/csv; charset=utf-8", body = String,
            example = json!(csv_example())),
        ListErrors,
    )
)]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Response, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    if query.limit.is_some()
        || query.before.is_some()
        || query.format.is_some()
        || query.group_by.is_some()
    {
        return Err(ApiError::bad_request(
            "an export takes `from`, `to` and filters, not `limit`, `before`, `format` or `group_by`",
        ));
    }
    let filter = query.filter()?;
    Ok(csv_export(state, org.id, filter))
}

/// Sum an organization's usage per day, model, API key or provider.
///
/// Takes the same filters as the list. Days are UTC (`YYYY-MM-DD`).
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/usage/summary", tag = "usage",
    operation_id = "summarizeUsage",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), SummaryParams),
    responses(
        (status = 200, description = "The sums per group", body = UsageSummary),
        ListErrors,
    )
)]
pub async fn summary(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(query): QueryParams<UsageQuery>,
) -> Result<Json<UsageSummary>, ApiError> {
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
    Ok(Json(UsageSummary {
        data: rows,
        unit: org.billing_mode.unit(),
    }))
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

/// The export of one record, as the document shows it: from
/// [`CSV_HEADER`] and [`csv_line`], so that it cannot drift from the real one.
fn csv_example() -> String {
    let record = UsageRecord {
        request_id: "req_0192f0c1a2b3".into(),
        model: "gpt-4o-mini".into(),
        provider: "openai".into(),
        prompt_tokens: 12,
        completion_tokens: 9,
        cached_tokens: 0,
        cache_write_tokens: 0,
        cost: 8,
        list_cost_usd_micros: 8,
        byok: false,
        stream: false,
        status: UsageStatus::Ok.as_str().into(),
        latency_ms: 412,
        api_key_id: Some("key_0192f0c1a2b3".into()),
        created_at: 1_763_900_000,
    };
    let mut text = String::from(CSV_HEADER);
    csv_line(&mut text, &record);
    text
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
