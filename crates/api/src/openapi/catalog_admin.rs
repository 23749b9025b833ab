//! The document of catalog administration (`POST /api/v1/models`, `PATCH`
//! and `DELETE /api/v1/models/{id}`): their `#[utoipa::path]` stand-ins and
//! request schemas. Answers are [`CatalogModel`]s, as `GET /api/v1/models`
//! lists them.

#![allow(dead_code, clippy::unused_async)]

use super::errors::{CatalogChangeErrors, CatalogDisableErrors, CreateErrors};
use super::schemas::CatalogModel;
use serde::Serialize;
use utoipa::ToSchema;

// ----------------------------------------------------------------- schemas

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CatalogModelMode {
    Chat,
    Embedding,
}

/// Prices in micro-dollars (1 USD = 1 000 000), as `GET /api/v1/models`
/// shows them: per million tokens, and per request. Each is 0 to 10^12.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"input_per_mtok_usd_micros": 590_000, "output_per_mtok_usd_micros": 790_000, "cached_input_per_mtok_usd_micros": null, "per_request_usd_micros": 0}))]
pub struct CatalogPriceInput {
    /// Default 0.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub input_per_mtok_usd_micros: Option<i64>,
    /// Default 0.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub output_per_mtok_usd_micros: Option<i64>,
    /// `null` or left out: the input price.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cached_input_per_mtok_usd_micros: Option<i64>,
    /// Prompt tokens written to the provider's prompt cache; `null` or
    /// left out: the input price.
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cache_write_per_mtok_usd_micros: Option<i64>,
    /// Default 0.
    #[schema(nullable = false, minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub per_request_usd_micros: Option<i64>,
}

/// One place serving the model, as under `deployments` in the configuration.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"provider": "groq", "upstream": "llama-3.3-70b-versatile", "weight": 1, "rpm": 1000, "tpm": null}))]
pub struct CatalogDeploymentInput {
    /// A provider of the configuration (providers cannot be added at runtime).
    pub provider: String,
    /// Default: the model's `upstream`, else its id.
    pub upstream: Option<String>,
    /// Relative share of the traffic, 1 to 1 000 000; default 1.
    #[schema(nullable = false, minimum = 1, maximum = 1_000_000)]
    pub weight: Option<i64>,
    /// Requests per minute it takes at most.
    #[schema(minimum = 1)]
    pub rpm: Option<i64>,
    /// Tokens per minute it takes at most.
    #[schema(minimum = 1)]
    pub tpm: Option<i64>,
}

/// A model to add: the fields of a configuration `models` entry (see the
/// README), with prices in micro-dollars. Give `provider` or
/// `deployments`, not both.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"id": "llama-3.3-70b", "provider": "groq", "upstream": "llama-3.3-70b-versatile", "tier": 2, "quality": 80, "context_window": 131_072, "max_output_tokens": 32_768, "price": {"input_per_mtok_usd_micros": 590_000, "output_per_mtok_usd_micros": 790_000}, "supports_vision": false}))]
pub struct CreateCatalogModel {
    /// The name clients send: no spaces, at most 256 characters, not
    /// `auto`. An id the catalog has (even disabled) is a 409.
    pub id: String,
    /// The one provider serving it (a provider of the configuration).
    pub provider: Option<String>,
    /// The name sent to the provider; default: `id`.
    pub upstream: Option<String>,
    /// Several places serving it, instead of `provider`.
    pub deployments: Option<Vec<CatalogDeploymentInput>>,
    /// 0 (free) .. 5 (premium); default 1.
    #[schema(nullable = false, minimum = 0, maximum = 5)]
    pub tier: Option<i64>,
    /// 0..100, higher is better; default 50.
    #[schema(nullable = false, minimum = 0, maximum = 100)]
    pub quality: Option<i64>,
    /// Default 128 000.
    #[schema(nullable = false, minimum = 1)]
    pub context_window: Option<i64>,
    /// Default 4 096.
    #[schema(nullable = false, minimum = 1)]
    pub max_output_tokens: Option<i64>,
    /// Default: free.
    #[schema(nullable = false)]
    pub price: Option<CatalogPriceInput>,
    /// Default `chat`.
    #[schema(nullable = false)]
    pub mode: Option<CatalogModelMode>,
    /// Default true.
    pub supports_tools: Option<bool>,
    /// Default true.
    pub supports_vision: Option<bool>,
    /// Default true.
    pub supports_json: Option<bool>,
}

/// The prices to change, in micro-dollars (0 to 10^12); the others stay.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"input_per_mtok_usd_micros": 100_000, "output_per_mtok_usd_micros": 400_000}))]
pub struct CatalogPricePatch {
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub input_per_mtok_usd_micros: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub output_per_mtok_usd_micros: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cached_input_per_mtok_usd_micros: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub cache_write_per_mtok_usd_micros: Option<i64>,
    #[schema(minimum = 0, maximum = 1_000_000_000_000_i64)]
    pub per_request_usd_micros: Option<i64>,
}

/// Fields left out (or `null`) are unchanged.
#[derive(Serialize, ToSchema)]
#[schema(example = json!({"price": {"input_per_mtok_usd_micros": 100_000, "output_per_mtok_usd_micros": 400_000}, "tier": 1, "quality": 72, "supports_vision": false, "disabled": false}))]
pub struct UpdateCatalogModel {
    #[schema(minimum = 0, maximum = 5)]
    pub tier: Option<i64>,
    #[schema(minimum = 0, maximum = 100)]
    pub quality: Option<i64>,
    #[schema(minimum = 1)]
    pub context_window: Option<i64>,
    #[schema(minimum = 1)]
    pub max_output_tokens: Option<i64>,
    pub price: Option<CatalogPricePatch>,
    pub supports_tools: Option<bool>,
    pub supports_vision: Option<bool>,
    pub supports_json: Option<bool>,
    /// `true` disables the model (as `DELETE` does); `false` enables it again.
    pub disabled: Option<bool>,
}

// ------------------------------------------------------------------- paths

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
    request_body = CreateCatalogModel,
    responses(
        (status = 201, description = "The new model", body = CatalogModel),
        CreateErrors,
    )
)]
pub async fn create_catalog_model() {}

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
    request_body = UpdateCatalogModel,
    responses(
        (status = 200, description = "The model as changed", body = CatalogModel),
        CatalogChangeErrors,
    )
)]
pub async fn update_catalog_model() {}

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
pub async fn disable_catalog_model() {}
