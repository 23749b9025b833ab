//! What every relayed call shares: choosing the key that pays, the gateway
//! headers, and settling a finished call reliably.

use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tollgate_billing::{Hold, UsageEntry, UsageStatus, charge_for};
use tollgate_core::money::TokenUsage;
use tollgate_core::{BillingMode, ModelEntry, ProviderEntry};

/// The key that pays the provider for this organization: the platform's for
/// now (BYOK credentials take precedence once they exist).
pub fn paying_key(provider: &ProviderEntry) -> Option<(&SecretString, bool)> {
    provider.api_key.as_ref().map(|k| (k, false))
}

/// Sets the `x-tollgate-*` headers of contract section 3 (the request id is
/// set by the middleware on every response).
pub fn gateway_headers(headers: &mut HeaderMap, model: &ModelEntry, byok: bool, cost: Option<i64>) {
    if let Ok(v) = HeaderValue::from_str(&model.id) {
        headers.insert("x-tollgate-model", v);
    }
    if let Ok(v) = HeaderValue::from_str(&model.provider) {
        headers.insert("x-tollgate-provider", v);
    }
    headers.insert(
        "x-tollgate-byok",
        HeaderValue::from_static(if byok { "true" } else { "false" }),
    );
    if let Some(cost) = cost {
        headers.insert("x-tollgate-cost", HeaderValue::from(cost));
    }
}

/// The record of one finished call, priced in the organization's unit.
pub struct CallRecord<'a> {
    pub request_id: &'a str,
    pub api_key_id: &'a str,
    pub mode: BillingMode,
    pub model: &'a Arc<ModelEntry>,
    pub usage: TokenUsage,
    pub byok: bool,
    pub stream: bool,
    pub status: UsageStatus,
    pub latency: Duration,
}

impl CallRecord<'_> {
    fn entry(&self) -> UsageEntry {
        UsageEntry {
            request_id: self.request_id.to_owned(),
            api_key_id: Some(self.api_key_id.to_owned()),
            model: self.model.id.clone(),
            provider: self.model.provider.clone(),
            usage: self.usage,
            cost: charge_for(self.mode, &self.model.price, &self.usage),
            list_cost_usd_micros: self.model.price.cost(&self.usage).0,
            byok: self.byok,
            stream: self.stream,
            status: self.status,
            latency_ms: i64::try_from(self.latency.as_millis()).unwrap_or(i64::MAX),
        }
    }
}

/// Settles a finished call (billing retries a failing database itself).
/// Returns the amount charged, or `None` if the settlement could not be
/// written (billing logs why).
pub async fn settle(state: &AppState, hold: Hold, call: &CallRecord<'_>) -> Option<i64> {
    let entry = call.entry();
    state.metrics.record_tokens(
        &entry.model,
        entry.usage.prompt_tokens,
        entry.usage.completion_tokens,
    );
    state.billing.settle(hold, entry).await.ok()
}
