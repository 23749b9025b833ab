//! Outbound webhook subscriptions of an organization: create (the signing
//! secret is shown only then), list, read, delete, and the deliveries.

use super::Page;
use crate::error::ApiError;
use crate::extract::{Caller, JsonBody, PathParams, QueryParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use tollgate_webhooks::{NewSubscription, Subscription};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateWebhook {
    url: String,
    events: Vec<String>,
    credits_low_threshold: Option<i64>,
}

pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
    JsonBody(body): JsonBody<CreateWebhook>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let (subscription, secret) = state
        .webhooks
        .create_subscription(
            &org.id,
            &NewSubscription {
                url: &body.url,
                events: &body.events,
                credits_low_threshold: body.credits_low_threshold,
            },
        )
        .await?;
    tracing::info!(organization_id = %org.id, webhook_id = %subscription.id, "webhook subscription created");
    let mut answer = json!(subscription);
    answer["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(answer)))
}

pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let data = state.webhooks.subscriptions(&org.id).await?;
    Ok(Json(json!({ "data": data, "has_more": false })))
}

pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
) -> Result<Json<Subscription>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    Ok(Json(state.webhooks.subscription(&org.id, &id).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
) -> Result<StatusCode, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    state.webhooks.delete_subscription(&org.id, &id).await?;
    tracing::info!(organization_id = %org.id, webhook_id = %id, "webhook subscription deleted");
    Ok(StatusCode::NO_CONTENT)
}

pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    PathParams((org_id, id)): PathParams<(String, String)>,
    QueryParams(page): QueryParams<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_org_admin(&org_id)?;
    let org = super::organization(&state, &org_id).await?;
    let limit = page.limit()?;
    let mut data = state
        .webhooks
        .deliveries(&org.id, &id, limit + 1, page.before.as_deref())
        .await?;
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let has_more = data.len() > limit;
    data.truncate(limit);
    Ok(Json(json!({ "data": data, "has_more": has_more })))
}
