//! `GET /v1/models` and `GET /v1/models/{model}`: OpenAI's model list, the models this organization can
//! use (those whose provider has a key, the platform's or the
//! organization's own active credential, or needs none) and that its
//! `allowed_models` list allows, plus `auto`.

use crate::error::ApiError;
use crate::extract::OrgKey;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use serde_json::{Value, json};
use std::sync::Arc;
use tollgate_tenants::Principal;

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

fn model_json(id: &str, owned_by: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": owned_by})
}

pub async fn list_models(State(state): State<AppState>, OrgKey(caller): OrgKey) -> Json<Value> {
    let mut data = vec![model_json(tollgate_routing::AUTO, "tollgate")];
    for model in usable_models(&state, &caller).await {
        data.push(model_json(&model.id, &model.provider));
    }
    Json(json!({"object": "list", "data": data}))
}

/// `GET /v1/models/{model}`: one model this organization can use.
pub async fn get_model(
    State(state): State<AppState>,
    OrgKey(caller): OrgKey,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if id == tollgate_routing::AUTO {
        return Ok(Json(model_json(&id, "tollgate")));
    }
    usable_models(&state, &caller)
        .await
        .into_iter()
        .find(|m| m.id == id)
        .map(|m| Json(model_json(&m.id, &m.provider)))
        .ok_or_else(|| ApiError::model_not_found(format!("model `{id}` does not exist")))
}
