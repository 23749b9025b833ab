//! `GET /api/v1/routing/health` (platform admin): each deployment's circuit
//! state, latency, error rate and cooldown, as this replica sees them.

use crate::extract::Admin;
use crate::openapi::errors::ReadErrors;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::time::{Duration, Instant};
use tollgate_routing::health::CircuitState;
use utoipa::ToSchema;

/// Every deployment's health, and the thresholds that govern it.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingHealth {
    data: Vec<DeploymentHealth>,
    config: HealthConfig,
}

/// One deployment (provider and model) as this replica sees it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({"deployment": "openai/gpt-4o-mini", "provider": "openai", "model": "gpt-4o-mini", "state": "closed", "latency_ms": 412.5, "error_rate": 0.0, "requests": 120, "failures": 0, "consecutive_failures": 0, "cooldown_remaining_ms": null}))]
pub struct DeploymentHealth {
    deployment: String,
    provider: String,
    model: String,
    /// The circuit's state.
    #[schema(schema_with = circuit_state_schema)]
    state: &'static str,
    latency_ms: Option<f64>,
    error_rate: f64,
    requests: u64,
    failures: u64,
    consecutive_failures: u32,
    cooldown_remaining_ms: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthConfig {
    failure_threshold: u32,
    cooldown_ms: u64,
    max_cooldown_ms: u64,
}

fn circuit_state_schema() -> utoipa::openapi::schema::Object {
    let states = [
        CircuitState::Closed,
        CircuitState::Open,
        CircuitState::HalfOpen,
    ];
    tollgate_core::openapi::one_of(&states.map(CircuitState::as_str))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Each deployment's circuit state, latency, error rate and cooldown, as
/// this replica sees them.
///
/// Roles: platform admin.
#[utoipa::path(
    get, path = "/api/v1/routing/health", tag = "catalog",
    operation_id = "getRoutingHealth",
    security(("admin_token" = []), ("user_jwt" = [])),
    responses(
        (status = 200, description = "Every deployment's health", body = RoutingHealth),
        ReadErrors,
    )
)]
pub async fn routing_health(_: Admin, State(state): State<AppState>) -> Json<RoutingHealth> {
    let config = state.gateway.health.config();
    let data = state
        .gateway
        .health
        .snapshot(Instant::now())
        .into_iter()
        .map(|d| {
            let (provider, model) = d.deployment.split_once('/').unwrap_or(("", &d.deployment));
            DeploymentHealth {
                provider: provider.to_owned(),
                model: model.to_owned(),
                state: d.state.as_str(),
                latency_ms: d.latency_ms.map(|ms| (ms * 10.0).round() / 10.0),
                error_rate: (d.error_rate * 1000.0).round() / 1000.0,
                requests: d.requests,
                failures: d.failures,
                consecutive_failures: d.consecutive_failures,
                cooldown_remaining_ms: d.cooldown_remaining.map(millis),
                deployment: d.deployment,
            }
        })
        .collect();
    Json(RoutingHealth {
        data,
        config: HealthConfig {
            failure_threshold: config.failure_threshold,
            cooldown_ms: millis(config.cooldown),
            max_cooldown_ms: millis(config.max_cooldown),
        },
    })
}
