//! `GET /api/v1/models`: the catalog with prices, tiers and quality; and,
//! for platform admins, `POST /api/v1/models`, `PATCH` and `DELETE
//! /api/v1/models/{id}`: models added, changed or disabled at runtime
//! (persisted, seen by every replica within a second).

use super::Page;
use crate::error::ApiError;
use crate::extract::{Admin, Caller, JsonBody, PathParams};
use crate::openapi::errors::{
    CatalogChangeErrors, CatalogDisableErrors, CreateErrors, UnauthorizedOnly,
};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use tollgate_core::catalog_store::{
    CatalogStoreError, LiveCatalog, ManagedModel, ModelPatch, ModelSpec,
};
use tollgate_core::{ModelEntry, ModelMode, ProviderKind};
use utoipa::ToSchema;

/// A model of the catalog, as the management API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"id": "gpt-4o-mini", "provider": "openai", "kind": "openai", "upstream": "gpt-4o-mini", "mode": "chat", "tier": 1, "quality": 70, "context_window": 128_000, "max_output_tokens": 16_384, "price": {"input_per_mtok_usd_micros": 150_000, "output_per_mtok_usd_micros": 600_000, "cached_input_per_mtok_usd_micros": 75_000, "cache_write_per_mtok_usd_micros": 150_000, "per_request_usd_micros": 0}, "platform_key": true, "supports_tools": true, "supports_vision": true, "supports_json": true, "deployments": [{"provider": "openai", "upstream": "gpt-4o-mini", "weight": 1, "rpm": null, "tpm": null}], "disabled": false}))]
pub struct CatalogModel {
    id: String,
    provider: String,
    /// The provider's API (`null` when the provider is not configured).
    kind: Option<ProviderKind>,
    upstream: String,
    mode: ModelMode,
    /// 0 (free) .. 5 (premium).
    tier: u8,
    /// 0..100, higher is better.
    quality: u8,
    context_window: i64,
    max_output_tokens: i64,
    price: CatalogPrice,
    /// Whether the platform holds a key for the provider.
    platform_key: bool,
    /// Serves requests with `tools` / `functions`.
    supports_tools: bool,
    /// Serves requests with image content parts.
    supports_vision: bool,
    /// Serves JSON mode (`response_format` `json_object` / `json_schema`).
    supports_json: bool,
    /// Where the model is served; `provider` and `upstream` above are the
    /// first of them. See docs/routing.md, section 6.
    deployments: Vec<CatalogDeployment>,
    /// Disabled at runtime (`DELETE /api/v1/models/{id}`): not routable,
    /// left out of `GET /v1/models`; listed after the enabled models.
    disabled: bool,
}

/// List prices in micro-dollars.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogPrice {
    input_per_mtok_usd_micros: i64,
    output_per_mtok_usd_micros: i64,
    cached_input_per_mtok_usd_micros: i64,
    /// Prompt tokens written to the provider's prompt cache.
    cache_write_per_mtok_usd_micros: i64,
    per_request_usd_micros: i64,
}

/// One deployment of a catalog model.
#[derive(Debug, Serialize, ToSchema)]
pub struct CatalogDeployment {
    provider: String,
    upstream: String,
    /// Relative share of the traffic.
    weight: u32,
    /// Requests per minute it takes at most (`null`: no cap).
    rpm: Option<i64>,
    /// Tokens per minute it takes at most (`null`: no cap).
    tpm: Option<i64>,
}

/// The catalog with prices, tiers and quality.
///
/// Roles: any management caller.
#[utoipa::path(
    get, path = "/api/v1/models", tag = "catalog",
    operation_id = "listCatalogModels",
    security(("admin_token" = []), ("user_jwt" = [])),
    responses(
        (status = 200, description = "Every catalog model, those disabled at runtime last", body = Page<CatalogModel>),
        UnauthorizedOnly,
    )
)]
pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Page<CatalogModel>> {
    let catalog = state.catalog.current();
    let enabled = catalog.models().iter().map(|m| (m, false));
    let disabled = catalog.disabled_models().iter().map(|m| (m, true));
    let data = enabled
        .chain(disabled)
        .map(|(m, disabled)| CatalogModel::of(&state.catalog, m, disabled))
        .collect();
    Json(Page::all(data))
}

/// Add a model to the catalog at runtime.
///
/// Persisted, and served by every replica within a second. Validation
/// errors are 400 naming the field (an unknown provider, a number out of
/// range); an id the catalog already has, even disabled, is 409.
///
/// Roles: platform admin.
#[utoipa::path(
    post, path = "/api/v1/models", tag = "catalog",
    operation_id = "createCatalogModel",
    security(("admin_token" = []), ("user_jwt" = [])),
    request_body = ModelSpec,
    responses(
        (status = 201, description = "The new model", body = CatalogModel),
        CreateErrors,
    )
)]
pub async fn create(
    State(state): State<AppState>,
    _admin: Admin,
    JsonBody(spec): JsonBody<ModelSpec>,
) -> Result<(StatusCode, Json<CatalogModel>), ApiError> {
    let model = state.catalog.add(spec).await?;
    Ok((
        StatusCode::CREATED,
        Json(CatalogModel::managed(&state, &model)),
    ))
}

/// Change a catalog model: prices, tier, quality, limits, capability
/// flags, or `disabled`.
///
/// Works on configured models and on models added at runtime, enabled or
/// disabled. The next call is routed and billed with the change, on every
/// replica within a second.
///
/// Roles: platform admin.
#[utoipa::path(
    patch, path = "/api/v1/models/{id}", tag = "catalog",
    operation_id = "updateCatalogModel",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("id" = String, Path, description = "Catalog model id")),
    request_body = ModelPatch,
    responses(
        (status = 200, description = "The model as changed", body = CatalogModel),
        CatalogChangeErrors,
    )
)]
pub async fn update(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
    JsonBody(patch): JsonBody<ModelPatch>,
) -> Result<Json<CatalogModel>, ApiError> {
    let model = state.catalog.update(&id, &patch).await?;
    Ok(Json(CatalogModel::managed(&state, &model)))
}

/// Disable a catalog model (the same as `PATCH` with `{"disabled": true}`).
///
/// Calls naming it answer 404 `model_not_found`, `GET /v1/models` leaves it
/// out, and power levels skip it. `PATCH` with `{"disabled": false}` brings
/// it back.
///
/// Roles: platform admin.
#[utoipa::path(
    delete, path = "/api/v1/models/{id}", tag = "catalog",
    operation_id = "disableCatalogModel",
    security(("admin_token" = []), ("user_jwt" = [])),
    params(("id" = String, Path, description = "Catalog model id")),
    responses(
        (status = 200, description = "The model, now disabled", body = CatalogModel),
        CatalogDisableErrors,
    )
)]
pub async fn disable(
    State(state): State<AppState>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
) -> Result<Json<CatalogModel>, ApiError> {
    let patch = ModelPatch {
        disabled: Some(true),
        ..ModelPatch::default()
    };
    let model = state.catalog.update(&id, &patch).await?;
    Ok(Json(CatalogModel::managed(&state, &model)))
}

impl CatalogModel {
    fn managed(state: &AppState, model: &ManagedModel) -> Self {
        Self::of(&state.catalog, &model.entry, model.disabled)
    }

    fn of(catalog: &LiveCatalog, m: &Arc<ModelEntry>, disabled: bool) -> Self {
        let provider = catalog.provider(&m.provider);
        CatalogModel {
            id: m.id.clone(),
            provider: m.provider.clone(),
            kind: provider.map(|p| p.kind),
            upstream: m.upstream.clone(),
            mode: m.mode,
            tier: m.tier,
            quality: m.quality,
            context_window: m.context_window,
            max_output_tokens: m.max_output_tokens,
            price: CatalogPrice {
                input_per_mtok_usd_micros: m.price.input_per_mtok.0,
                output_per_mtok_usd_micros: m.price.output_per_mtok.0,
                cached_input_per_mtok_usd_micros: m.price.cached_input_per_mtok.0,
                cache_write_per_mtok_usd_micros: m.price.cache_write_per_mtok.0,
                per_request_usd_micros: m.price.per_request.0,
            },
            platform_key: provider.is_some_and(|p| p.api_key.is_some()),
            supports_tools: m.capabilities.tools,
            supports_vision: m.capabilities.vision,
            supports_json: m.capabilities.json,
            deployments: tollgate_routing::balance::deployments(m)
                .iter()
                .map(|d| CatalogDeployment {
                    provider: d.entry.provider.clone(),
                    upstream: d.entry.upstream.clone(),
                    weight: d.weight,
                    rpm: d.rpm,
                    tpm: d.tpm,
                })
                .collect(),
            disabled,
        }
    }
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
