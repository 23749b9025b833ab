//! `POST /v1/chat/completions`: OpenAI Chat Completions, plain and streamed.
//!
//! For each candidate model (one for a named model, a power level's list for
//! `auto`): hold the call's maximum cost, call the provider, and settle the
//! real cost; on a retryable failure before the first byte, release the hold
//! and try the next candidate.

use super::deployments::{DeploymentLease, lease, needs_of};
use super::dialect::{Dialect, Encoder};
use super::org_policy::{allowed_candidates, default_level};
use super::relay::{CallRecord, gateway_headers, max_payable, paying_key, reserve, settle};
use crate::error::ApiError;
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json, require_scope};
use crate::limits::{admit, quota_headers};
use crate::state::AppState;
use axum::Extension;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use serde_json::Value;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tollgate_billing::{BillingError, Hold, UsageStatus};
use tollgate_core::money::TokenUsage;
use tollgate_core::{ModelEntry, ModelMode, PowerLevel};
use tollgate_providers::{ChatRequest, ChatStream, ProviderError, StreamEvent, Target};
use tollgate_routing::health::{Availability, backoff};
use tollgate_routing::limits::Admission;
use tollgate_tenants::{KeyScope, Principal};

/// Events buffered between the provider and a slow client, at most.
const STREAM_BUFFER: usize = 64;

pub async fn chat_completions(
    State(state): State<AppState>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    OrgKey(principal): OrgKey,
    headers: HeaderMap,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    require_scope(&principal, KeyScope::Chat)?;
    let request: ChatRequest = parse_json(&body)?;
    serve(
        state,
        request_id,
        principal,
        &headers,
        body.len(),
        request,
        Dialect::OpenAi,
        started,
    )
    .await
}

/// Serves a request in Tollgate's (Chat) format, whichever surface decoded
/// it: validation, routing, limits, then [`relay`] in its own task, the
/// answer written in the client's `dialect`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve(
    state: AppState,
    request_id: Arc<str>,
    principal: Arc<Principal>,
    headers: &HeaderMap,
    body_len: usize,
    mut request: ChatRequest,
    dialect: Dialect,
    started: Instant,
) -> Result<Response, ApiError> {
    request.validate().map_err(ApiError::bad_request)?;
    let level = power_level(&mut request, headers, default_level(&principal))?;
    let fallbacks = fallback_models(&mut request)?;
    let needs = needs_of(&mut request)?;
    let candidates = tollgate_routing::candidates_with_fallbacks(
        &state.catalog.current(),
        &request.model,
        &fallbacks,
        level,
        ModelMode::Chat,
    )?;
    let candidates = allowed_candidates(&principal, &request.model, level, candidates)?;
    let candidates = tollgate_routing::fit::fitting(candidates, &request.model, &needs)?;
    let timeout = client_timeout(headers)?;
    let admission = admit(&state, &principal, estimated_tokens(body_len, &request)).await?;
    let quotas = admission.quotas();

    // The call runs in a task of its own: if the client goes away, the
    // handler is dropped, but the hold is still settled or released.
    let call = state.streams.spawn(relay(
        state.clone(),
        principal,
        request,
        request_id,
        candidates,
        started,
        timeout,
        dialect,
        admission,
    ));
    let mut response = call.await.map_err(ApiError::internal)??;
    quota_headers(response.headers_mut(), quotas);
    Ok(response)
}

/// The body's OpenRouter-style `models` list (not forwarded): the models to
/// fall back to, in order, after `model`.
fn fallback_models(request: &mut ChatRequest) -> Result<Vec<String>, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "`models` must be a list of at most {} model names",
            tollgate_routing::MAX_FALLBACKS
        ))
    };
    match request.extra.remove("models") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) if items.len() <= tollgate_routing::MAX_FALLBACKS => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) if !s.is_empty() => Ok(s),
                _ => Err(invalid()),
            })
            .collect(),
        Some(_) => Err(invalid()),
    }
}

/// The header in which a client gives its own timeout, in milliseconds.
const TIMEOUT_HEADER: &str = "x-tollgate-timeout-ms";

/// The client's own timeout, from `x-tollgate-timeout-ms` (1 ms to 1 hour).
pub(super) fn client_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ApiError> {
    let Some(value) = headers.get(TIMEOUT_HEADER) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| (1..=3_600_000).contains(ms))
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "header `{TIMEOUT_HEADER}` must be a whole number of milliseconds from 1 to 3600000"
            ))
        })
}

/// Runs a provider call within what is left of the client's timeout, if it
/// set one; past it, the call is a provider timeout (504 after fallbacks).
async fn within<T>(
    left: Option<Duration>,
    call: impl std::future::Future<Output = Result<T, ProviderError>>,
) -> Result<T, ProviderError> {
    match left {
        None => call.await,
        Some(left) => tokio::time::timeout(left, call)
            .await
            .unwrap_or(Err(ProviderError::Timeout)),
    }
}

/// What a call counts against a tokens-per-minute limit until its real
/// usage is known: its body at ~4 bytes a token plus the completion asked for.
pub(super) fn estimated_tokens(body_bytes: usize, request: &ChatRequest) -> i64 {
    i64::try_from(body_bytes / 4)
        .unwrap_or(i64::MAX)
        .saturating_add(request.max_output_tokens().unwrap_or(0).max(0))
}

/// Tries the candidates in order until one answers; the answer is written
/// in the client's `dialect` (shared with `/v1/messages`). The rate-limit
/// `admission` is kept until the call (or its stream) ends.
#[allow(clippy::too_many_arguments)]
pub(super) async fn relay(
    state: AppState,
    principal: Arc<Principal>,
    request: ChatRequest,
    request_id: Arc<str>,
    candidates: Vec<Arc<ModelEntry>>,
    started: Instant,
    client_timeout: Option<Duration>,
    dialect: Dialect,
    admission: Admission,
) -> Result<Response, ApiError> {
    // Retry rounds start only within the routing deadline, and never past
    // the client's own timeout (`x-tollgate-timeout-ms`).
    let deadline = client_timeout.map_or(state.retries.deadline, |t| t.min(state.retries.deadline));
    let prompt_bound = request.prompt_token_upper_bound();
    // Cheap, for skipping models too small for the request: ~4 bytes a token.
    let prompt_estimate = prompt_bound / 4;
    let mut last_error = None;
    // Whether the current round ended on a retryable provider failure.
    let mut retry_worthy = false;
    // Candidates actually called (`x-tollgate-attempts`).
    let mut attempts: u32 = 0;
    let mut too_long = false;
    // The soonest end of a cooldown among the candidates skipped for one.
    let mut cooling: Option<Duration> = None;
    // The soonest room among the deployments skipped for their RPM/TPM caps.
    let mut capped: Option<Duration> = None;
    let estimate = prompt_estimate.saturating_add(request.max_output_tokens().unwrap_or(0).max(0));
    for round in 0..=state.retries.rounds {
        if round > 0 {
            // Another round only after retryable provider failures, and only
            // if it can start within the deadline.
            let wait = backoff(round, RETRY_BASE, RETRY_CAP);
            if !retry_worthy || started.elapsed() + wait > deadline {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        retry_worthy = false;
        for candidate in &candidates {
            if !tollgate_routing::fits_context(
                candidate,
                prompt_estimate,
                request.max_output_tokens(),
            ) {
                too_long = true;
                continue;
            }
            // The model's deployments, the chosen one first; the others
            // are its fallbacks before the next model.
            let deployments =
                tollgate_routing::balance::order(candidate, &state.health, Instant::now());
            for deployment in &deployments {
                let model = &deployment.entry;
                let Some(provider) = state.catalog.provider(&model.provider) else {
                    continue;
                };
                if let Availability::CoolingDown(wait) =
                    state
                        .health
                        .check(&model.provider, &model.id, Instant::now())
                {
                    cooling = Some(cooling.map_or(wait, |c| c.min(wait)));
                    continue;
                }
                let paying = paying_key(&state, &principal.organization_id, provider).await?;
                // A keyless provider (a local vLLM or Ollama) is called without one.
                if paying.is_none() && !provider.keyless {
                    last_error = Some(ProviderError::NoKey(provider.name.clone()).into());
                    continue;
                }
                let (api_key, byok) = paying
                    .as_ref()
                    .map_or((None, false), |p| (Some(p.secret()), p.byok()));
                let max_completion = request
                    .max_output_tokens()
                    .unwrap_or(model.max_output_tokens);
                let most = max_payable(
                    &state,
                    &principal,
                    byok,
                    &model.price,
                    prompt_bound,
                    max_completion,
                );
                let hold = match reserve(&state, &principal, most).await {
                    Ok(hold) => hold,
                    Err(
                        e @ (BillingError::InsufficientCredits { .. }
                        | BillingError::BudgetExceeded { .. }),
                    ) => {
                        last_error = Some(e.into());
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                // Counted against the deployment's caps only when it is
                // about to be called.
                let deployment_lease = match lease(&state, deployment, estimate).await {
                    Ok(lease) => lease,
                    Err(wait) => {
                        if let Err(e) = state.billing.release(hold).await {
                            tracing::error!(error = %e, "releasing a hold failed");
                        }
                        capped = Some(capped.map_or(wait, |c| c.min(wait)));
                        continue;
                    }
                };
                let target = Target {
                    provider: &provider.name,
                    kind: provider.kind,
                    base_url: &provider.base_url,
                    api_key,
                    upstream_model: &model.upstream,
                    max_output_tokens: model.max_output_tokens,
                };
                let call = Call {
                    state: &state,
                    principal: &principal,
                    request_id: &request_id,
                    model,
                    byok,
                    started,
                    dialect: &dialect,
                    admission: &admission,
                    deployment: &deployment_lease,
                };
                attempts += 1;
                let call_started = Instant::now();
                let left = client_timeout.map(|t| t.saturating_sub(started.elapsed()));
                let outcome = if request.stream {
                    match within(left, state.providers.chat_stream(&target, &request)).await {
                        Ok(upstream) => Ok(call.stream(upstream, hold, &request, prompt_bound)),
                        Err(e) => Err((e, hold)),
                    }
                } else {
                    match within(left, state.providers.chat(&target, &request)).await {
                        Ok(answer) => Ok(call.answer(answer.body, answer.usage, hold).await),
                        Err(e) => Err((e, hold)),
                    }
                };
                match outcome {
                    Ok(mut response) => {
                        state
                            .health
                            .success(&model.provider, &model.id, call_started.elapsed());
                        state.metrics.record_call(&model.id, &model.provider, "ok");
                        response
                            .headers_mut()
                            .insert("x-tollgate-attempts", HeaderValue::from(attempts));
                        return Ok(response);
                    }
                    Err((error, hold)) => {
                        state
                            .metrics
                            .record_call(&model.id, &model.provider, "error");
                        if let Err(e) = state.billing.release(hold).await {
                            tracing::error!(error = %e, "releasing a hold failed");
                        }
                        tracing::info!(model = %model.id, error = %error, "provider call failed");
                        if !error.is_retryable() {
                            return Err(with_attempts(error.into(), attempts));
                        }
                        if counts_against_health(&error, byok) {
                            let retry_after = match &error {
                                ProviderError::Status { retry_after, .. } => {
                                    retry_after.map(Duration::from_secs)
                                }
                                _ => None,
                            };
                            if state.health.failure(
                                &model.provider,
                                &model.id,
                                retry_after,
                                Instant::now(),
                            ) {
                                tracing::warn!(provider = %model.provider, model = %model.id, "deployment is cooling down after failures");
                            }
                        }
                        last_error = Some(error.into());
                        retry_worthy = true;
                    }
                }
            }
        }
    }
    let error = last_error.unwrap_or_else(|| {
        if let Some(wait) = capped {
            let mut err = ApiError::rate_limited(
                "every deployment that could serve this request is at its own requests- or \
                 tokens-per-minute cap; retry later",
            );
            err.retry_after = Some(
                wait.as_millis()
                    .div_ceil(1000)
                    .max(1)
                    .try_into()
                    .unwrap_or(u64::MAX),
            );
            err
        } else if let Some(wait) = cooling {
            let mut err = ApiError::unavailable(
                "every model that could serve this request is cooling down after provider \
                 failures; retry later",
            );
            err.retry_after = Some(wait.as_secs().max(1));
            err
        } else if too_long {
            let mut err = ApiError::bad_request(
                "the prompt plus `max_tokens` exceeds the context window of every model that \
                 could serve this request",
            );
            err.code = "context_length_exceeded";
            err
        } else {
            ApiError::unavailable("no provider is available for this model")
        }
    });
    Err(with_attempts(error, attempts))
}

/// The first wait before a retry round, and the longest.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(2);

/// Whether a failure says something about the deployment's health. A 429
/// on an organization's own key (BYOK) is that organization's quota, not
/// the deployment's.
fn counts_against_health(error: &ProviderError, byok: bool) -> bool {
    match error {
        ProviderError::Status { status, .. } => *status >= 500 || (*status == 429 && !byok),
        ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::InvalidResponse(_) => {
            true
        }
        _ => false,
    }
}

/// An error that says how many candidates were called before it.
fn with_attempts(mut error: ApiError, attempts: u32) -> ApiError {
    error.headers.push((
        axum::http::HeaderName::from_static("x-tollgate-attempts"),
        HeaderValue::from(attempts),
    ));
    error
}

/// Takes the power level from the body's `power_level` (not forwarded) or
/// the `x-tollgate-power-level` header; else `default` (the organization's
/// default power level, or `balanced`).
fn power_level(
    request: &mut ChatRequest,
    headers: &HeaderMap,
    default: PowerLevel,
) -> Result<PowerLevel, ApiError> {
    let from_body = request.extra.remove("power_level");
    let invalid = || ApiError::bad_request("`power_level` must be one of eco, balanced, precision");
    if let Some(value) = from_body {
        return match value {
            Value::String(s) => s.parse().map_err(|_| invalid()),
            Value::Null => Ok(default),
            _ => Err(invalid()),
        };
    }
    match headers.get("x-tollgate-power-level") {
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(invalid),
        None => Ok(default),
    }
}

/// One provider call that succeeded to its first byte.
struct Call<'a> {
    state: &'a AppState,
    principal: &'a Principal,
    request_id: &'a Arc<str>,
    model: &'a Arc<ModelEntry>,
    byok: bool,
    started: Instant,
    dialect: &'a Dialect,
    admission: &'a Admission,
    deployment: &'a DeploymentLease,
}

impl Call<'_> {
    fn record(&self, usage: TokenUsage, stream: bool, status: UsageStatus) -> CallRecord<'_> {
        CallRecord {
            request_id: self.request_id,
            api_key_id: &self.principal.key_id,
            mode: self.principal.billing_mode,
            markup_percent: self.principal.markup_percent,
            model: self.model,
            usage,
            byok: self.byok,
            stream,
            status,
            latency: self.started.elapsed(),
        }
    }

    /// A complete answer: settle, then answer with the cost in the headers.
    async fn answer(&self, body: Bytes, usage: TokenUsage, hold: Hold) -> Response {
        let charged = settle(
            self.state,
            hold,
            &self.record(usage, false, UsageStatus::Ok),
        )
        .await;
        self.admission.used_tokens(usage.total()).await;
        self.deployment.used_tokens(usage.total()).await;
        let body = self.dialect.answer_body(body, &usage);
        let mut response = ([(header::CONTENT_TYPE, "application/json")], body).into_response();
        gateway_headers(response.headers_mut(), self.model, self.byok, charged);
        response
    }

    /// A streamed answer. A task pumps the provider's events to the client
    /// through a bounded channel and settles at the end. If the client goes
    /// away, the task still reads the provider to its end, so the spend is
    /// known and billed; if the provider breaks off, the client gets an
    /// error event and the usage so far is estimated and billed.
    fn stream(
        &self,
        upstream: ChatStream,
        hold: Hold,
        request: &ChatRequest,
        prompt_bound: i64,
    ) -> Response {
        let (tx, rx) = mpsc::channel::<Bytes>(STREAM_BUFFER);
        let pump = StreamPump {
            state: self.state.clone(),
            request_id: self.request_id.clone(),
            principal: self.principal.clone(),
            model: self.model.clone(),
            byok: self.byok,
            started: self.started,
            encoder: self
                .dialect
                .encoder(request.stream_options.is_some_and(|o| o.include_usage)),
            prompt_estimate: prompt_bound / 4,
            admission: self.admission.clone(),
            deployment: self.deployment.clone(),
        };
        self.state.streams.spawn(pump.run(upstream, hold, tx));
        let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
        let mut response = Response::new(body);
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        gateway_headers(headers, self.model, self.byok, None);
        response
    }
}

struct StreamPump {
    state: AppState,
    request_id: Arc<str>,
    principal: Principal,
    model: Arc<ModelEntry>,
    byok: bool,
    started: Instant,
    encoder: Encoder,
    prompt_estimate: i64,
    admission: Admission,
    deployment: DeploymentLease,
}

impl StreamPump {
    async fn run(mut self, mut upstream: ChatStream, hold: Hold, tx: mpsc::Sender<Bytes>) {
        let mut usage = None;
        let mut finished = false;
        let mut failure = None;
        let mut content_chunks: i64 = 0;
        let mut client_gone = false;
        while let Some(event) = upstream.next().await {
            match event {
                Ok(StreamEvent::Chunk {
                    data,
                    usage: reported,
                    usage_only,
                }) => {
                    if reported.is_some() {
                        usage = reported;
                    }
                    if !usage_only {
                        content_chunks += 1;
                    }
                    if !client_gone {
                        for bytes in self.encoder.chunk(&data, usage_only) {
                            if tx.send(bytes).await.is_err() {
                                // Keep reading: the provider is still producing, and billing.
                                client_gone = true;
                                break;
                            }
                        }
                    }
                }
                Ok(StreamEvent::Done) => {
                    finished = true;
                    break;
                }
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let complete = finished && usage.is_some();
        let usage = usage.unwrap_or(TokenUsage {
            // Estimated: the prompt at ~4 bytes a token, one token a chunk.
            prompt_tokens: self.prompt_estimate,
            completion_tokens: content_chunks,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        });
        let status = if complete {
            UsageStatus::Ok
        } else {
            UsageStatus::Partial
        };
        let principal = &self.principal;
        let record = CallRecord {
            request_id: &self.request_id,
            api_key_id: &principal.key_id,
            mode: principal.billing_mode,
            markup_percent: principal.markup_percent,
            model: &self.model,
            usage,
            byok: self.byok,
            stream: true,
            status,
            latency: self.started.elapsed(),
        };
        settle(&self.state, hold, &record).await;
        self.admission.used_tokens(usage.total()).await;
        self.deployment.used_tokens(usage.total()).await;
        if client_gone {
            return;
        }
        let end = self.encoder.end(&usage, finished, failure.as_ref());
        self.encoder.settled().await;
        for bytes in end {
            if tx.send(bytes).await.is_err() {
                break;
            }
        }
    }
}
