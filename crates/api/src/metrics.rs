//! Prometheus metrics for `GET /metrics`, every label set bounded (routes,
//! catalog models and providers, outcomes; organizations only behind
//! `TOLLGATE_METRICS_PER_ORGANIZATION`). Served in the classic text format
//! by default and in OpenMetrics when the scraper's `Accept` asks for it.
//! docs/observability.md lists every family.

use foldhash::HashMap;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::borrow::Borrow;
use std::hash::Hash;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::Duration;
use tollgate_core::outage::Dependency;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The matched route template (`/v1/chat/completions`), or `unmatched`.
    pub route: String,
    pub status: u16,
    /// The error's `code`, empty on success.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

/// Which credit lease: an organization's balance or a key's budget.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LeaseLabels {
    pub lease: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ModelLabels {
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AttemptLabels {
    pub provider: String,
    pub model: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TokenLabels {
    pub provider: String,
    pub model: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgTokenLabels {
    pub organization: String,
    pub provider: String,
    pub model: String,
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OrgModelLabels {
    pub organization: String,
    pub provider: String,
    pub model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// `key` or `organization`.
    pub scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// `tollgate_webhook_delivery_attempts_total{outcome}`, from the webhook
/// worker's own counts.
struct WebhookAttempts(tollgate_webhooks::Webhooks);

impl std::fmt::Debug for WebhookAttempts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WebhookAttempts")
    }
}

impl prometheus_client::collector::Collector for WebhookAttempts {
    fn encode(
        &self,
        mut encoder: prometheus_client::encoding::DescriptorEncoder,
    ) -> Result<(), std::fmt::Error> {
        use prometheus_client::encoding::EncodeMetric;
        use prometheus_client::metrics::counter::ConstCounter;
        let mut family = encoder.encode_descriptor(
            "webhook_delivery_attempts",
            "Outbound webhook delivery attempts by outcome (delivered, retrying, failed for good)",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (outcome, n) in self.0.attempt_outcomes() {
            let labels = OutcomeLabels { outcome };
            ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// Whole calls and HTTP requests: 5 ms to ~82 s.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// The gateway's own share of a call: 0.25 ms to ~4 s.
fn overhead_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: HistogramFamily<RouteLabels>,
    pub overhead: HistogramFamily<OperationLabels>,
    pub time_to_first_token: HistogramFamily<ModelLabels>,
    pub calls_in_flight: Family<OperationLabels, Gauge>,
    pub provider_attempts: Family<AttemptLabels, Counter>,
    pub provider_attempt_duration: HistogramFamily<ModelLabels>,
    pub tokens: Family<TokenLabels, Counter>,
    pub cost: Family<ModelLabels, Counter>,
    /// `Some` with `TOLLGATE_METRICS_PER_ORGANIZATION`.
    org_tokens: Option<Family<OrgTokenLabels, Counter>>,
    org_cost: Option<Family<OrgModelLabels, Counter>>,
    pub rate_limit_refusals: Family<RefusalLabels, Counter>,
    pub settlement: Histogram,
    /// Set at each scrape.
    pub cooldowns_open: Gauge,
    pub settlement_queue: Gauge,
    pub instance_fenced: Gauge,
    pub request_log_dropped: Gauge,
    pub trace_spans_dropped: Gauge,
    pub lease_top_ups: Family<LeaseLabels, Gauge>,
    pub lease_waits: Family<LeaseLabels, Gauge>,
    /// Each deployment's series, by provider, then model.
    deployments: RwLock<HashMap<String, HashMap<String, Arc<DeploymentSeries>>>>,
    /// Each route's series, by route template.
    routes: RwLock<HashMap<String, Arc<RouteSeries>>>,
}

/// A route's series in the HTTP families, resolved at their first use, as
/// a deployment's are.
struct RouteSeries {
    duration: Histogram,
    /// By status and error code.
    requests: RwLock<HashMap<(u16, &'static str), Counter>>,
}

/// A deployment's (a model on a provider) series in the per-model
/// families, each resolved at its first use: a call then updates them
/// without building, hashing and looking up a label set per family (five
/// times a call, on its path).
#[derive(Default)]
struct DeploymentSeries {
    attempts_ok: OnceLock<Counter>,
    attempts_failed: OnceLock<Counter>,
    attempt_duration: OnceLock<Histogram>,
    prompt_tokens: OnceLock<Counter>,
    completion_tokens: OnceLock<Counter>,
    cost: OnceLock<Counter>,
}

impl Metrics {
    pub fn new(per_organization: bool) -> Metrics {
        let mut r = Registry::with_prefix("tollgate");
        let http_requests = Family::<HttpLabels, Counter>::default();
        r.register(
            "http_requests",
            "HTTP requests answered, by route template, status and error code",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(duration_histogram);
        r.register(
            "http_request_duration_seconds",
            "Time from a request's arrival to its response headers (for a stream: its start), by route",
            http_duration.clone(),
        );
        let overhead: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(overhead_histogram);
        r.register(
            "gateway_overhead_seconds",
            "The gateway's own added latency per call: time to the answer minus the time spent waiting on providers",
            overhead.clone(),
        );
        let time_to_first_token: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(duration_histogram);
        r.register(
            "time_to_first_token_seconds",
            "Streamed calls: time from the request's arrival to the provider's first event",
            time_to_first_token.clone(),
        );
        let calls_in_flight = Family::<OperationLabels, Gauge>::default();
        r.register(
            "calls_in_flight",
            "Data-plane calls being served, streams until their end",
            calls_in_flight.clone(),
        );
        let provider_attempts = Family::<AttemptLabels, Counter>::default();
        r.register(
            "provider_attempts",
            "Calls to providers, by provider, model and outcome (ok or error)",
            provider_attempts.clone(),
        );
        let provider_attempt_duration: HistogramFamily<ModelLabels> =
            Family::new_with_constructor(duration_histogram);
        r.register(
            "provider_attempt_duration_seconds",
            "Time a provider took to answer (for a stream: to its first event)",
            provider_attempt_duration.clone(),
        );
        let tokens = Family::<TokenLabels, Counter>::default();
        r.register(
            "tokens",
            "Tokens billed, by provider, model and kind (prompt or completion)",
            tokens.clone(),
        );
        let cost = Family::<ModelLabels, Counter>::default();
        r.register(
            "cost_usd_micros",
            "List cost of calls in USD micro-dollars, by provider and model",
            cost.clone(),
        );
        let (org_tokens, org_cost) = if per_organization {
            let t = Family::<OrgTokenLabels, Counter>::default();
            r.register(
                "organization_tokens",
                "Tokens billed, by organization, provider, model and kind",
                t.clone(),
            );
            let c = Family::<OrgModelLabels, Counter>::default();
            r.register(
                "organization_cost_usd_micros",
                "List cost in USD micro-dollars, by organization, provider and model",
                c.clone(),
            );
            (Some(t), Some(c))
        } else {
            (None, None)
        };
        let rate_limit_refusals = Family::<RefusalLabels, Counter>::default();
        r.register(
            "rate_limit_refusals",
            "Calls refused with 429 by a rate limit, by the limit's scope (key or organization)",
            rate_limit_refusals.clone(),
        );
        let settlement = Histogram::new(exponential_buckets(0.000_5, 2.0, 14));
        r.register(
            "settlement_duration_seconds",
            "Time from a call's end to its usage record and ledger row being committed",
            settlement.clone(),
        );
        let cooldowns_open = Gauge::default();
        r.register(
            "cooldowns_open",
            "Deployments (a model on a provider) skipped for a cooldown after failures",
            cooldowns_open.clone(),
        );
        let settlement_queue = Gauge::default();
        r.register(
            "settlement_queue_depth",
            "Settlements waiting for the billing writer",
            settlement_queue.clone(),
        );
        let instance_fenced = Gauge::default();
        r.register(
            "instance_fenced",
            "1 while this instance is fenced (no heartbeat reached the database for two thirds of the instance timeout, or it is registering again): calls that need credit get 503; else 0",
            instance_fenced.clone(),
        );
        let request_log_dropped = Gauge::default();
        r.register(
            "request_log_dropped",
            "Request-log entries dropped since start because the writer could not keep up",
            request_log_dropped.clone(),
        );
        let trace_spans_dropped = Gauge::default();
        r.register(
            "trace_spans_dropped",
            "Spans lost since start: the export queue was full or the collector did not take them",
            trace_spans_dropped.clone(),
        );
        let lease_top_ups = Family::<LeaseLabels, Gauge>::default();
        r.register(
            "lease_top_ups",
            "Credit lease top-ups (database transactions) since start, by lease",
            lease_top_ups.clone(),
        );
        let lease_waits = Family::<LeaseLabels, Gauge>::default();
        r.register(
            "lease_waits",
            "Calls since start that found their lease short and waited for a top-up, by lease",
            lease_waits.clone(),
        );
        r.register_collector(Box::new(DependencyErrors));
        r.register_collector(Box::new(BeyondHold));
        Metrics {
            registry: r,
            http_requests,
            http_duration,
            overhead,
            time_to_first_token,
            calls_in_flight,
            provider_attempts,
            provider_attempt_duration,
            tokens,
            cost,
            org_tokens,
            org_cost,
            rate_limit_refusals,
            settlement,
            cooldowns_open,
            settlement_queue,
            instance_fenced,
            request_log_dropped,
            trace_spans_dropped,
            lease_top_ups,
            lease_waits,
            deployments: RwLock::default(),
            routes: RwLock::default(),
        }
    }

    /// One HTTP request served: its route template (or `unmatched`), its
    /// status and error code (empty on success), and the time to its
    /// response headers.
    pub fn record_http(&self, route: &str, status: u16, code: &'static str, took: Duration) {
        let series = cached(&self.routes, route, || {
            let duration = self
                .http_duration
                .get_or_create(&RouteLabels {
                    route: route.to_owned(),
                })
                .clone();
            let series = RouteSeries {
                duration,
                requests: RwLock::default(),
            };
            (route.to_owned(), Arc::new(series))
        });
        series.duration.observe(took.as_secs_f64());
        let requests = cached(&series.requests, &(status, code), || {
            let labels = HttpLabels {
                route: route.to_owned(),
                status,
                code: code.to_owned(),
            };
            (
                (status, code),
                self.http_requests.get_or_create(&labels).clone(),
            )
        });
        requests.inc();
    }

    fn deployment(&self, provider: &str, model: &str) -> Arc<DeploymentSeries> {
        let known = self
            .deployments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .and_then(|models| models.get(model))
            .cloned();
        known.unwrap_or_else(|| {
            let mut all = self
                .deployments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(
                all.entry(provider.to_owned())
                    .or_default()
                    .entry(model.to_owned())
                    .or_default(),
            )
        })
    }

    /// Adds the outbound webhooks' delivery attempts, read at each scrape.
    pub fn with_webhooks(mut self, webhooks: tollgate_webhooks::Webhooks) -> Metrics {
        self.registry
            .register_collector(Box::new(WebhookAttempts(webhooks)));
        self
    }

    /// `tollgate_api_key_loads_total`, from the key cache's own count.
    pub fn with_key_cache(mut self, keys: tollgate_tenants::KeyCache) -> Metrics {
        self.registry.register_collector(Box::new(KeyLoads(keys)));
        self
    }

    /// One provider attempt.
    pub fn record_attempt(&self, provider: &str, model: &str, ok: bool, took: Duration) {
        let series = self.deployment(provider, model);
        let (outcome, counter) = if ok {
            ("ok", &series.attempts_ok)
        } else {
            ("error", &series.attempts_failed)
        };
        counter
            .get_or_init(|| {
                self.provider_attempts
                    .get_or_create(&AttemptLabels {
                        provider: provider.to_owned(),
                        model: model.to_owned(),
                        outcome,
                    })
                    .clone()
            })
            .inc();
        series
            .attempt_duration
            .get_or_init(|| {
                self.provider_attempt_duration
                    .get_or_create(&model_labels(provider, model))
                    .clone()
            })
            .observe(took.as_secs_f64());
    }

    /// The tokens and list cost of a settled call.
    pub fn record_usage(
        &self,
        organization: &str,
        provider: &str,
        model: &str,
        prompt: i64,
        completion: i64,
        cost_usd_micros: i64,
    ) {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let series = self.deployment(provider, model);
        for (kind, n, counter) in [
            ("prompt", prompt, &series.prompt_tokens),
            ("completion", completion, &series.completion_tokens),
        ] {
            counter
                .get_or_init(|| {
                    self.tokens
                        .get_or_create(&TokenLabels {
                            provider: provider.to_owned(),
                            model: model.to_owned(),
                            kind,
                        })
                        .clone()
                })
                .inc_by(count(n));
            if let Some(org) = &self.org_tokens {
                org.get_or_create(&OrgTokenLabels {
                    organization: organization.to_owned(),
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                    kind,
                })
                .inc_by(count(n));
            }
        }
        series
            .cost
            .get_or_init(|| {
                self.cost
                    .get_or_create(&model_labels(provider, model))
                    .clone()
            })
            .inc_by(count(cost_usd_micros));
        if let Some(org) = &self.org_cost {
            org.get_or_create(&OrgModelLabels {
                organization: organization.to_owned(),
                provider: provider.to_owned(),
                model: model.to_owned(),
            })
            .inc_by(count(cost_usd_micros));
        }
    }

    /// The registry in the format asked for.
    pub fn render(&self, format: Format) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        match format {
            Format::OpenMetrics => out,
            Format::Classic => classic_text(&out),
        }
    }
}

/// `map[key]`, made by `make` (the key to keep and the value) the first
/// time, under the write lock.
fn cached<Q, K, V>(map: &RwLock<HashMap<K, V>>, key: &Q, make: impl FnOnce() -> (K, V)) -> V
where
    K: Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
    V: Clone,
{
    if let Some(known) = map.read().unwrap_or_else(PoisonError::into_inner).get(key) {
        return known.clone();
    }
    let mut all = map.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(known) = all.get(key) {
        return known.clone();
    }
    let (key, value) = make();
    all.insert(key, value.clone());
    value
}

fn model_labels(provider: &str, model: &str) -> ModelLabels {
    ModelLabels {
        provider: provider.to_owned(),
        model: model.to_owned(),
    }
}

/// The two exposition formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Classic,
    OpenMetrics,
}

impl Format {
    /// OpenMetrics when the `Accept` header prefers it (as Prometheus
    /// asks), else the classic text format that every parser reads.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Classic;
        };
        let mut best = (0.0f32, Format::Classic);
        let mut classic_q = 0.0f32;
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if media == "application/openmetrics-text" && q > best.0 {
                best = (q, Format::OpenMetrics);
            } else if media == "text/plain" || media == "*/*" || media == "text/*" {
                classic_q = classic_q.max(q);
            }
        }
        if best.1 == Format::OpenMetrics && best.0 > 0.0 && best.0 >= classic_q {
            Format::OpenMetrics
        } else {
            Format::Classic
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// OpenMetrics text turned into the classic format: a counter family is
/// named with its `_total` suffix (as its samples are), and the `# UNIT`
/// and `# EOF` lines, unknown to classic parsers, go.
fn classic_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                out.push_str(prefix);
                out.push_str(name);
                if counters.contains(name) {
                    out.push_str("_total");
                }
                out.push(' ');
                out.push_str(tail);
            }
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classic_text_names_counters_with_their_suffix() {
        let om = "# HELP tollgate_x Calls.\n# TYPE tollgate_x counter\ntollgate_x_total{a=\"b\"} 1\n\
                  # HELP tollgate_g In flight.\n# TYPE tollgate_g gauge\ntollgate_g 2\n# EOF\n";
        assert_eq!(
            classic_text(om),
            "# HELP tollgate_x_total Calls.\n# TYPE tollgate_x_total counter\ntollgate_x_total{a=\"b\"} 1\n\
             # HELP tollgate_g In flight.\n# TYPE tollgate_g gauge\ntollgate_g 2\n"
        );
    }

    #[test]
    fn openmetrics_only_when_asked_for() {
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Classic);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("text/plain;version=0.0.4")),
            Format::Classic
        );
    }
}

/// `tollgate_dependency_errors_total{dependency}`: failed calls to Redis or
/// the database, read from the process-wide counters of
/// [`tollgate_core::outage`] at each scrape (the domain crates that count
/// them know nothing of Prometheus).
#[derive(Debug)]
struct DependencyErrors;

impl Collector for DependencyErrors {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "dependency_errors",
            "Failed calls to a dependency (redis, database)",
            None,
            MetricType::Counter,
        )?;
        for dependency in Dependency::ALL {
            let labels = [("dependency", dependency.as_str())];
            ConstCounter::new(dependency.errors()).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

/// `tollgate_api_key_loads_total`: API keys read from the database, the
/// key cache's misses (many requests missing one key together read it once).
struct KeyLoads(tollgate_tenants::KeyCache);

impl std::fmt::Debug for KeyLoads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLoads")
    }
}

impl Collector for KeyLoads {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_counter(
            encoder,
            "api_key_loads",
            "API keys read from the database: the key cache's misses",
            self.0.loads(),
        )
    }
}

/// One counter without labels, read from a count kept elsewhere.
fn encode_counter(
    mut encoder: DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let counter = ConstCounter::new(value);
    let metric = encoder.encode_descriptor(name, help, None, counter.metric_type())?;
    counter.encode(metric)
}

/// `tollgate_settlements_beyond_hold_total`: settlements whose provider
/// usage exceeded the call's hold, read from billing's process-wide counter
/// at each scrape. The excess may take a balance below its overdraft limit
/// (README, "Usage beyond the hold"): alert when it rises.
#[derive(Debug)]
struct BeyondHold;

impl Collector for BeyondHold {
    fn encode(&self, encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_counter(
            encoder,
            "settlements_beyond_hold",
            "Settlements whose provider usage exceeded the call's hold (the excess may take a balance below its overdraft limit)",
            tollgate_billing::settlements_beyond_hold(),
        )
    }
}
