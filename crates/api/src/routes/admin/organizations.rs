//! Organizations: create, read, list, update, suspend, resume and delete.
//!
//! Who may change what: an org_admin of the organization may change its
//! `name` and `default_power_level`; everything else (`markup_percent`,
//! `overdraft_limit`, `allowed_models`, `rpm_limit`, `tpm_limit`,
//! `max_concurrency`) is the platform admin's, as are suspension and
//! deletion.

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tollgate_billing::MAX_OVERDRAFT_LIMIT;
use tollgate_core::{BillingMode, PowerLevel};
use tollgate_credentials::{Actor, ListFilter};
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
    markup_percent: Option<u32>,
    overdraft_limit: Option<i64>,
    /// `null`: every catalog model.
    #[serde(default, deserialize_with = "present")]
    allowed_models: Option<Option<Vec<String>>>,
    /// `null`: the platform default.
    #[serde(default, deserialize_with = "present")]
    rpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    tpm_limit: Option<Option<i64>>,
    #[serde(default, deserialize_with = "present")]
    max_concurrency: Option<Option<i64>>,
    /// Keep request and response bodies in the request log (an
    /// organization admin's choice).
    log_bodies: Option<bool>,
}

impl UpdateOrganization {
    /// Whether it changes a setting only a platform admin may change.
    fn changes_platform_settings(&self) -> bool {
        self.markup_percent.is_some()
            || self.overdraft_limit.is_some()
            || self.allowed_models.is_some()
            || self.rpm_limit.is_some()
            || self.tpm_limit.is_some()
            || self.max_concurrency.is_some()
    }
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
    if body.changes_platform_settings() {
        caller.require_platform()?;
    } else {
        caller.require_org_admin(&org_id)?;
    }
    if let Some(limit) = body.overdraft_limit
        && !(0..=MAX_OVERDRAFT_LIMIT).contains(&limit)
    {
        return Err(ApiError::bad_request(format!(
            "invalid overdraft_limit: must be an integer from 0 to {MAX_OVERDRAFT_LIMIT}"
        )));
    }
    if let Some(Some(models)) = &body.allowed_models
        && let Some(unknown) = models
            .iter()
            .find(|m| state.catalog.current().model(m).is_none())
    {
        return Err(ApiError::bad_request(format!(
            "invalid allowed_models: `{unknown}` is not a model of the catalog (GET /api/v1/models)"
        )));
    }
    state
        .tenants
        .update_organization(
            &org_id,
            OrganizationChange {
                name: body.name.as_deref(),
                default_power_level: body.default_power_level,
                markup_percent: body.markup_percent,
                allowed_models: body.allowed_models,
                rpm_limit: body.rpm_limit,
                tpm_limit: body.tpm_limit,
                max_concurrency: body.max_concurrency,
                log_bodies: body.log_bodies,
            },
        )
        .await?;
    if let Some(limit) = body.overdraft_limit {
        state.billing.set_overdraft_limit(&org_id, limit).await?;
    }
    let org = super::organization(&state, &org_id).await?;
    tracing::info!(organization_id = %org.id, "organization updated");
    Ok(Json(org))
}

/// `DELETE /api/v1/organizations/{org_id}`: a soft delete. Its keys are
/// revoked, its provider credentials deactivated, its users can no longer
/// sign in; its balance is frozen as it is (no ledger row: the ledger still
/// sums to it), and reported in the answer so that the operator can settle
/// it outside Tollgate.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_platform()?;
    let org = state.tenants.delete_organization(&org_id).await?;
    let active = state
        .credentials
        .list(&ListFilter {
            organization_id: Some(&org.id),
            provider: None,
            active: Some(true),
            before: None,
            limit: 1000,
        })
        .await?;
    for credential in active {
        state
            .credentials
            .set_active(&org.id, &credential.id, false, &Actor::PlatformAdmin)
            .await?;
    }
    let credits = state.billing.credits(&org.id).await?;
    tracing::info!(organization_id = %org.id, "organization deleted");
    Ok(Json(json!({
        "id": org.id,
        "deleted": true,
        "balance": credits.balance,
        "unit": org.billing_mode.unit(),
    })))
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
