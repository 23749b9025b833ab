//! Organizations: create, read, list, update, suspend, resume and delete.
//!
//! Who may change what: an org_admin of the organization may change its
//! `name` and `default_power_level`; everything else (`markup_percent`,
//! `overdraft_limit`, `allowed_models`, `rpm_limit`, `tpm_limit`,
//! `max_concurrency`) is the platform admin's, as are suspension and
//! deletion.

use super::{Page, present};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::openapi::errors::{AdminErrors, CreateErrors, ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_billing::MAX_OVERDRAFT_LIMIT;
use tollgate_core::{BillingMode, PowerLevel, Unit};
use tollgate_credentials::{Actor, ListFilter};
use tollgate_tenants::{Organization, OrganizationChange};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme", "billing_mode": "usd"}))]
pub struct CreateOrganization {
    /// 1 to 200 characters.
    #[schema(min_length = 1, max_length = 200)]
    name: String,
    billing_mode: BillingMode,
}

/// `?limit=&before=&suspended=`.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page (an organization `id`): only
    /// older organizations.
    before: Option<String>,
    /// Only suspended (or only active) ones.
    suspended: Option<bool>,
}

/// Fields left out are unchanged. An org_admin of the organization may
/// change `name` and `default_power_level`; the other fields need a
/// platform admin (403 otherwise).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "Acme Corp", "default_power_level": "eco", "markup_percent": 20, "overdraft_limit": 1_000_000, "allowed_models": ["gpt-4o-mini", "claude-3-5-haiku"], "rpm_limit": 600, "tpm_limit": null}))]
pub struct UpdateOrganization {
    /// 1 to 200 characters.
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    name: Option<String>,
    /// `null` clears it (back to `balanced`).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<PowerLevel>)]
    default_power_level: Option<Option<PowerLevel>>,
    /// 0 to 1000. Platform admin only.
    #[schema(nullable = false, minimum = 0, maximum = 1000)]
    markup_percent: Option<u32>,
    /// In the organization's unit, 0 to 10^15. Platform admin only.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_000_i64)]
    overdraft_limit: Option<i64>,
    /// Catalog model ids (each must exist); `null`: every model. Platform
    /// admin only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Vec<String>>)]
    allowed_models: Option<Option<Vec<String>>>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    rpm_limit: Option<Option<i64>>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    tpm_limit: Option<Option<i64>>,
    /// Positive; `null`: the platform default. Platform admin only.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    max_concurrency: Option<Option<i64>>,
    /// Keep request and response bodies in the request log (an
    /// organization admin's choice).
    log_bodies: Option<bool>,
}

/// A deleted organization. Its balance stays as it was (no ledger row is
/// written) and is reported here so that it can be settled outside Tollgate.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "org_0192f0c1a2b3", "deleted": true, "balance": 4_998_500, "unit": "usd_micros"}))]
pub struct DeletedOrganization {
    id: String,
    /// Always true.
    deleted: bool,
    /// The balance left, in `unit`.
    balance: i64,
    unit: Unit,
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

/// Create an organization.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations", tag = "organizations",
    operation_id = "createOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    request_body = CreateOrganization,
    responses(
        (status = 201, description = "The new organization", body = Organization),
        CreateErrors,
    )
)]
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

/// Read an organization.
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "getOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization", body = Organization),
        ReadErrors,
    )
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    caller.require_org_reader(&org_id)?;
    Ok(Json(super::organization(&state, &org_id).await?))
}

/// List organizations, newest first.
///
/// Roles: platform admin (every organization); a user sees only its own.
#[utoipa::path(
    get, path = "/api/v1/organizations", tag = "organizations",
    operation_id = "listOrganizations",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of organizations", body = Page<Organization>),
        ListErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    QueryParams(query): QueryParams<ListQuery>,
) -> Result<Json<Page<Organization>>, ApiError> {
    let limit = super::page_limit(query.limit)?;
    let page = match caller.own_organization() {
        None => {
            let data = state
                .tenants
                .list_organizations(limit + 1, query.before.as_deref(), query.suspended)
                .await?;
            Page::cut(data, limit, |org| org.id.clone())
        }
        Some(own) => {
            let org = super::organization(&state, own).await?;
            let shown = query.before.as_deref().is_none_or(|b| org.id.as_str() < b)
                && query.suspended.is_none_or(|s| s == org.suspended);
            Page::all(if shown { vec![org] } else { vec![] })
        }
    };
    Ok(Json(page))
}

/// Update an organization: its name, default power level, markup,
/// overdraft limit, allowed models and rate limits. A change reaches every
/// replica's calls within a second.
///
/// Roles: platform admin; org_admin of this organization for `name` and
/// `default_power_level` only (403 if the body names any other field).
#[utoipa::path(
    patch, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "updateOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = UpdateOrganization,
    responses(
        (status = 200, description = "The updated organization", body = Organization),
        AdminErrors,
    )
)]
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

/// Delete an organization (soft): it disappears from lists and reads
/// (404), its API keys answer 401 within a second on every replica, its
/// provider credentials are deactivated and its users can no longer sign
/// in. Its ledger and usage records are kept; its balance is frozen.
///
/// The balance is reported in the answer (no ledger row: the ledger still
/// sums to it) so that the operator can settle it outside Tollgate.
///
/// Roles: platform admin.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}", tag = "organizations",
    operation_id = "deleteOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization is deleted", body = DeletedOrganization),
        ReadErrors,
    )
)]
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<DeletedOrganization>, ApiError> {
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
    Ok(Json(DeletedOrganization {
        unit: org.billing_mode.unit(),
        id: org.id,
        deleted: true,
        balance: credits.balance,
    }))
}

/// Suspend an organization: its API keys answer 403
/// (`organization_suspended`) within a second on every replica.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/suspend", tag = "organizations",
    operation_id = "suspendOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The suspended organization", body = Organization),
        ReadErrors,
    )
)]
pub async fn suspend(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    set_suspended(&state, &caller, &org_id, true).await
}

/// Resume a suspended organization.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/resume", tag = "organizations",
    operation_id = "resumeOrganization",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The organization, active again", body = Organization),
        ReadErrors,
    )
)]
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
