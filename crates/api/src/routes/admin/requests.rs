//! The request log of an organization: its data-plane calls, newest first,
//! with filters, and one call with its provider attempts (and, when the
//! organization keeps them, its bodies).

use super::{Page, UnitPage};
use crate::error::ApiError;
use crate::extract::{Caller, PathParams, QueryParams};
use crate::openapi::errors::{ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use tollgate_observe::request_log::{RequestDetail, RequestFilter, RequestSummary, StatusFilter};

/// The query string of `GET …/requests`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct RequestQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page: only older calls
    /// (`cursor` is accepted too).
    #[serde(alias = "cursor")]
    before: Option<String>,
    /// Unix milliseconds, inclusive.
    #[param(minimum = 0)]
    from: Option<i64>,
    /// Unix milliseconds, exclusive.
    #[param(minimum = 0)]
    to: Option<i64>,
    /// The model that answered, or the one asked for (`auto` included).
    model: Option<String>,
    api_key_id: Option<String>,
    /// `ok` (below 400), `error` (400 and above) or an HTTP status.
    status: Option<String>,
}

impl RequestQuery {
    fn filter(&self) -> Result<RequestFilter, ApiError> {
        super::check_time_range(self.from, self.to)?;
        let status = self
            .status
            .as_deref()
            .map(|s| {
                StatusFilter::parse(s).ok_or_else(|| {
                    ApiError::bad_request(
                        "`status` must be `ok`, `error` or an HTTP status from 100 to 599",
                    )
                })
            })
            .transpose()?;
        Ok(RequestFilter {
            from_ms: self.from,
            to_ms: self.to,
            model: self.model.clone(),
            api_key_id: self.api_key_id.clone(),
            status,
        })
    }
}

/// List an organization's calls (the request log).
///
/// Newest first. Every data-plane call that reached routing is here, with
/// its outcome, tokens, cost and durations, within a few hundred
/// milliseconds of its end (the log is written in the background).
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/requests", tag = "usage",
    operation_id = "listRequests",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        RequestQuery,
    ),
    responses(
        (status = 200, description = "A page of calls", body = UnitPage<RequestSummary>),
        ListErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(query): QueryParams<RequestQuery>,
) -> Result<Json<UnitPage<RequestSummary>>, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let filter = query.filter()?;
    let limit = super::page_limit(query.limit)?;
    let data = state
        .observer
        .request_log
        .list(&org.id, &filter, limit + 1, query.before.as_deref())
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(UnitPage {
        page: Page::cut(data, limit, |r| r.request_id.clone()),
        unit: org.billing_mode.unit(),
    }))
}

/// Get one call of the request log, with its provider attempts.
///
/// `request_body` and `response_body` are there only when the organization
/// keeps bodies (`log_bodies`), until the retention period ends, and only
/// for a platform admin or an admin of the organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/requests/{request_id}", tag = "usage",
    operation_id = "getRequest",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("request_id" = String, Path, description = "The call's `x-tollgate-request-id`"),
    ),
    responses(
        (status = 200, description = "The call", body = RequestDetail),
        ReadErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, request_id)): PathParams<(String, String)>,
) -> Result<Json<RequestDetail>, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let mut detail = state
        .observer
        .request_log
        .get(&org.id, &request_id)
        .await
        .map_err(ApiError::internal)?
        .ok_or_else(|| ApiError::not_found("no such request in this organization's log"))?;
    // Prompts are an admin's to read, not every member's.
    if caller.require_org_admin(&org_id).is_err() {
        detail.request_body = None;
        detail.response_body = None;
    }
    Ok(Json(detail))
}
