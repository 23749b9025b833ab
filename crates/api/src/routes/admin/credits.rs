//! Credits: balance, grants (idempotent) and the ledger.

use super::{Page, PageQuery, UnitPage};
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::openapi::errors::{GrantErrors, ListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use tollgate_billing::LedgerEntry;
use tollgate_core::Unit;
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": 5_000_000, "idempotency_key": "topup-1", "reason": "monthly top-up"}))]
pub struct Grant {
    /// In the organization's unit; at least 1.
    #[schema(minimum = 1)]
    amount: i64,
    /// A second grant with the same key answers the first one's result;
    /// with another body it is a 409.
    #[schema(nullable = false, min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    #[schema(nullable = false, max_length = 4096)]
    reason: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"balance": 5_000_000, "unit": "usd_micros"}))]
pub struct GrantResult {
    balance: i64,
    unit: Unit,
}

#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"balance": 4_998_500, "reserved": 20_000, "overdraft_limit": 0, "unit": "usd_micros"}))]
pub struct Credits {
    balance: i64,
    /// Set aside by gateway instances for calls in flight.
    reserved: i64,
    overdraft_limit: i64,
    unit: Unit,
}

/// Grant credits (idempotent with `idempotency_key`).
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/organizations/{org_id}/credits/grants", tag = "credits",
    operation_id = "grantCredits",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    request_body = Grant,
    responses(
        (status = 201, description = "The balance after the grant", body = GrantResult),
        GrantErrors,
    )
)]
pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<Grant>,
) -> Result<(StatusCode, Json<GrantResult>), ApiError> {
    caller.require_platform()?;
    let org = super::organization(&state, &org_id).await?;
    // Through webhooks, so that `credits.granted` is queued in the grant's
    // own transaction.
    let outcome = state
        .webhooks
        .grant(
            &org.id,
            body.amount,
            body.idempotency_key.as_deref(),
            body.reason.as_deref(),
        )
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(GrantResult {
            balance: outcome.balance,
            unit: org.billing_mode.unit(),
        }),
    ))
}

/// Read an organization's balance.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/credits", tag = "credits",
    operation_id = "getCredits",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id")),
    responses(
        (status = 200, description = "The balance", body = Credits),
        ReadErrors,
    )
)]
pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Credits>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let credits = state.billing.credits(&org.id).await?;
    Ok(Json(Credits {
        balance: credits.balance,
        reserved: credits.reserved,
        overdraft_limit: credits.overdraft_limit,
        unit: org.billing_mode.unit(),
    }))
}

/// List the credit ledger, newest first.
///
/// Roles: platform admin; org_admin of this organization.
#[utoipa::path(
    get, path = "/api/v1/organizations/{org_id}/credits/transactions", tag = "credits",
    operation_id = "listCreditTransactions",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("org_id" = String, Path, description = "Organization id"), PageQuery),
    responses(
        (status = 200, description = "A page of ledger entries", body = UnitPage<LedgerEntry>),
        ListErrors,
    )
)]
pub async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(page): QueryParams<PageQuery>,
) -> Result<Json<UnitPage<LedgerEntry>>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let limit = super::page_limit(page.limit)?;
    let before = match page.before.as_deref() {
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request("`before` must be a ledger entry id"))?,
        ),
        None => None,
    };
    let entries = state
        .billing
        .transactions(&org.id, limit + 1, before)
        .await?;
    Ok(Json(UnitPage {
        page: Page::cut(entries, limit, |e| e.id.to_string()),
        unit: org.billing_mode.unit(),
    }))
}
