//! `GET /v1/models`: OpenAI's model list, the models this organization can
//! use (those whose provider has a key, the platform's or the
//! organization's own active credential, or needs none) and that its
//! `allowed_models` list allows, plus `auto`.

use crate::extract::OrgKey;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn list_models(State(state): State<AppState>, OrgKey(caller): OrgKey) -> Json<Value> {
    let mut data = vec![
        json!({"id": tollgate_routing::AUTO, "object": "model", "created": 0, "owned_by": "tollgate"}),
    ];
    // Per provider, not per model: one cache lookup each.
    let mut usable_providers = std::collections::HashMap::new();
    for provider in state.catalog.providers() {
        let own_key = state
            .credentials
            .active_key(&caller.organization_id, &provider.name)
            .await
            .is_ok_and(|key| key.is_some());
        usable_providers.insert(
            provider.name.as_str(),
            own_key || provider.api_key.is_some() || provider.keyless,
        );
    }
    for model in state.catalog.current().models() {
        let usable = usable_providers
            .get(model.provider.as_str())
            .copied()
            .unwrap_or(false);
        if usable && caller.may_use_model(&model.id) {
            data.push(json!({"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}));
        }
    }
    Json(json!({"object": "list", "data": data}))
}
