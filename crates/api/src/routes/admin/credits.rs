//! Credits: balance, grants (idempotent) and the ledger.

use super::Page;
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    amount: i64,
    idempotency_key: Option<String>,
    reason: Option<String>,
}

pub async fn grant(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<Grant>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
        Json(json!({ "balance": outcome.balance, "unit": org.billing_mode.unit() })),
    ))
}

pub async fn balance(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let credits = state.billing.credits(&org.id).await?;
    Ok(Json(json!({
        "balance": credits.balance,
        "reserved": credits.reserved,
        "overdraft_limit": credits.overdraft_limit,
        "unit": org.billing_mode.unit(),
    })))
}

pub async fn transactions(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let limit = page.limit()?;
    let before = match page.before.as_deref() {
        Some(s) => Some(
            s.parse::<i64>()
                .map_err(|_| ApiError::bad_request("`before` must be a ledger entry id"))?,
        ),
        None => None,
    };
    let mut entries = state
        .billing
        .transactions(&org.id, limit + 1, before)
        .await?;
    let has_more = entries.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    entries.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(
        json!({ "data": entries, "has_more": has_more, "unit": org.billing_mode.unit() }),
    ))
}
