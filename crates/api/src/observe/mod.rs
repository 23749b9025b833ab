//! What a data-plane call leaves behind for operators and organizations:
//! its OpenTelemetry spans (one server span, a client span per provider
//! attempt, GenAI semantic-convention attributes), its metrics, its JSON
//! log line and its request-log row. [`Observer`] is the gateway's
//! [`CallObserver`]: it only counts and hands off to queues, so that
//! nothing here waits on a collector or the database.

pub mod settings;

use crate::metrics::{Metrics, ModelLabels, OperationLabels};
use crate::state::AppState;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tollgate_core::ErrorCode;
use tollgate_gateway::CallRequest;
use tollgate_gateway::observe::{AttemptInfo, AttemptStatus, CallInfo, CallObserver, CallSummary};
use tollgate_observe::request_log::{Attempt, LoggedCall, capped_body};
use tollgate_observe::trace::{
    AttrValue, SpanData, SpanKind, TraceContext, parse_traceparent, started_ago, unix_nanos,
};
use tollgate_observe::{RequestLog, Tracer};

/// Calls whose attempts are being gathered, at most: a bound on memory
/// should a call's end never be reported.
const MAX_PENDING: usize = 100_000;

/// The attempts of a call not finished yet.
#[derive(Default)]
struct Pending {
    attempts: Vec<Attempt>,
    provider_time: Duration,
}

/// The gateway's observer: metrics, spans, call log lines and the request log.
pub struct Observer {
    pub tracer: Tracer,
    pub request_log: RequestLog,
    /// `TOLLGATE_LOG_FORMAT=json`: one log line per call.
    pub call_lines: bool,
    pub metrics: Arc<Metrics>,
    pending: Mutex<HashMap<Arc<str>, Pending>>,
}

impl Observer {
    pub fn new(
        tracer: Tracer,
        request_log: RequestLog,
        call_lines: bool,
        metrics: Arc<Metrics>,
    ) -> Observer {
        Observer {
            tracer,
            request_log,
            call_lines,
            metrics,
            pending: Mutex::default(),
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Arc<str>, Pending>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn recorded<'a>(&self, trace: Option<&'a TraceContext>) -> Option<&'a TraceContext> {
        trace.filter(|t| self.tracer.records(Some(t)))
    }
}

/// Prepares a call for observation: its trace continues the client's
/// `traceparent`, and its body is kept when the organization logs bodies
/// (or spans carry content). Counts it in flight until its end.
pub fn prepare(
    state: &AppState,
    call: &mut CallRequest,
    headers: &axum::http::HeaderMap,
    body: &Bytes,
) {
    let observer = &state.observer;
    call.trace = observer.tracer.begin(traceparent_header(headers));
    let keep = call.principal.log_bodies
        || (observer.tracer.capture_content() && call.trace.is_some_and(|t| t.sampled));
    if keep {
        call.body = Some(body.clone());
    }
    observer
        .metrics
        .calls_in_flight
        .get_or_create(&OperationLabels {
            operation: call.operation.kind().as_str(),
        })
        .inc();
}

/// The client's `traceparent` header, as sent (the tracer parses it).
fn traceparent_header(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers.get("traceparent").and_then(|v| v.to_str().ok())
}

/// The client's `traceparent` when well-formed, for a provider request
/// the gateway records no span of (a token count): passed on unchanged.
pub fn client_traceparent(headers: &axum::http::HeaderMap) -> Option<&str> {
    traceparent_header(headers).filter(|v| parse_traceparent(v).is_some())
}

impl CallObserver for Observer {
    fn attempt(&self, call: &CallInfo, a: &AttemptInfo<'_>) {
        let ok = a.status == AttemptStatus::Ok;
        self.metrics
            .record_attempt(a.provider, a.model, ok, a.duration);
        let error = a.error_code.map(|code| match a.provider_status {
            Some(status) => format!("{} (provider status {status})", code.as_str()),
            None => code.as_str().to_owned(),
        });
        let started = started_ago(a.duration);
        let number = {
            let mut pending = self.pending();
            if pending.len() >= MAX_PENDING && !pending.contains_key(&call.request_id) {
                pending.clear();
            }
            let entry = pending.entry(call.request_id.clone()).or_default();
            entry.provider_time += a.duration;
            let number = i64::try_from(entry.attempts.len() + 1).unwrap_or(i64::MAX);
            entry.attempts.push(Attempt {
                attempt: number,
                provider: a.provider.to_owned(),
                model: a.model.to_owned(),
                status: a.status.as_str().to_owned(),
                http_status: a.provider_status.map(i64::from),
                error: error.clone(),
                byok: a.byok,
                duration_ms: millis(a.duration),
                started_at_ms: i64::try_from(unix_nanos(started) / 1_000_000).unwrap_or(0),
            });
            number
        };
        let (Some(trace), Some(span_id)) = (self.recorded(call.trace.as_ref()), a.span_id) else {
            return;
        };
        let mut attributes = vec![
            (
                "gen_ai.operation.name",
                AttrValue::from(call.operation.as_str()),
            ),
            ("gen_ai.provider.name", AttrValue::from(a.provider)),
            ("gen_ai.request.model", AttrValue::from(a.deployment)),
            ("tollgate.model", AttrValue::from(a.model)),
            ("tollgate.attempt", AttrValue::Int(number)),
            ("tollgate.byok", AttrValue::Bool(a.byok)),
        ];
        if let Some(status) = a.provider_status {
            attributes.push((
                "http.response.status_code",
                AttrValue::Int(i64::from(status)),
            ));
        }
        if let Some(code) = a.error_code {
            let kind = a
                .provider_status
                .map_or_else(|| code.as_str().to_owned(), |s| s.to_string());
            attributes.push(("error.type", AttrValue::Str(kind)));
        }
        let end = SystemTime::now();
        self.tracer.export(SpanData {
            trace_id: trace.trace_id,
            span_id,
            parent_span_id: Some(trace.span_id),
            name: format!("{} {}", call.operation.as_str(), a.deployment),
            kind: SpanKind::Client,
            start_unix_nanos: unix_nanos(started),
            end_unix_nanos: unix_nanos(end),
            attributes,
            error,
        });
    }

    fn finished(&self, call: &CallInfo, s: &CallSummary<'_>) {
        let operation = call.operation.as_str();
        let pending = self.pending().remove(&call.request_id).unwrap_or_default();
        let metrics = &self.metrics;
        metrics
            .calls_in_flight
            .get_or_create(&OperationLabels { operation })
            .dec();
        // The gateway's own share: to the answer (or a stream's first
        // event), less the time providers took.
        let ready = s.time_to_first_byte.unwrap_or(s.duration);
        let overhead = (s.attempts > 0).then(|| ready.saturating_sub(pending.provider_time));
        if let Some(overhead) = overhead {
            metrics
                .overhead
                .get_or_create(&OperationLabels { operation })
                .observe(overhead.as_secs_f64());
        }
        if let (Some(ttfb), Some(model), Some(provider)) =
            (s.time_to_first_byte, s.model, s.provider)
        {
            metrics
                .time_to_first_token
                .get_or_create(&ModelLabels {
                    provider: provider.to_owned(),
                    model: model.to_owned(),
                })
                .observe(ttfb.as_secs_f64());
        }
        if s.error_code == Some(ErrorCode::RateLimitExceeded) && s.attempts == 0 {
            // The gateway's refusal names whose limit it was.
            let scope = if s.error_message.is_some_and(|m| m.contains("organization")) {
                "organization"
            } else {
                "key"
            };
            metrics
                .rate_limit_refusals
                .get_or_create(&crate::metrics::RefusalLabels { scope })
                .inc();
        }
        if let Some(settlement) = s.settlement {
            metrics.settlement.observe(settlement.as_secs_f64());
        }
        let usage = s.usage.unwrap_or_default();
        let principal = &call.principal;
        if let (Some(model), Some(provider), Some(u)) = (s.model, s.provider, s.usage) {
            metrics.record_usage(
                &principal.organization_id,
                provider,
                model,
                u.prompt_tokens,
                u.completion_tokens,
                s.list_cost_usd_micros.unwrap_or(0),
            );
        }
        let status = s.error_code.map_or(200, ErrorCode::status);
        if let Some(trace) = self.recorded(call.trace.as_ref()) {
            self.export_call_span(trace, call, s, status);
        }
        if self.call_lines {
            tracing::info!(
                target: "tollgate::call",
                request_id = %call.request_id,
                organization_id = %principal.organization_id,
                api_key_id = %principal.key_id,
                operation,
                requested_model = %call.requested_model,
                model = s.model,
                provider = s.provider,
                status,
                outcome = s.status.as_str(),
                error_code = s.error_code.map(ErrorCode::as_str),
                stream = call.stream,
                byok = s.byok,
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                cost = s.cost,
                attempts = s.attempts,
                duration_ms = millis(s.duration),
                overhead_ms = overhead.map(millis),
                time_to_first_token_ms = s.time_to_first_byte.map(millis),
                trace_id = call.trace.map(|t| t.trace_id_hex()),
                "call"
            );
        }
        if !self.request_log.enabled() {
            return;
        }
        let bodies = principal.log_bodies;
        self.request_log.record(LoggedCall {
            request_id: call.request_id.to_string(),
            organization_id: principal.organization_id.clone(),
            api_key_id: Some(principal.key_id.clone()),
            operation: operation.to_owned(),
            requested_model: Some(call.requested_model.clone()),
            model: s.model.map(str::to_owned),
            provider: s.provider.map(str::to_owned),
            status,
            error_code: s.error_code.map(|c| c.as_str().to_owned()),
            error_message: s.error_message.map(str::to_owned),
            stream: call.stream,
            byok: s.byok,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost: s.cost.unwrap_or(0),
            duration_ms: millis(s.duration),
            time_to_first_token_ms: s.time_to_first_byte.map(millis),
            overhead_ms: overhead.map(millis),
            trace_id: call.trace.filter(|t| t.sampled).map(|t| t.trace_id_hex()),
            request_body: bodies
                .then(|| call.body.as_deref().map(capped_body))
                .flatten(),
            response_body: bodies.then(|| s.answer.map(|b| capped_body(b))).flatten(),
            created_at_ms: i64::try_from(
                unix_nanos(started_ago(call.started.elapsed())) / 1_000_000,
            )
            .unwrap_or(0),
            attempts: pending.attempts,
        });
    }
}

impl Observer {
    fn export_call_span(
        &self,
        trace: &TraceContext,
        call: &CallInfo,
        s: &CallSummary<'_>,
        status: u16,
    ) {
        let principal = &call.principal;
        let mut attributes = vec![
            (
                "gen_ai.operation.name",
                AttrValue::from(call.operation.as_str()),
            ),
            (
                "gen_ai.request.model",
                AttrValue::from(call.requested_model.as_str()),
            ),
            ("http.request.method", AttrValue::from("POST")),
            (
                "http.response.status_code",
                AttrValue::Int(i64::from(status)),
            ),
            ("tollgate.request_id", AttrValue::from(&*call.request_id)),
            (
                "tollgate.organization.id",
                AttrValue::from(principal.organization_id.as_str()),
            ),
            (
                "tollgate.api_key.id",
                AttrValue::from(principal.key_id.as_str()),
            ),
            ("tollgate.stream", AttrValue::Bool(call.stream)),
            ("tollgate.attempts", AttrValue::Int(i64::from(s.attempts))),
            ("tollgate.byok", AttrValue::Bool(s.byok)),
        ];
        attributes.push((
            "tollgate.power_level",
            AttrValue::from(call.power_level.as_str()),
        ));
        if let Some(provider) = s.provider {
            attributes.push(("gen_ai.provider.name", AttrValue::from(provider)));
        }
        if let Some(model) = s.model {
            attributes.push(("tollgate.model", AttrValue::from(model)));
        }
        if let Some(deployment) = s.deployment {
            attributes.push(("gen_ai.response.model", AttrValue::from(deployment)));
        }
        if let Some(u) = s.usage {
            attributes.push(("gen_ai.usage.input_tokens", AttrValue::Int(u.prompt_tokens)));
            attributes.push((
                "gen_ai.usage.output_tokens",
                AttrValue::Int(u.completion_tokens),
            ));
        }
        if let Some(cost) = s.cost {
            attributes.push(("tollgate.cost", AttrValue::Int(cost)));
        }
        if let Some(ttfb) = s.time_to_first_byte {
            attributes.push((
                "tollgate.time_to_first_token_ms",
                AttrValue::Int(millis(ttfb)),
            ));
        }
        if self.tracer.capture_content() {
            if let Some(body) = &call.body {
                attributes.push(("gen_ai.input.messages", AttrValue::from(capped_body(body))));
            }
            if let Some(body) = s.answer {
                attributes.push(("gen_ai.output.messages", AttrValue::from(capped_body(body))));
            }
        }
        if let Some(code) = s.error_code {
            attributes.push(("error.type", AttrValue::from(code.as_str())));
        }
        let started = started_ago(call.started.elapsed());
        self.tracer.export(SpanData {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_span_id: trace.parent_span_id,
            name: format!(
                "{} {}",
                call.operation.as_str(),
                s.model.unwrap_or(&call.requested_model)
            ),
            kind: SpanKind::Server,
            start_unix_nanos: unix_nanos(started),
            end_unix_nanos: unix_nanos(SystemTime::now()),
            attributes,
            error: s
                .error_code
                .map(|c| s.error_message.unwrap_or(c.as_str()).to_owned()),
        });
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
