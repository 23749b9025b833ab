//! `GET /api/v1/routing/health` (platform admin): each deployment's circuit
//! state, latency, error rate and cooldown, as this replica sees them.

use crate::extract::Admin;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};
use std::time::Instant;

pub async fn routing_health(_: Admin, State(state): State<AppState>) -> Json<Value> {
    let config = state.gateway.health.config();
    let data: Vec<Value> = state
        .gateway
        .health
        .snapshot(Instant::now())
        .into_iter()
        .map(|d| {
            let (provider, model) = d.deployment.split_once('/').unwrap_or(("", &d.deployment));
            json!({
                "deployment": d.deployment,
                "provider": provider,
                "model": model,
                "state": d.state.as_str(),
                "latency_ms": d.latency_ms.map(|ms| (ms * 10.0).round() / 10.0),
                "error_rate": (d.error_rate * 1000.0).round() / 1000.0,
                "requests": d.requests,
                "failures": d.failures,
                "consecutive_failures": d.consecutive_failures,
                "cooldown_remaining_ms": d.cooldown_remaining.map(|c| u64::try_from(c.as_millis()).unwrap_or(u64::MAX)),
            })
        })
        .collect();
    Json(json!({
        "data": data,
        "config": {
            "failure_threshold": config.failure_threshold,
            "cooldown_ms": u64::try_from(config.cooldown.as_millis()).unwrap_or(u64::MAX),
            "max_cooldown_ms": u64::try_from(config.max_cooldown.as_millis()).unwrap_or(u64::MAX),
        }
    }))
}
