//! Usage records of an organization, newest first.

use super::Page;
use crate::error::ApiError;
use crate::extract::{Caller, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_reader(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let limit = page.limit()?;
    let mut records = state
        .billing
        .usage(&org.id, limit + 1, page.before.as_deref())
        .await?;
    let has_more = records.len() > usize::try_from(limit).unwrap_or(usize::MAX);
    records.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
    Ok(Json(
        json!({ "data": records, "has_more": has_more, "unit": org.billing_mode.unit() }),
    ))
}
