//! Organizations: create, read, list, update, suspend and resume.

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tollgate_core::{BillingMode, PowerLevel};
use tollgate_tenants::{Organization, OrganizationChange};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
    billing_mode: BillingMode,
}

/// `?limit=&before=&suspended=`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    /// An organization id: only older organizations.
    before: Option<String>,
    suspended: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrganization {
    name: Option<String>,
    /// `null` clears it (back to `balanced`).
    #[serde(default, deserialize_with = "present")]
    default_power_level: Option<Option<PowerLevel>>,
}

/// Tells a field given as `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    de: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(de).map(Some)
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    caller.require_platform()?;
    let org = state
        .tenants
        .create_organization(&body.name, body.billing_mode)
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    caller.require_org_reader(&org_id)?;
    Ok(Json(super::organization(&state, &org_id).await?))
}

/// `GET /api/v1/organizations`: every organization for a platform admin;
/// a user sees only its own.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let limit = super::Page {
        limit: query.limit,
        before: None,
    }
    .limit()?;
    let (data, has_more) = match caller.own_organization() {
        None => {
            let mut data = state
                .tenants
                .list_organizations(limit + 1, query.before.as_deref(), query.suspended)
                .await?;
            let limit = usize::try_from(limit).unwrap_or(usize::MAX);
            let more = data.len() > limit;
            data.truncate(limit);
            (data, more)
        }
        Some(own) => {
            let org = super::organization(&state, own).await?;
            let shown = query.before.as_deref().is_none_or(|b| org.id.as_str() < b)
                && query.suspended.is_none_or(|s| s == org.suspended);
            (if shown { vec![org] } else { vec![] }, false)
        }
    };
    Ok(Json(json!({ "data": data, "has_more": has_more })))
}

/// `PATCH /api/v1/organizations/{org_id}`
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<UpdateOrganization>,
) -> Result<Json<Organization>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = state
        .tenants
        .update_organization(
            &org_id,
            OrganizationChange {
                name: body.name.as_deref(),
                default_power_level: body.default_power_level,
            },
        )
        .await?;
    tracing::info!(organization_id = %org.id, "organization updated");
    Ok(Json(org))
}

/// `POST /api/v1/organizations/{org_id}/suspend`
pub async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    set_suspended(&state, &caller, &org_id, true).await
}

/// `POST /api/v1/organizations/{org_id}/resume`
pub async fn resume(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    set_suspended(&state, &caller, &org_id, false).await
}

async fn set_suspended(
    state: &AppState,
    caller: &Caller,
    org_id: &str,
    suspended: bool,
) -> Result<Json<Organization>, ApiError> {
    caller.require_platform()?;
    let org = state.tenants.set_suspended(org_id, suspended).await?;
    tracing::info!(organization_id = %org.id, suspended, "organization suspension changed");
    Ok(Json(org))
}
