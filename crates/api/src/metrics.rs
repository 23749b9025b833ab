//! Prometheus metrics for `GET /metrics`, fed by the gateway's observer.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tollgate_gateway::observe::{AttemptInfo, CallInfo, CallObserver, CallSummary};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub model: String,
    pub provider: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub model: String,
    pub kind: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub provider_calls: Family<CallLabels, Counter>,
    pub tokens: Family<TokenLabels, Counter>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tollgate");
        let provider_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "provider_calls",
            "Calls to providers by model, provider and outcome",
            provider_calls.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        registry.register("tokens", "Tokens billed, by model and kind", tokens.clone());
        Metrics {
            registry,
            provider_calls,
            tokens,
        }
    }

    pub fn record_call(&self, model: &str, provider: &str, outcome: &'static str) {
        self.provider_calls
            .get_or_create(&CallLabels {
                model: model.to_owned(),
                provider: provider.to_owned(),
                outcome,
            })
            .inc();
    }

    pub fn record_tokens(&self, model: &str, prompt: i64, completion: i64) {
        for (kind, n) in [("prompt", prompt), ("completion", completion)] {
            self.tokens
                .get_or_create(&TokenLabels {
                    model: model.to_owned(),
                    kind,
                })
                .inc_by(u64::try_from(n).unwrap_or(0));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Counts every provider call and the tokens of every finished call.
pub struct MetricsObserver(pub std::sync::Arc<Metrics>);

impl CallObserver for MetricsObserver {
    fn attempt(&self, _: &CallInfo, attempt: &AttemptInfo<'_>) {
        self.0
            .record_call(attempt.model, attempt.provider, attempt.status.as_str());
    }

    fn finished(&self, _: &CallInfo, summary: &CallSummary<'_>) {
        if let (Some(model), Some(usage)) = (summary.model, summary.usage) {
            self.0
                .record_tokens(model, usage.prompt_tokens, usage.completion_tokens);
        }
    }
}
