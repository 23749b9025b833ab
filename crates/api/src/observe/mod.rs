//! What a data-plane call leaves behind for operators and organizations:
//! its OpenTelemetry spans (one server span, a client span per provider
//! attempt, GenAI semantic-convention attributes), its metrics, its JSON
//! log line and its request-log row. A [`CallTrace`] follows one call from
//! its admission to its end (a stream's end included); nothing here waits
//! on a collector or the database.

pub mod settings;

use crate::error::ApiError;
use crate::state::AppState;
use axum::response::Response;
use bytes::Bytes;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
use tollgate_core::money::TokenUsage;
use tollgate_core::{ModelEntry, PowerLevel};
use tollgate_observe::request_log::{Attempt, LoggedCall, capped_body};
use tollgate_observe::trace::{AttrValue, SpanData, SpanId, SpanKind, TraceContext, unix_nanos};
use tollgate_observe::{RequestLog, Tracer};
use tollgate_providers::ProviderError;
use tollgate_tenants::Principal;

/// The parts of the gateway state that observe calls.
pub struct Observer {
    pub tracer: Tracer,
    pub request_log: RequestLog,
    /// `TOLLGATE_LOG_FORMAT=json`: one log line per call.
    pub call_lines: bool,
}

/// What is known of a call when it is admitted.
pub struct CallStart {
    pub request_id: Arc<str>,
    /// The GenAI operation: `chat` or `embeddings`.
    pub operation: &'static str,
    pub requested_model: String,
    pub power_level: Option<PowerLevel>,
    pub stream: bool,
    pub started: Instant,
    /// From the client's `traceparent`, or a new trace.
    pub trace: Option<TraceContext>,
    /// The client's body: kept only when the organization logs bodies or
    /// spans carry content.
    pub body: Option<Bytes>,
}

impl CallStart {
    /// A call's start: its trace continues the client's `traceparent`.
    pub fn new(
        state: &AppState,
        principal: &Principal,
        request_id: &Arc<str>,
        operation: &'static str,
        headers: &axum::http::HeaderMap,
        body: &Bytes,
        started: Instant,
    ) -> CallStart {
        let traceparent = headers.get("traceparent").and_then(|v| v.to_str().ok());
        let trace = state.observer.tracer.begin(traceparent);
        let keep_body = principal.log_bodies
            || (state.observer.tracer.capture_content() && trace.is_some_and(|t| t.sampled));
        CallStart {
            request_id: request_id.clone(),
            operation,
            requested_model: String::new(),
            power_level: None,
            stream: false,
            started,
            trace,
            body: keep_body.then(|| body.clone()),
        }
    }
}

/// What a successful call produced.
struct Answered {
    model: Arc<ModelEntry>,
    byok: bool,
    usage: TokenUsage,
    /// In the organization's unit; `None` if the settlement failed.
    cost: Option<i64>,
    body: Option<Bytes>,
}

#[derive(Default)]
struct Progress {
    attempts: Vec<Attempt>,
    /// The sum of the attempts' durations: the time spent on providers.
    provider_time: Duration,
    answered: Option<Answered>,
    /// When the answer (or a stream's start) was ready.
    ready: Option<Duration>,
    time_to_first_token: Option<Duration>,
    streaming: bool,
    finished: bool,
}

/// One call being served.
pub struct CallTrace {
    state: AppState,
    start: CallStart,
    organization_id: String,
    api_key_id: String,
    log_bodies: bool,
    started_at: SystemTime,
    progress: Mutex<Progress>,
}

/// The attempt a provider call is about to be made as: its span, and the
/// `traceparent` the provider gets.
pub struct AttemptStart {
    span_id: SpanId,
    started: Instant,
    pub traceparent: Option<String>,
}

impl CallTrace {
    pub fn begin(state: &AppState, principal: &Principal, start: CallStart) -> Arc<CallTrace> {
        state
            .metrics
            .calls_in_flight
            .get_or_create(&crate::metrics::OperationLabels {
                operation: start.operation,
            })
            .inc();
        Arc::new(CallTrace {
            state: state.clone(),
            organization_id: principal.organization_id.clone(),
            api_key_id: principal.key_id.clone(),
            log_bodies: principal.log_bodies,
            started_at: tollgate_observe::trace::started_ago(start.started.elapsed()),
            start,
            progress: Mutex::new(Progress::default()),
        })
    }

    pub fn trace(&self) -> Option<&TraceContext> {
        self.start.trace.as_ref()
    }

    fn progress(&self) -> std::sync::MutexGuard<'_, Progress> {
        // A panic elsewhere cannot leave this inconsistent: keep going.
        self.progress
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A provider attempt about to start.
    pub fn attempt_start(&self) -> AttemptStart {
        let (span_id, traceparent) = match &self.start.trace {
            Some(t) => {
                let (span, traceparent) = t.attempt();
                (span, Some(traceparent))
            }
            None => ([0; 8], None),
        };
        AttemptStart {
            span_id,
            started: Instant::now(),
            traceparent,
        }
    }

    /// A provider attempt that ended (to its answer, or its stream's first event).
    pub fn attempt_end(
        &self,
        start: &AttemptStart,
        model: &ModelEntry,
        byok: bool,
        outcome: Result<(), &ProviderError>,
    ) {
        let took = start.started.elapsed();
        self.state
            .metrics
            .record_attempt(&model.provider, &model.id, outcome.is_ok(), took);
        let (http_status, error) = match outcome {
            Ok(()) => (None, None),
            Err(e) => (
                match e {
                    ProviderError::Status { status, .. } => Some(i64::from(*status)),
                    _ => None,
                },
                Some(e.to_string()),
            ),
        };
        let number = {
            let mut progress = self.progress();
            progress.provider_time += took;
            let number = i64::try_from(progress.attempts.len() + 1).unwrap_or(i64::MAX);
            progress.attempts.push(Attempt {
                attempt: number,
                provider: model.provider.clone(),
                model: model.id.clone(),
                status: if error.is_some() { "error" } else { "ok" }.to_owned(),
                http_status,
                error: error.clone(),
                byok,
                duration_ms: millis(took),
                started_at_ms: i64::try_from(
                    unix_nanos(tollgate_observe::trace::started_ago(took)) / 1_000_000,
                )
                .unwrap_or(0),
            });
            number
        };
        let Some(trace) = self.recorded() else {
            return;
        };
        let end = SystemTime::now();
        let mut attributes = vec![
            (
                "gen_ai.operation.name",
                AttrValue::from(self.start.operation),
            ),
            (
                "gen_ai.provider.name",
                AttrValue::from(model.provider.as_str()),
            ),
            (
                "gen_ai.request.model",
                AttrValue::from(model.upstream.as_str()),
            ),
            ("tollgate.model", AttrValue::from(model.id.as_str())),
            ("tollgate.attempt", AttrValue::Int(number)),
            ("tollgate.byok", AttrValue::Bool(byok)),
        ];
        if let Some(status) = http_status {
            attributes.push(("http.response.status_code", AttrValue::Int(status)));
        }
        if let Err(e) = outcome {
            attributes.push(("error.type", AttrValue::from(error_type(e))));
        }
        self.state.observer.tracer.export(SpanData {
            trace_id: trace.trace_id,
            span_id: start.span_id,
            parent_span_id: Some(trace.span_id),
            name: format!("{} {}", self.start.operation, model.upstream),
            kind: SpanKind::Client,
            start_unix_nanos: unix_nanos(end.checked_sub(took).unwrap_or(end)),
            end_unix_nanos: unix_nanos(end),
            attributes,
            error,
        });
    }

    /// The trace context, when this call's spans are exported.
    fn recorded(&self) -> Option<&TraceContext> {
        self.start
            .trace
            .as_ref()
            .filter(|t| self.state.observer.tracer.records(Some(t)))
    }

    /// A streamed answer has begun: its first event arrived.
    pub fn stream_started(&self, model: &ModelEntry) {
        let ttft = self.start.started.elapsed();
        self.state
            .metrics
            .time_to_first_token
            .get_or_create(&crate::metrics::ModelLabels {
                provider: model.provider.clone(),
                model: model.id.clone(),
            })
            .observe(ttft.as_secs_f64());
        let mut progress = self.progress();
        progress.time_to_first_token = Some(ttft);
        progress.streaming = true;
    }

    /// The call was answered and settled.
    pub fn answered(
        &self,
        model: &Arc<ModelEntry>,
        byok: bool,
        usage: TokenUsage,
        cost: Option<i64>,
        body: Option<&Bytes>,
    ) {
        self.state.metrics.record_usage(
            &self.organization_id,
            &model.provider,
            &model.id,
            usage.prompt_tokens,
            usage.completion_tokens,
            model.price.cost(&usage).0,
        );
        let keep = self.log_bodies || self.state.observer.tracer.capture_content();
        self.progress().answered = Some(Answered {
            model: model.clone(),
            byok,
            usage,
            cost,
            body: body.filter(|_| keep).cloned(),
        });
    }

    /// The relay returned: an error ends the call; an answer ends it
    /// unless it is a stream, which ends with [`CallTrace::finish`].
    pub fn ready(&self, result: &Result<Response, ApiError>) {
        let ready = self.start.started.elapsed();
        let streaming = {
            let mut progress = self.progress();
            progress.ready = Some(ready);
            let overhead = ready.saturating_sub(progress.provider_time);
            self.state
                .metrics
                .overhead
                .get_or_create(&crate::metrics::OperationLabels {
                    operation: self.start.operation,
                })
                .observe(overhead.as_secs_f64());
            progress.streaming
        };
        match result {
            Err(e) => self.finish(e.status.as_u16(), Some(e)),
            Ok(response) if !streaming => self.finish(response.status().as_u16(), None),
            Ok(_) => {}
        }
    }

    /// The call's end: its server span, its log line and its request-log row.
    pub fn finish(&self, status: u16, error: Option<&ApiError>) {
        let duration = self.start.started.elapsed();
        let mut progress = self.progress();
        if progress.finished {
            return;
        }
        progress.finished = true;
        self.state
            .metrics
            .calls_in_flight
            .get_or_create(&crate::metrics::OperationLabels {
                operation: self.start.operation,
            })
            .dec();
        let overhead = progress
            .ready
            .map(|r| r.saturating_sub(progress.provider_time));
        if let Some(trace) = self.recorded() {
            self.export_span(trace, &progress, status, error, duration);
        }
        let answered = progress.answered.as_ref();
        let usage = answered.map(|a| a.usage).unwrap_or_default();
        if self.state.observer.call_lines {
            tracing::info!(
                target: "tollgate::call",
                request_id = %self.start.request_id,
                organization_id = %self.organization_id,
                api_key_id = %self.api_key_id,
                operation = self.start.operation,
                requested_model = %self.start.requested_model,
                model = answered.map(|a| a.model.id.as_str()),
                provider = answered.map(|a| a.model.provider.as_str()),
                status,
                error_code = error.map(|e| e.code),
                stream = self.start.stream,
                byok = answered.is_some_and(|a| a.byok),
                prompt_tokens = usage.prompt_tokens,
                completion_tokens = usage.completion_tokens,
                cost = answered.and_then(|a| a.cost),
                attempts = progress.attempts.len(),
                duration_ms = millis(duration),
                overhead_ms = overhead.map(millis),
                time_to_first_token_ms = progress.time_to_first_token.map(millis),
                trace_id = self.start.trace.map(|t| t.trace_id_hex()),
                "call"
            );
        }
        if !self.state.observer.request_log.enabled() {
            return;
        }
        let bodies = self.log_bodies;
        self.state.observer.request_log.record(LoggedCall {
            request_id: self.start.request_id.to_string(),
            organization_id: self.organization_id.clone(),
            api_key_id: Some(self.api_key_id.clone()),
            operation: self.start.operation.to_owned(),
            requested_model: Some(self.start.requested_model.clone()),
            model: answered.map(|a| a.model.id.clone()),
            provider: answered.map(|a| a.model.provider.clone()),
            status,
            error_code: error.map(|e| e.code.to_owned()),
            error_message: error.map(|e| e.message.clone()),
            stream: self.start.stream,
            byok: answered.is_some_and(|a| a.byok),
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            cost: answered.and_then(|a| a.cost).unwrap_or(0),
            duration_ms: millis(duration),
            time_to_first_token_ms: progress.time_to_first_token.map(millis),
            overhead_ms: overhead.map(millis),
            trace_id: self
                .start
                .trace
                .filter(|t| t.sampled)
                .map(|t| t.trace_id_hex()),
            request_body: bodies
                .then(|| self.start.body.as_deref().map(capped_body))
                .flatten(),
            response_body: bodies
                .then(|| answered.and_then(|a| a.body.as_deref()).map(capped_body))
                .flatten(),
            created_at_ms: i64::try_from(unix_nanos(self.started_at) / 1_000_000).unwrap_or(0),
            attempts: std::mem::take(&mut progress.attempts),
        });
    }

    fn export_span(
        &self,
        trace: &TraceContext,
        progress: &Progress,
        status: u16,
        error: Option<&ApiError>,
        duration: Duration,
    ) {
        let start = &self.start;
        let mut attributes = vec![
            ("gen_ai.operation.name", AttrValue::from(start.operation)),
            (
                "gen_ai.request.model",
                AttrValue::from(start.requested_model.as_str()),
            ),
            ("http.request.method", AttrValue::from("POST")),
            (
                "http.response.status_code",
                AttrValue::Int(i64::from(status)),
            ),
            ("tollgate.request_id", AttrValue::from(&*start.request_id)),
            (
                "tollgate.organization.id",
                AttrValue::from(self.organization_id.as_str()),
            ),
            (
                "tollgate.api_key.id",
                AttrValue::from(self.api_key_id.as_str()),
            ),
            ("tollgate.stream", AttrValue::Bool(start.stream)),
            (
                "tollgate.attempts",
                AttrValue::Int(i64::try_from(progress.attempts.len()).unwrap_or(i64::MAX)),
            ),
        ];
        if let Some(level) = start.power_level {
            attributes.push(("tollgate.power_level", AttrValue::from(level.as_str())));
        }
        if let Some(a) = &progress.answered {
            attributes.extend([
                (
                    "gen_ai.provider.name",
                    AttrValue::from(a.model.provider.as_str()),
                ),
                (
                    "gen_ai.response.model",
                    AttrValue::from(a.model.upstream.as_str()),
                ),
                (
                    "gen_ai.usage.input_tokens",
                    AttrValue::Int(a.usage.prompt_tokens),
                ),
                (
                    "gen_ai.usage.output_tokens",
                    AttrValue::Int(a.usage.completion_tokens),
                ),
                ("tollgate.model", AttrValue::from(a.model.id.as_str())),
                ("tollgate.byok", AttrValue::Bool(a.byok)),
            ]);
            if let Some(cost) = a.cost {
                attributes.push(("tollgate.cost", AttrValue::Int(cost)));
            }
            if self.state.observer.tracer.capture_content()
                && let Some(body) = &a.body
            {
                attributes.push(("gen_ai.output.messages", AttrValue::from(capped_body(body))));
            }
        }
        if let Some(ttft) = progress.time_to_first_token {
            attributes.push((
                "tollgate.time_to_first_token_ms",
                AttrValue::Int(millis(ttft)),
            ));
        }
        if self.state.observer.tracer.capture_content()
            && let Some(body) = &start.body
        {
            attributes.push(("gen_ai.input.messages", AttrValue::from(capped_body(body))));
        }
        if let Some(e) = error {
            attributes.push(("error.type", AttrValue::from(e.code)));
        }
        let model = progress
            .answered
            .as_ref()
            .map_or(start.requested_model.as_str(), |a| a.model.id.as_str());
        self.state.observer.tracer.export(SpanData {
            trace_id: trace.trace_id,
            span_id: trace.span_id,
            parent_span_id: trace.parent_span_id,
            name: format!("{} {model}", start.operation),
            kind: SpanKind::Server,
            start_unix_nanos: unix_nanos(self.started_at),
            end_unix_nanos: unix_nanos(self.started_at + duration),
            attributes,
            error: error.map(|e| e.message.clone()),
        });
    }
}

impl Drop for CallTrace {
    fn drop(&mut self) {
        // A call dropped unfinished (its task cancelled) still leaves the gauge.
        let finished = self.progress().finished;
        if !finished {
            self.finish(499, None);
        }
    }
}

/// The OpenTelemetry `error.type` of a provider failure: a low-cardinality class.
fn error_type(e: &ProviderError) -> String {
    match e {
        ProviderError::Status { status, .. } => status.to_string(),
        ProviderError::Timeout => "timeout".to_owned(),
        ProviderError::Connect(_) => "connect_error".to_owned(),
        ProviderError::InvalidResponse(_) => "invalid_response".to_owned(),
        ProviderError::NoKey(_) => "no_key".to_owned(),
        ProviderError::Unsupported(_) => "unsupported".to_owned(),
        ProviderError::InvalidRequest(_) => "invalid_request".to_owned(),
        ProviderError::Blocked(_) => "blocked".to_owned(),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Runs a call's relay and tells `trace` when its answer (or error) is ready.
pub async fn observed(
    trace: Arc<CallTrace>,
    relay: impl std::future::Future<Output = Result<Response, ApiError>>,
) -> Result<Response, ApiError> {
    let result = relay.await;
    trace.ready(&result);
    result
}
