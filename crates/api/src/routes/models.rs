//! `GET /v1/models` and `GET /v1/models/{model}`: OpenAI's model list, the models this organization can
//! use (those whose provider has a key, the platform's or the
//! organization's own active credential, or needs none) and that its
//! `allowed_models` list allows, plus `auto`.

use crate::error::ApiError;
use crate::extract::OrgKey;
use crate::openapi::errors::{ModelListErrors, ReadErrors};
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use std::sync::Arc;
use tollgate_tenants::Principal;
use utoipa::ToSchema;

/// The models this organization can use, in catalog order.
pub(super) async fn usable_models(
    state: &AppState,
    caller: &Principal,
) -> Vec<Arc<tollgate_core::ModelEntry>> {
    // Per provider, not per model: one cache lookup each.
    let mut usable_providers = std::collections::HashMap::new();
    for provider in state.catalog.providers() {
        let own_key = state
            .credentials
            .active_key(&caller.organization_id, &provider.name)
            .await
            .is_ok_and(|key| key.is_some());
        usable_providers.insert(
            provider.name.clone(),
            own_key || provider.api_key.is_some() || provider.keyless,
        );
    }
    state
        .catalog
        .current()
        .models()
        .iter()
        .filter(|model| {
            usable_providers
                .get(model.provider.as_str())
                .copied()
                .unwrap_or(false)
                && caller.may_use_model(&model.id)
        })
        .cloned()
        .collect()
}

#[derive(Serialize, ToSchema)]
pub struct Model {
    id: String,
    /// `model`.
    object: &'static str,
    created: i64,
    owned_by: String,
}

impl Model {
    fn new(id: &str, owned_by: &str) -> Model {
        Model {
            id: id.to_owned(),
            object: "model",
            created: 0,
            owned_by: owned_by.to_owned(),
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(example = json!({"object": "list", "data": [{"id": "auto", "object": "model", "created": 0, "owned_by": "tollgate"}, {"id": "gpt-4o-mini", "object": "model", "created": 0, "owned_by": "openai"}]}))]
pub struct ModelList {
    /// `list`.
    object: &'static str,
    data: Vec<Model>,
}

/// List the models this organization can use, plus `auto` (OpenAI).
#[utoipa::path(
    get, path = "/v1/models", tag = "data plane",
    operation_id = "listModels",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The model list", body = ModelList),
        ModelListErrors,
    )
)]
pub async fn list_models(State(state): State<AppState>, OrgKey(caller): OrgKey) -> Json<ModelList> {
    let mut data = vec![Model::new(tollgate_routing::AUTO, "tollgate")];
    for model in usable_models(&state, &caller).await {
        data.push(Model::new(&model.id, &model.provider));
    }
    Json(ModelList {
        object: "list",
        data,
    })
}

/// One model this organization can use (OpenAI).
#[utoipa::path(
    get, path = "/v1/models/{model}", tag = "data plane",
    operation_id = "getModel",
    security(("api_key" = [])),
    params(("model" = String, Path, description = "Model id")),
    responses(
        (status = 200, description = "The model", body = Model),
        ReadErrors,
    )
)]
pub async fn get_model(
    State(state): State<AppState>,
    OrgKey(caller): OrgKey,
    Path(id): Path<String>,
) -> Result<Json<Model>, ApiError> {
    if id == tollgate_routing::AUTO {
        return Ok(Json(Model::new(&id, "tollgate")));
    }
    usable_models(&state, &caller)
        .await
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| Json(Model::new(&m.id, &m.provider)))
        .ok_or_else(|| ApiError::model_not_found(format!("model `{id}` does not exist")))
}
