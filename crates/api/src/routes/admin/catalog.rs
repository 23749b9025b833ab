//! `GET /api/v1/models`: the catalog with prices, tiers and quality; and,
//! for platform admins, `POST /api/v1/models`, `PATCH` and `DELETE
//! /api/v1/models/{id}`: models added, changed or disabled at runtime
//! (persisted, seen by every replica within a second).

use crate::error::ApiError;
use crate::extract::{Admin, Caller, JsonBody, PathParams};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_core::ModelEntry;
use tollgate_core::catalog_store::{
    CatalogStoreError, LiveCatalog, ManagedModel, ModelPatch, ModelSpec,
};

pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let catalog = state.catalog.current();
    let enabled = catalog.models().iter().map(|m| (m, false));
    let disabled = catalog.disabled_models().iter().map(|m| (m, true));
    let data: Vec<Value> = enabled
        .chain(disabled)
        .map(|(m, disabled)| model_json(&state.catalog, m, disabled))
        .collect();
    Json(json!({ "data": data }))
}

/// Adds a model: the fields of a configuration `models` entry, prices in
/// micro-dollars.
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(spec): JsonBody<ModelSpec>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let model = state.catalog.add(spec).await?;
    Ok((StatusCode::CREATED, Json(managed_json(&state, &model))))
}

/// Changes prices, tier, quality, limits, capability flags or `disabled`.
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
    JsonBody(patch): JsonBody<ModelPatch>,
) -> Result<Json<Value>, ApiError> {
    let model = state.catalog.update(&id, &patch).await?;
    Ok(Json(managed_json(&state, &model)))
}

/// Disables a model: the same as `PATCH` with `{"disabled": true}`.
pub async fn disable(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
) -> Result<Json<Value>, ApiError> {
    let patch = ModelPatch {
        disabled: Some(true),
        ..ModelPatch::default()
    };
    let model = state.catalog.update(&id, &patch).await?;
    Ok(Json(managed_json(&state, &model)))
}

fn managed_json(state: &AppState, model: &ManagedModel) -> Value {
    model_json(&state.catalog, &model.entry, model.disabled)
}

/// One model as `GET /api/v1/models` lists it.
fn model_json(catalog: &LiveCatalog, m: &Arc<ModelEntry>, disabled: bool) -> Value {
    let provider = catalog.provider(&m.provider);
    json!({
        "id": m.id,
        "provider": m.provider,
        "kind": provider.map(|p| p.kind.as_str()),
        "upstream": m.upstream,
        "mode": m.mode,
        "tier": m.tier,
        "quality": m.quality,
        "context_window": m.context_window,
        "max_output_tokens": m.max_output_tokens,
        "price": {
            "input_per_mtok_usd_micros": m.price.input_per_mtok,
            "output_per_mtok_usd_micros": m.price.output_per_mtok,
            "cached_input_per_mtok_usd_micros": m.price.cached_input_per_mtok,
            "cache_write_per_mtok_usd_micros": m.price.cache_write_per_mtok,
            "per_request_usd_micros": m.price.per_request,
        },
        "platform_key": provider.is_some_and(|p| p.api_key.is_some()),
        "supports_tools": m.capabilities.tools,
        "supports_vision": m.capabilities.vision,
        "supports_json": m.capabilities.json,
        "deployments": tollgate_routing::balance::deployments(m)
            .iter()
            .map(|d| json!({
                "provider": d.entry.provider,
                "upstream": d.entry.upstream,
                "weight": d.weight,
                "rpm": d.rpm,
                "tpm": d.tpm,
            }))
            .collect::<Vec<Value>>(),
        "disabled": disabled,
    })
}

impl From<CatalogStoreError> for ApiError {
    fn from(e: CatalogStoreError) -> Self {
        match e {
            CatalogStoreError::Invalid { .. } => ApiError::bad_request(e.to_string()),
            CatalogStoreError::Exists(_) | CatalogStoreError::Conflict(_) => {
                ApiError::conflict(e.to_string())
            }
            CatalogStoreError::NotFound(_) => ApiError::model_not_found(e.to_string()),
            CatalogStoreError::Db(e) => ApiError::from_db(e),
            CatalogStoreError::Corrupt { .. } => ApiError::internal(e),
        }
    }
}
