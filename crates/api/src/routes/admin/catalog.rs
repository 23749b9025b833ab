//! `GET /api/v1/models`: the catalog with prices, tiers and quality.

use crate::extract::Caller;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

pub async fn list(State(state): State<AppState>, _caller: Caller) -> Json<Value> {
    let data: Vec<Value> = state
        .catalog
        .models()
        .iter()
        .map(|m| {
            let provider = state.catalog.provider(&m.provider);
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
            })
        })
        .collect();
    Json(json!({ "data": data }))
}
