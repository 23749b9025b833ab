//! Organizations: create and read.

use crate::error::ApiError;
use crate::extract::{Admin, JsonBody, PathParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tollgate_core::BillingMode;
use tollgate_tenants::Organization;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateOrganization {
    name: String,
    billing_mode: BillingMode,
}

pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(body): JsonBody<CreateOrganization>,
) -> Result<(StatusCode, Json<Organization>), ApiError> {
    let org = state
        .tenants
        .create_organization(&body.name, body.billing_mode)
        .await?;
    Ok((StatusCode::CREATED, Json(org)))
}

pub async fn get(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(org_id): PathParams<String>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(super::organization(&state, &org_id).await?))
}
