//! One call, from its typed request to its outcome: admission, then the
//! candidate and retry loop (see the crate documentation).

use crate::Gateway;
use crate::admission::{admit, allowed_candidates, require_scope};
use crate::error::{GatewayError, seconds_up};
use crate::finish::Finish;
use crate::observe::{
    AttemptInfo, AttemptStatus, CallInfo, CallStatus, CallSummary, OperationKind,
};
use crate::options::{CallOptions, answers};
use crate::paying::CallRecord;
use crate::stream::{Events, Pump};
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_billing::{BillingError, UsageStatus};
use tollgate_core::money::TokenUsage;
use tollgate_core::{ErrorCode, ModelEntry, ModelMode, ProviderKind};
use tollgate_observe::TraceContext;
use tollgate_providers::responses::native::ResponsesCall;
use tollgate_providers::{ChatRequest, ChatStream, EmbeddingRequest, ProviderError, Target};
use tollgate_routing::fit::Needs;
use tollgate_routing::health::{Availability, backoff};
use tollgate_routing::limits::{Admission, Quotas};
use tollgate_tenants::{KeyScope, Principal};

/// One call, decoded by a surface.
pub struct CallRequest {
    pub principal: Arc<Principal>,
    pub request_id: Arc<str>,
    pub operation: Operation,
    pub options: CallOptions,
    /// The size of the body received, for the rate limits' token estimate.
    pub body_len: usize,
    pub started: Instant,
    /// The call's trace (from the client's `traceparent`, or new); each
    /// provider call carries it on.
    pub trace: Option<TraceContext>,
    /// The client's body, for observers, when it is to be kept.
    pub body: Option<Bytes>,
}

impl CallRequest {
    /// A call starting now.
    pub fn new(
        principal: Arc<Principal>,
        request_id: Arc<str>,
        operation: Operation,
        options: CallOptions,
        body_len: usize,
    ) -> CallRequest {
        CallRequest {
            principal,
            request_id,
            operation,
            options,
            body_len,
            started: Instant::now(),
            trace: None,
            body: None,
        }
    }
}

/// What the provider is asked to do, in Tollgate's (OpenAI) format.
pub enum Operation {
    Chat(ChatRequest),
    Embed(EmbeddingRequest),
    /// An OpenAI Responses request: sent natively to a provider that speaks
    /// the Responses API (`ProviderEntry::responses_api`), as its Chat
    /// translation to any other; [`Route::wire`] says which answered.
    Responses(ResponsesCall),
}

impl Operation {
    pub fn kind(&self) -> OperationKind {
        match self {
            Operation::Chat(_) | Operation::Responses(_) => OperationKind::Chat,
            Operation::Embed(_) => OperationKind::Embed,
        }
    }

    fn model(&self) -> &str {
        match self {
            Operation::Chat(r) => &r.model,
            Operation::Responses(r) => &r.chat.model,
            Operation::Embed(r) => &r.model,
        }
    }

    /// The chat request (a Responses call's translation), if it completes.
    fn chat(&self) -> Option<&ChatRequest> {
        match self {
            Operation::Chat(r) => Some(r),
            Operation::Responses(r) => Some(&r.chat),
            Operation::Embed(_) => None,
        }
    }
}

/// The format of an answer's body and stream chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// OpenAI's Chat Completions (or Embeddings) JSON and chunks:
    /// Tollgate's own format, whatever the provider.
    OpenAi,
    /// A Responses object and the Responses events' JSON, as the provider
    /// sent them (a native Responses call).
    Responses,
}

/// Which model answered, and how.
#[derive(Debug, Clone)]
pub struct Route {
    /// The catalog entry of the model that answered (its id and provider).
    pub model: Arc<ModelEntry>,
    /// Whether the organization's own key paid the provider.
    pub byok: bool,
    /// Provider calls made, fallbacks and retries included.
    pub attempts: u32,
    /// The caller's rate-limit quotas (`x-ratelimit-*`).
    pub quotas: Quotas,
    /// The format the answer is in.
    pub wire: Wire,
}

/// The answer of a call.
pub enum Outcome {
    /// A complete answer, already settled.
    Answer {
        /// The provider's answer: OpenAI's JSON format, or a Responses
        /// object (`route.wire`).
        body: Bytes,
        usage: TokenUsage,
        route: Route,
        /// What was charged (`None`: the settlement could not be written).
        cost: Option<i64>,
    },
    /// A streamed answer: chunks, then one [`StreamItem::End`].
    Stream { route: Route, events: Events },
}

/// The first wait before a retry round, and the longest.
const RETRY_BASE: Duration = Duration::from_millis(100);
const RETRY_CAP: Duration = Duration::from_secs(2);

/// What the hold and the caps of a call are sized on.
struct Plan {
    /// No tokenizer's prompt count exceeds it: the hold's prompt part.
    prompt_bound: i64,
    /// Cheap, ~4 bytes a token: for context windows and estimates.
    prompt_estimate: i64,
    /// The completion limit the client set, if any.
    asked: Option<i64>,
    /// As sent by the client, restored (clamped) before every attempt.
    max_tokens: Option<i64>,
    max_completion_tokens: Option<i64>,
    /// How many answers the provider may produce (`n`, `best_of`).
    answers: i64,
    /// Completions at all (embeddings have none).
    completes: bool,
}

impl Plan {
    fn new(operation: &Operation) -> Result<Plan, GatewayError> {
        Ok(match operation {
            Operation::Chat(r) | Operation::Responses(ResponsesCall { chat: r, .. }) => {
                let prompt_bound = r.prompt_token_upper_bound();
                Plan {
                    prompt_bound,
                    prompt_estimate: prompt_bound / 4,
                    asked: r.max_output_tokens(),
                    max_tokens: r.max_tokens,
                    max_completion_tokens: r.max_completion_tokens,
                    answers: answers(r)?,
                    completes: true,
                }
            }
            Operation::Embed(r) => {
                let prompt_bound = r.input_token_upper_bound();
                Plan {
                    prompt_bound,
                    prompt_estimate: prompt_bound / 4,
                    asked: None,
                    max_tokens: None,
                    max_completion_tokens: None,
                    answers: 1,
                    completes: false,
                }
            }
        })
    }

    /// Completion tokens asked for, all answers counted, before clamping.
    fn asked_total(&self) -> i64 {
        self.asked.unwrap_or(0).max(0).saturating_mul(self.answers)
    }

    /// The most completion tokens `model` may produce for this call: the
    /// client's limit clamped to the model's `max_output_tokens` (the
    /// model's when the client set none), times the answers.
    fn max_completion(&self, model: &ModelEntry) -> i64 {
        if !self.completes {
            return 0;
        }
        let per_answer = self
            .asked
            .map_or(model.max_output_tokens, |asked| clamp(asked, model));
        per_answer.max(0).saturating_mul(self.answers)
    }
}

/// A completion limit no larger than the model's own (0: unknown, no clamp).
fn clamp(asked: i64, model: &ModelEntry) -> i64 {
    if model.max_output_tokens > 0 {
        asked.min(model.max_output_tokens)
    } else {
        asked
    }
}

/// What a chat request needs of its model, besides the client's `max_price`.
fn chat_needs(request: &ChatRequest, options: &CallOptions) -> Needs {
    let non_empty = |name: &str| match request.extra.get(name) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let json = request
        .extra
        .get("response_format")
        .and_then(|f| f.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t == "json_object" || t == "json_schema");
    let vision = request.messages.iter().any(|m| match &m.content {
        Value::Array(parts) => parts.iter().any(|p| {
            p.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| matches!(t, "image_url" | "image" | "input_image"))
        }),
        _ => false,
    });
    Needs {
        tools: non_empty("tools") || non_empty("functions"),
        vision,
        json,
        max_price: options.max_price,
    }
}

/// Runs a provider call within what is left of the client's timeout, if it
/// set one; past it, the call is a provider timeout (504 after fallbacks).
///
/// The provider call is boxed: the route future then holds a pointer
/// instead of the largest provider future (kilobytes), and the route task,
/// which is moved when it is spawned, stays small.
fn within<'a, T: 'a>(
    left: Option<Duration>,
    call: impl std::future::Future<Output = Result<T, ProviderError>> + Send + 'a,
) -> impl std::future::Future<Output = Result<T, ProviderError>> + Send + 'a {
    let call = Box::pin(call);
    async move {
        match left {
            None => call.await,
            Some(left) => tokio::time::timeout(left, call)
                .await
                .unwrap_or(Err(ProviderError::Timeout)),
        }
    }
}

/// Whether a failure says something about the deployment's health (a
/// redirect is a misconfigured base URL). A 429 on an organization's own
/// key (BYOK) is that organization's quota, not the deployment's.
fn counts_against_health(error: &ProviderError, byok: bool) -> bool {
    match error {
        ProviderError::Status { status, .. } => {
            *status >= 500 || (300..400).contains(status) || (*status == 429 && !byok)
        }
        ProviderError::Timeout | ProviderError::Connect(_) | ProviderError::InvalidResponse(_) => {
            true
        }
        _ => false,
    }
}

/// A provider's answer, before settlement.
enum Reply {
    Answer(Bytes, TokenUsage),
    Stream(ChatStream),
}

/// Why no candidate answered, so far.
#[derive(Default)]
struct Misses {
    last_error: Option<GatewayError>,
    too_long: bool,
    /// The soonest end of a cooldown among the candidates skipped for one.
    cooling: Option<Duration>,
    /// The soonest room among the deployments skipped for their caps.
    capped: Option<Duration>,
}

impl Misses {
    fn into_error(self) -> GatewayError {
        if let Some(error) = self.last_error {
            error
        } else if let Some(wait) = self.capped {
            GatewayError::new(
                ErrorCode::RateLimitExceeded,
                "every deployment that could serve this request is at its own requests- or \
                 tokens-per-minute cap; retry later",
            )
            .with_retry_after(seconds_up(wait))
        } else if let Some(wait) = self.cooling {
            GatewayError::new(
                ErrorCode::NoProviderAvailable,
                "every model that could serve this request is cooling down after provider \
                 failures; retry later",
            )
            .with_retry_after(wait.as_secs().max(1))
        } else if self.too_long {
            GatewayError::new(
                ErrorCode::ContextLengthExceeded,
                "the prompt plus `max_tokens` exceeds the context window of every model that \
                 could serve this request",
            )
        } else {
            GatewayError::new(
                ErrorCode::NoProviderAvailable,
                "no provider is available for this model",
            )
        }
    }
}

impl Gateway {
    /// The models this organization may use for `model` (with the
    /// options' fallbacks and power level), best first, before capability
    /// filters. For surfaces that adapt their decoding to the providers
    /// that may serve a call.
    pub fn candidates(
        &self,
        principal: &Principal,
        model: &str,
        options: &CallOptions,
        mode: ModelMode,
    ) -> Result<Vec<Arc<ModelEntry>>, GatewayError> {
        let catalog = self.catalog.current();
        let list = tollgate_routing::candidates_with_fallbacks(
            &catalog,
            model,
            &options.models,
            options.power_level,
            mode,
        )?;
        let list = allowed_candidates(principal, model, options.power_level, list)?;
        if !options.models.is_empty() {
            return Ok(list);
        }
        // Without the request's own `models`, the configuration's
        // `fallbacks` for the model follow it, as far as they are allowed.
        Ok(tollgate_routing::with_configured_fallbacks(
            &catalog,
            list,
            model,
            options.power_level,
            mode,
            |id| principal.may_use_model(id),
        ))
    }

    /// The API kind of a model's provider.
    pub fn provider_kind(&self, model: &ModelEntry) -> Option<ProviderKind> {
        self.catalog.provider(&model.provider).map(|p| p.kind)
    }

    /// Makes one call, from admission to its outcome. A plain answer is
    /// settled before this returns; a stream is settled by its pump.
    pub async fn call(&self, request: CallRequest) -> Result<Outcome, GatewayError> {
        let call = Arc::new(CallInfo {
            request_id: request.request_id.clone(),
            principal: request.principal.clone(),
            operation: request.operation.kind(),
            requested_model: request.operation.model().to_owned(),
            stream: request.operation.chat().is_some_and(|r| r.stream),
            started: request.started,
            power_level: request.options.power_level,
            trace: request.trace,
            body: request.body.clone(),
        });
        let result = self.admit_and_run(call.clone(), request).await;
        if let Err(e) = &result {
            self.observer.finished(
                &call,
                &CallSummary {
                    status: CallStatus::Failed,
                    error_code: Some(e.code),
                    error_message: Some(&e.message),
                    model: None,
                    deployment: None,
                    list_cost_usd_micros: None,
                    answer: None,
                    settlement: None,
                    provider: None,
                    usage: None,
                    cost: None,
                    byok: false,
                    duration: call.started.elapsed(),
                    time_to_first_byte: None,
                    attempts: e.attempts.unwrap_or(0),
                },
            );
        }
        result
    }

    async fn admit_and_run(
        &self,
        call: Arc<CallInfo>,
        request: CallRequest,
    ) -> Result<Outcome, GatewayError> {
        let (scope, mode) = match &request.operation {
            Operation::Chat(_) | Operation::Responses(_) => (KeyScope::Chat, ModelMode::Chat),
            Operation::Embed(_) => (KeyScope::Embeddings, ModelMode::Embedding),
        };
        require_scope(&request.principal, scope)?;
        let model = request.operation.model();
        let candidates = self.candidates(&request.principal, model, &request.options, mode)?;
        let needs = match &request.operation {
            Operation::Chat(r) | Operation::Responses(ResponsesCall { chat: r, .. }) => {
                chat_needs(r, &request.options)
            }
            Operation::Embed(_) => Needs {
                max_price: request.options.max_price,
                ..Needs::default()
            },
        };
        let candidates = tollgate_routing::fit::fitting(candidates, model, &needs)?;
        let plan = Plan::new(&request.operation)?;
        // What the call counts against tokens-per-minute limits until its
        // real usage is known: its body at ~4 bytes a token plus the
        // completions asked for.
        let estimate = i64::try_from(request.body_len / 4)
            .unwrap_or(i64::MAX)
            .saturating_add(plan.asked_total());
        let admission = admit(&self.limiter, self.org_limits, &request.principal, estimate).await?;
        // If the surface's future is dropped (the client went away), the
        // route runs on in the background: the hold is still settled or
        // released. Boxed (in `Finish`): the surface's future then holds a
        // pointer, not the whole route future (tens of kilobytes).
        let gateway = self.clone();
        let route = async move {
            gateway
                .route(call, request, candidates, plan, admission)
                .await
        };
        Finish::new(route, &self.streams).await
    }

    /// Tries the candidates in order, in retry rounds, until one answers.
    async fn route(
        &self,
        call: Arc<CallInfo>,
        mut request: CallRequest,
        candidates: Vec<Arc<ModelEntry>>,
        plan: Plan,
        admission: Admission,
    ) -> Result<Outcome, GatewayError> {
        let started = request.started;
        let timeout = request.options.timeout;
        // Retry rounds start only within the routing deadline, and never
        // past the client's own timeout.
        let deadline = timeout.map_or(self.retries.deadline, |t| t.min(self.retries.deadline));
        let lease_estimate = plan.prompt_estimate.saturating_add(plan.asked_total());
        let mut misses = Misses::default();
        // Whether the current round ended on a retryable provider failure.
        let mut retry_worthy = false;
        let mut attempts: u32 = 0;
        for round in 0..=self.retries.rounds {
            if round > 0 {
                let wait = backoff(round, RETRY_BASE, RETRY_CAP);
                if !retry_worthy || started.elapsed() + wait > deadline {
                    break;
                }
                tokio::time::sleep(wait).await;
            }
            retry_worthy = false;
            for candidate in &candidates {
                if plan.completes
                    && !tollgate_routing::fits_context(candidate, plan.prompt_estimate, plan.asked)
                {
                    misses.too_long = true;
                    continue;
                }
                // The model's deployments, the chosen one first; the others
                // are its fallbacks before the next model.
                let deployments =
                    tollgate_routing::balance::order(candidate, &self.health, Instant::now());
                for deployment in &deployments {
                    let model = &deployment.entry;
                    let Some(provider) = self.catalog.provider(&model.provider) else {
                        continue;
                    };
                    if let Availability::CoolingDown(wait) =
                        self.health
                            .check(&model.provider, &model.id, Instant::now())
                    {
                        misses.cooling = Some(misses.cooling.map_or(wait, |c| c.min(wait)));
                        continue;
                    }
                    let paying = self
                        .paying_key(&request.principal.organization_id, provider)
                        .await
                        .map_err(|e| e.with_attempts(attempts))?;
                    // A keyless provider (a local vLLM or Ollama) is called without one.
                    if paying.is_none() && !provider.keyless {
                        misses.last_error =
                            Some(ProviderError::NoKey(provider.name.clone()).into());
                        continue;
                    }
                    let (api_key, byok) = paying
                        .as_ref()
                        .map_or((None, false), |p| (Some(p.secret()), p.byok()));
                    let most = self.pricing(&request.principal, byok).max_payable(
                        &model.price,
                        plan.prompt_bound,
                        plan.max_completion(model),
                    );
                    let hold = match self.reserve(&request.principal, most).await {
                        Ok(hold) => hold,
                        Err(
                            e @ (BillingError::InsufficientCredits { .. }
                            | BillingError::BudgetExceeded { .. }),
                        ) => {
                            misses.last_error = Some(e.into());
                            continue;
                        }
                        Err(e) => return Err(GatewayError::from(e).with_attempts(attempts)),
                    };
                    // Counted against the deployment's caps only when it is
                    // about to be called.
                    let lease = match self.lease(deployment, lease_estimate).await {
                        Ok(lease) => lease,
                        Err(wait) => {
                            self.release(hold).await;
                            misses.capped = Some(misses.capped.map_or(wait, |c| c.min(wait)));
                            continue;
                        }
                    };
                    // Clamped, so that an SDK's large default is served (and
                    // held) as the model's own limit.
                    match &mut request.operation {
                        Operation::Chat(chat) => {
                            chat.max_tokens = plan.max_tokens.map(|v| clamp(v, model));
                            chat.max_completion_tokens =
                                plan.max_completion_tokens.map(|v| clamp(v, model));
                        }
                        Operation::Responses(call) => {
                            call.chat.max_tokens = plan.max_tokens.map(|v| clamp(v, model));
                            call.native.set_max_output_tokens(call.chat.max_tokens);
                        }
                        Operation::Embed(_) => {}
                    }
                    // The provider call continues the trace as a span of its own.
                    let (span_id, traceparent) = call
                        .trace
                        .map(|t| t.attempt())
                        .map_or((None, None), |(span, tp)| (Some(span), Some(tp)));
                    let target = Target {
                        provider: &provider.name,
                        kind: provider.kind,
                        base_url: &provider.base_url,
                        api_key,
                        upstream_model: &model.upstream,
                        max_output_tokens: model.max_output_tokens,
                        traceparent: traceparent.as_deref(),
                    };
                    attempts += 1;
                    let attempt_started = Instant::now();
                    let left = timeout.map(|t| t.saturating_sub(started.elapsed()));
                    let providers = &self.providers;
                    // A Responses call goes natively where the provider speaks
                    // Responses, else as its translation (so a fallback may
                    // cross kinds).
                    let wire = match &request.operation {
                        Operation::Responses(_) if provider.responses_api => Wire::Responses,
                        _ => Wire::OpenAi,
                    };
                    let reply = match &request.operation {
                        Operation::Responses(call) if wire == Wire::Responses => {
                            if call.chat.stream {
                                within(left, providers.respond_stream(&target, &call.native))
                                    .await
                                    .map(Reply::Stream)
                            } else {
                                within(left, providers.respond(&target, &call.native))
                                    .await
                                    .map(|a| Reply::Answer(a.body, a.usage))
                            }
                        }
                        Operation::Chat(chat)
                        | Operation::Responses(ResponsesCall { chat, .. })
                            if chat.stream =>
                        {
                            within(left, providers.chat_stream(&target, chat))
                                .await
                                .map(Reply::Stream)
                        }
                        Operation::Chat(chat)
                        | Operation::Responses(ResponsesCall { chat, .. }) => {
                            within(left, providers.chat(&target, chat))
                                .await
                                .map(|a| Reply::Answer(a.body, a.usage))
                        }
                        Operation::Embed(embed) => within(left, providers.embed(&target, embed))
                            .await
                            .map(|a| Reply::Answer(a.body, a.usage)),
                    };
                    let attempt = |status, error_code, provider_status| AttemptInfo {
                        provider: &model.provider,
                        model: &model.id,
                        deployment: &model.upstream,
                        status,
                        error_code,
                        provider_status,
                        byok,
                        duration: attempt_started.elapsed(),
                        span_id,
                    };
                    let error = match reply {
                        Ok(reply) => {
                            self.health.success(
                                &model.provider,
                                &model.id,
                                attempt_started.elapsed(),
                            );
                            self.observer
                                .attempt(&call, &attempt(AttemptStatus::Ok, None, None));
                            let route = Route {
                                model: model.clone(),
                                byok,
                                attempts,
                                quotas: admission.quotas(),
                                wire,
                            };
                            return Ok(match reply {
                                Reply::Answer(body, usage) => {
                                    let record = CallRecord {
                                        request_id: &request.request_id,
                                        principal: &request.principal,
                                        model,
                                        usage,
                                        byok,
                                        stream: false,
                                        status: UsageStatus::Ok,
                                        latency: started.elapsed(),
                                    };
                                    let settling = Instant::now();
                                    let cost = self.settle(hold, &record).await;
                                    let settlement = settling.elapsed();
                                    admission.used_tokens(usage.total());
                                    lease.used_tokens(usage.total());
                                    self.observer.finished(
                                        &call,
                                        &CallSummary {
                                            status: CallStatus::Ok,
                                            error_code: None,
                                            error_message: None,
                                            model: Some(&model.id),
                                            deployment: Some(&model.upstream),
                                            list_cost_usd_micros: Some(model.price.cost(&usage).0),
                                            answer: Some(&body),
                                            settlement: Some(settlement),
                                            provider: Some(&model.provider),
                                            usage: Some(usage),
                                            cost,
                                            byok,
                                            duration: started.elapsed(),
                                            time_to_first_byte: None,
                                            attempts,
                                        },
                                    );
                                    Outcome::Answer {
                                        body,
                                        usage,
                                        route,
                                        cost,
                                    }
                                }
                                Reply::Stream(upstream) => {
                                    let pump = Pump {
                                        gateway: self.clone(),
                                        call: call.clone(),
                                        model: model.clone(),
                                        byok,
                                        prompt_estimate: plan.prompt_estimate,
                                        admission: admission.clone(),
                                        lease,
                                        attempts,
                                        time_to_first_byte: started.elapsed(),
                                    };
                                    let events = Events::new(pump, upstream, hold, &self.streams);
                                    Outcome::Stream { route, events }
                                }
                            });
                        }
                        Err(error) => error,
                    };
                    self.release(hold).await;
                    tracing::info!(model = %model.id, error = %error, "provider call failed");
                    let retryable = error.is_retryable();
                    let provider_status = match &error {
                        ProviderError::Status { status, .. } => Some(*status),
                        _ => None,
                    };
                    if retryable && counts_against_health(&error, byok) {
                        let retry_after = match &error {
                            ProviderError::Status { retry_after, .. } => {
                                retry_after.map(Duration::from_secs)
                            }
                            _ => None,
                        };
                        if self.health.failure(
                            &model.provider,
                            &model.id,
                            retry_after,
                            Instant::now(),
                        ) {
                            tracing::warn!(provider = %model.provider, model = %model.id, "deployment is cooling down after failures");
                        }
                    }
                    let error = GatewayError::from(error);
                    self.observer.attempt(
                        &call,
                        &attempt(AttemptStatus::Failed, Some(error.code), provider_status),
                    );
                    if !retryable {
                        return Err(error.with_attempts(attempts));
                    }
                    misses.last_error = Some(error);
                    retry_worthy = true;
                }
            }
        }
        Err(misses.into_error().with_attempts(attempts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model(max_output_tokens: i64) -> ModelEntry {
        ModelEntry {
            id: "m".into(),
            provider: "p".into(),
            upstream: "m".into(),
            tier: 1,
            quality: 50,
            context_window: 0,
            max_output_tokens,
            price: Default::default(),
            mode: ModelMode::Chat,
            capabilities: Default::default(),
            deployments: Arc::from(Vec::new()),
        }
    }

    fn plan(body: Value) -> Plan {
        let request: ChatRequest = serde_json::from_value(body).unwrap();
        Plan::new(&Operation::Chat(request)).unwrap()
    }

    #[test]
    fn the_completion_held_is_clamped_and_counts_every_answer() {
        let messages = json!([{"role": "user", "content": "hi"}]);
        let asked = plan(json!({"model": "m", "messages": messages, "max_tokens": 50_000, "n": 3}));
        assert_eq!(asked.max_completion(&model(100)), 300);
        assert_eq!(asked.max_completion(&model(0)), 150_000);
        let unset = plan(json!({"model": "m", "messages": messages, "best_of": 2}));
        assert_eq!(unset.max_completion(&model(100)), 200);
        assert_eq!(clamp(50_000, &model(100)), 100);
    }
}
