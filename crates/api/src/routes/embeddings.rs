//! `POST /v1/embeddings`: OpenAI Embeddings, billed by input tokens.

use super::org_policy::allowed_candidates;
use super::relay::{CallRecord, gateway_headers, max_payable, paying_key, reserve, settle};
use crate::error::ApiError;
use crate::extract::{BodyBytes, OrgKey, RequestId, parse_json, require_scope};
use crate::limits::{admit, quota_headers};
use crate::state::AppState;
use axum::Extension;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Instant;
use tollgate_billing::UsageStatus;
use tollgate_core::{ModelEntry, ModelMode, PowerLevel};
use tollgate_providers::{EmbeddingRequest, ProviderError, Target};
use tollgate_routing::limits::Admission;
use tollgate_tenants::{KeyScope, Principal};

pub async fn embeddings(
    State(state): State<AppState>,
    axum::Extension(RequestId(request_id)): Extension<RequestId>,
    OrgKey(principal): OrgKey,
    BodyBytes(body): BodyBytes,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    require_scope(&principal, KeyScope::Embeddings)?;
    let request: EmbeddingRequest = parse_json(&body)?;
    serve(state, request_id, principal, body.len(), request, started).await
}

/// Serves an embeddings request, whichever surface decoded it.
pub(super) async fn serve(
    state: AppState,
    request_id: Arc<str>,
    principal: Arc<Principal>,
    body_len: usize,
    request: EmbeddingRequest,
    started: Instant,
) -> Result<Response, ApiError> {
    request.validate().map_err(ApiError::bad_request)?;
    let candidates = tollgate_routing::candidates(
        &state.catalog.current(),
        &request.model,
        PowerLevel::Balanced,
        ModelMode::Embedding,
    )?;
    let candidates =
        allowed_candidates(&principal, &request.model, PowerLevel::Balanced, candidates)?;
    let estimate = i64::try_from(body_len / 4).unwrap_or(i64::MAX);
    let admission = admit(&state, &principal, estimate).await?;
    let quotas = admission.quotas();
    // As for chat: a task of its own, so a client that goes away cannot
    // leave a hold behind.
    let call = state.streams.spawn(relay(
        state.clone(),
        principal,
        request,
        request_id,
        candidates,
        started,
        admission,
    ));
    let mut response = call.await.map_err(ApiError::internal)??;
    quota_headers(response.headers_mut(), quotas);
    Ok(response)
}

async fn relay(
    state: AppState,
    principal: Arc<Principal>,
    request: EmbeddingRequest,
    request_id: Arc<str>,
    candidates: Vec<Arc<ModelEntry>>,
    started: Instant,
    admission: Admission,
) -> Result<Response, ApiError> {
    let candidate = candidates
        .first()
        .ok_or_else(|| ApiError::unavailable("no embedding model available"))?;
    // One deployment of the model, chosen as for chat (no fallback here).
    let chosen = tollgate_routing::balance::order(candidate, &state.health, Instant::now());
    let model = &chosen
        .first()
        .ok_or_else(|| ApiError::unavailable("no embedding model available"))?
        .entry;
    let provider = state
        .catalog
        .provider(&model.provider)
        .ok_or_else(|| ApiError::unavailable("the model's provider is not configured"))?;
    let paying = paying_key(&state, &principal.organization_id, provider).await?;
    // A keyless provider (a local vLLM or Ollama) is called without one.
    if paying.is_none() && !provider.keyless {
        return Err(ProviderError::NoKey(provider.name.clone()).into());
    }
    let (api_key, byok) = paying
        .as_ref()
        .map_or((None, false), |p| (Some(p.secret()), p.byok()));
    let most = max_payable(
        &state,
        &principal,
        byok,
        &model.price,
        request.input_token_upper_bound(),
        0,
    );
    let hold = reserve(&state, &principal, most).await?;
    let target = Target {
        provider: &provider.name,
        kind: provider.kind,
        base_url: &provider.base_url,
        api_key,
        upstream_model: &model.upstream,
        max_output_tokens: model.max_output_tokens,
    };
    let answer = match state.providers.embed(&target, &request).await {
        Ok(answer) => answer,
        Err(e) => {
            state
                .metrics
                .record_call(&model.id, &model.provider, "error");
            if let Err(e) = state.billing.release(hold).await {
                tracing::error!(error = %e, "releasing a hold failed");
            }
            return Err(e.into());
        }
    };
    state.metrics.record_call(&model.id, &model.provider, "ok");
    let record = CallRecord {
        request_id: &request_id,
        api_key_id: &principal.key_id,
        mode: principal.billing_mode,
        markup_percent: principal.markup_percent,
        model,
        usage: answer.usage,
        byok,
        stream: false,
        status: UsageStatus::Ok,
        latency: started.elapsed(),
    };
    let charged = settle(&state, hold, &record).await;
    admission.used_tokens(answer.usage.total()).await;
    let mut response = ([(header::CONTENT_TYPE, "application/json")], answer.body).into_response();
    gateway_headers(response.headers_mut(), model, byok, charged);
    // One candidate, called once.
    response.headers_mut().insert(
        "x-tollgate-attempts",
        axum::http::HeaderValue::from_static("1"),
    );
    Ok(response)
}
