//! `GET /v1/models`: OpenAI's model list, the models this organization can
//! use (those whose provider has a key), plus `auto`.

use crate::extract::OrgKey;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn list_models(State(state): State<AppState>, _caller: OrgKey) -> Json<Value> {
    let mut data = vec![
        json!({"id": tollgate_routing::AUTO, "object": "model", "created": 0, "owned_by": "tollgate"}),
    ];
    for model in state.catalog.models() {
        let usable = state
            .catalog
            .provider(&model.provider)
            .is_some_and(|p| p.api_key.is_some());
        if usable {
            data.push(json!({"id": model.id, "object": "model", "created": 0, "owned_by": model.provider}));
        }
    }
    Json(json!({"object": "list", "data": data}))
}
