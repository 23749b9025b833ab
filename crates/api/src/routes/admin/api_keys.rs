//! Organization API keys: create (the key is shown only then), list, revoke.

use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_core::time;
use tollgate_tenants::{ApiKeyInfo, Budget, KeyScope, NewApiKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    name: String,
    rpm_limit: Option<i64>,
    tpm_limit: Option<i64>,
    max_concurrency: Option<i64>,
    budget: Option<Budget>,
    /// Unix seconds.
    expires_at: Option<i64>,
    /// An organization admin key: it may also manage its own organization's
    /// provider credentials. The same as the `admin` scope (kept for
    /// clients written before scopes).
    #[serde(default)]
    admin: bool,
    /// Any of `chat`, `embeddings`, `admin`; default `["chat", "embeddings"]`.
    scopes: Option<Vec<KeyScope>>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
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
    let mut answer = with_spending(&state, &org_id, std::slice::from_ref(&created.info))
        .await?
        .pop()
        .unwrap_or_default();
    if let Some(map) = answer.as_object_mut() {
        map.insert(
            "key".into(),
            Value::String(created.key.expose_secret().to_owned()),
        );
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_reader(&org_id)?;
    super::organization(&state, &org_id).await?;
    let keys = state.tenants.list_api_keys(&org_id).await?;
    Ok(Json(
        json!({ "data": with_spending(&state, &org_id, &keys).await? }),
    ))
}

pub async fn revoke(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, key_id)): PathParams<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    state.tenants.revoke_api_key(&org_id, &key_id).await?;
    Ok(Json(json!({ "id": key_id, "revoked": true })))
}

/// The keys as JSON, each budget with what the key `spent` in the current
/// period and when that period ends (`resets_at`, unix seconds; `null` for
/// a `total` budget).
async fn with_spending(
    state: &AppState,
    org_id: &str,
    keys: &[ApiKeyInfo],
) -> Result<Vec<Value>, ApiError> {
    let periods: Vec<(&str, tollgate_core::BudgetPeriod)> = keys
        .iter()
        .filter_map(|k| k.budget.map(|b| (k.id.as_str(), b.period)))
        .collect();
    let spending = state.billing.budget_spending(org_id, &periods).await?;
    let now = time::now_millis();
    keys.iter()
        .map(|key| {
            let mut value = serde_json::to_value(key).map_err(ApiError::internal)?;
            if let Some(budget) = key.budget {
                let spent = spending.get(&key.id).map_or(0, |s| s.spent);
                value["budget"] = json!({
                    "amount": budget.amount,
                    "period": budget.period,
                    "spent": spent,
                    "resets_at": budget.period.resets_at(now).map(|ms| ms / 1000),
                });
            }
            Ok(value)
        })
        .collect()
}
