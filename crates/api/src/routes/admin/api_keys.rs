//! Organization API keys: create (the key is shown only then), list,
//! change (limits, budget, expiry, name: never the secret), revoke.

use super::{Page, PageQuery, present};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::openapi::errors::{AdminErrors, ChangeErrors, ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tollgate_core::{BudgetPeriod, time};
use tollgate_tenants::{ApiKeyChange, ApiKeyInfo, Budget, KeyScope, NewApiKey};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "prod", "rpm_limit": 600, "budget": {"amount": 5_000_000, "period": "monthly"}, "scopes": ["chat"]}))]
pub struct CreateApiKey {
    name: String,
    /// Requests per minute.
    #[schema(nullable = false)]
    rpm_limit: Option<i64>,
    /// Tokens per minute.
    #[schema(nullable = false)]
    tpm_limit: Option<i64>,
    /// Calls in flight at once.
    #[schema(nullable = false)]
    max_concurrency: Option<i64>,
    #[schema(nullable = false)]
    budget: Option<Budget>,
    /// Unix seconds.
    #[schema(nullable = false)]
    expires_at: Option<i64>,
    /// An organization admin key: it may also manage its own organization's
    /// provider credentials. Default false. The same as the `admin` scope
    /// (kept for clients written before scopes).
    #[serde(default)]
    admin: bool,
    /// What the key may call; default `["chat", "embeddings"]` (plus
    /// `admin` when `admin` is true). At least one.
    #[schema(nullable = false)]
    scopes: Option<Vec<KeyScope>>,
}

/// Fields left out are unchanged; `null` removes a limit, the budget or the
/// expiry. Values are checked as at creation, but `expires_at` may be in
/// the past: the key then fails with 401 (`expired`) at once. The secret
/// cannot be changed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"rpm_limit": 1200, "tpm_limit": null, "budget": {"amount": 10_000_000, "period": "monthly"}}))]
pub struct UpdateApiKey {
    /// 1 to 200 characters.
    #[schema(nullable = false, min_length = 1, max_length = 200)]
    name: Option<String>,
    /// Requests per minute, positive; `null`: no limit of the key's own.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    rpm_limit: Option<Option<i64>>,
    /// Tokens per minute, positive; `null`: no limit of the key's own.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    tpm_limit: Option<Option<i64>>,
    /// Calls in flight at once, positive; `null`: no limit of the key's own.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 1)]
    max_concurrency: Option<Option<i64>>,
    /// The new cap (`amount` positive) and period; `null`: no budget. What
    /// the key spent in the current period counts against a new amount;
    /// a new period counts from what was charged to it (see the README).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Budget>)]
    budget: Option<Option<Budget>>,
    /// Unix seconds; `null`: never expires.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<i64>, minimum = 0)]
    expires_at: Option<Option<i64>>,
    /// What the key may call from now on, in place of its scopes so far; at
    /// least one. The key's `admin` flag follows the `admin` scope.
    #[schema(nullable = false)]
    scopes: Option<Vec<KeyScope>>,
}

impl UpdateApiKey {
    /// The names of the fields the body sets, for the log.
    fn fields(&self) -> Vec<&'static str> {
        [
            ("name", self.name.is_some()),
            ("rpm_limit", self.rpm_limit.is_some()),
            ("tpm_limit", self.tpm_limit.is_some()),
            ("max_concurrency", self.max_concurrency.is_some()),
            ("budget", self.budget.is_some()),
            ("expires_at", self.expires_at.is_some()),
            ("scopes", self.scopes.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, set)| set.then_some(field))
        .collect()
    }
}

/// A key as listed: everything but the secret.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "key_0192f0c1a2b3", "organization_id": "org_0192f0c1a2b3", "name": "prod", "key_prefix": "tg-0192f0c1", "rpm_limit": 600, "tpm_limit": null, "max_concurrency": null, "expires_at": null, "admin": false, "scopes": ["chat", "embeddings"], "revoked_at": null, "created_at": 1_763_900_000, "budget": {"amount": 5_000_000, "period": "monthly", "spent": 1_250_000, "resets_at": 1_764_547_200}}))]
pub struct ApiKey {
    #[serde(flatten)]
    info: ApiKeyInfo,
    /// Enforced: a call the budget cannot cover gets 402 with `param: budget`.
    budget: Option<BudgetStatus>,
}

/// A key's budget and what the key spent of it in the current period.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"amount": 5_000_000, "period": "monthly", "spent": 1_250_000, "resets_at": 1_764_547_200}))]
pub struct BudgetStatus {
    /// The cap per period, in the organization's unit.
    amount: i64,
    /// Periods start at 00:00 UTC: each day, each Monday (ISO week), each
    /// 1st of the month; `total` never resets.
    period: BudgetPeriod,
    /// Charged to settled calls of this key in the current period.
    spent: i64,
    /// When the current period ends and `spent` starts again from 0 (unix
    /// seconds); `null` for `total`.
    resets_at: Option<i64>,
}

/// A new key: the listed fields plus `key`, shown only in this answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    info: ApiKey,
    /// The full key. Store it now: it is never shown again.
    key: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "key_0192f0c1a2b3", "revoked": true}))]
pub struct RevokedApiKey {
    id: String,
    /// Always true.
    revoked: bool,
}

/// Create an API key; the key is shown only in this answer.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/api-keys", tag = "api keys",
    operation_id = "createApiKey",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = CreateApiKey,
    responses(
        (status = 201, description = "The new key, with its secret", body = CreatedApiKey),
        AdminErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    caller.require_org_admin(&org_id)?;
    let created = state
        .tenants
        .create_api_key(
            &org_id,
            NewApiKey {
                name: body.name,
                rpm_limit: body.rpm_limit,
                tpm_limit: body.tpm_limit,
                max_concurrency: body.max_concurrency,
                budget: body.budget,
                expires_at: body.expires_at,
                admin: body.admin,
                scopes: body.scopes,
            },
        )
        .await?;
    tracing::info!(organization_id = %org_id, api_key_id = %created.info.id, "api key created");
    let key = created.key.expose_secret().to_owned();
    let info = with_spending(&state, &org_id, vec![created.info])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("a created key went missing"))?;
    Ok((StatusCode::CREATED, Json(CreatedApiKey { info, key })))
}

/// List an organization's API keys, without secrets.
///
/// Roles: platform admin; org_admin and org_member of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/api-keys", tag = "api keys",
    operation_id = "listApiKeys",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses(
        (status = 200, description = "A page of the organization's keys", body = Page<ApiKey>),
        ListErrors,
    )
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    caller.require_org_reader(&org_id)?;
    super::organization(&state, &org_id).await?;
    let limit = super::page_limit(page.limit)?;
    let keys = state
        .tenants
        .list_api_keys(&org_id, limit + 1, page.before.as_deref())
        .await?;
    let page = Page::cut(keys, limit, |k| k.id.clone());
    Ok(Json(Page {
        data: with_spending(&state, &org_id, page.data).await?,
        has_more: page.has_more,
        next_cursor: page.next_cursor,
    }))
}

/// Change an API key's name, rate limits, budget, expiry or scopes,
/// keeping its secret. The change applies to the key's calls on every
/// replica within a second; fields left out are unchanged and `null`
/// removes a limit, the budget or the expiry.
///
/// A lowered budget refuses the next calls (402, `param: budget`) once
/// what the key spent in the current period reaches it; a raised one
/// admits them at once. A revoked key cannot be changed: 404, as for a
/// key that does not exist (or belongs to another organization).
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    patch, path = "/api/v1/organizations/{org_id}/api-keys/{key_id}", tag = "api keys",
    operation_id = "updateApiKey",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("key_id" = String, Path, description = "API key id"),
    ),
    request_body = UpdateApiKey,
    responses(
        (status = 200, description = "The key as listed, without its secret", body = ApiKey),
        ChangeErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, key_id)): PathParams<(String, String)>,
    JsonBody(body): JsonBody<UpdateApiKey>,
) -> Result<Json<ApiKey>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let fields = body.fields().join(",");
    let info = state
        .tenants
        .update_api_key(
            &org_id,
            &key_id,
            ApiKeyChange {
                name: body.name,
                rpm_limit: body.rpm_limit,
                tpm_limit: body.tpm_limit,
                max_concurrency: body.max_concurrency,
                budget: body.budget,
                expires_at: body.expires_at,
                scopes: body.scopes,
            },
        )
        .await?;
    tracing::info!(organization_id = %org_id, api_key_id = %key_id, fields, "api key updated");
    let key = with_spending(&state, &org_id, vec![info])
        .await?
        .pop()
        .ok_or_else(|| ApiError::internal("an updated key went missing"))?;
    Ok(Json(key))
}

/// Revoke an API key; it fails with 401 within a second on every replica.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    delete, path = "/api/v1/organizations/{org_id}/api-keys/{key_id}", tag = "api keys",
    operation_id = "revokeApiKey",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(
        ("org_id" = String, Path, description = "Organization id"),
        ("key_id" = String, Path, description = "API key id"),
    ),
    responses(
        (status = 200, description = "Revoked", body = RevokedApiKey),
        ReadErrors,
    )
)]
pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, key_id)): PathParams<(String, String)>,
) -> Result<Json<RevokedApiKey>, ApiError> {
    caller.require_org_admin(&org_id)?;
    state.tenants.revoke_api_key(&org_id, &key_id).await?;
    tracing::info!(organization_id = %org_id, api_key_id = %key_id, "api key revoked");
    Ok(Json(RevokedApiKey {
        id: key_id,
        revoked: true,
    }))
}

/// The keys, each budget with what the key spent in the current period and
/// when that period ends.
async fn with_spending(
    state: &AppState,
    org_id: &str,
    keys: Vec<ApiKeyInfo>,
) -> Result<Vec<ApiKey>, ApiError> {
    let periods: Vec<(&str, tollgate_core::BudgetPeriod)> = keys
        .iter()
        .filter_map(|k| k.budget.map(|b| (k.id.as_str(), b.period)))
        .collect();
    let spending = state.billing.budget_spending(org_id, &periods).await?;
    let now = time::now_millis();
    Ok(keys
        .into_iter()
        .map(|info| ApiKey {
            budget: info.budget.map(|budget| BudgetStatus {
                amount: budget.amount,
                period: budget.period,
                spent: spending.get(&info.id).map_or(0, |s| s.spent),
                resets_at: budget.period.resets_at(now).map(|ms| ms / 1000),
            }),
            info,
        })
        .collect())
}
