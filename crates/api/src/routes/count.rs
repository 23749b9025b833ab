//! Prompt token counts without a call: `POST /v1/messages/count_tokens` and
//! Gemini's `:countTokens`. The count is the provider's own where it has a
//! counter (Anthropic's `count_tokens`, Gemini's `countTokens`), for the
//! model the request routes to first; for OpenAI-compatible providers, or
//! when the provider's counter fails, it is Tollgate's estimate: one token
//! per 4 bytes of the prompt's text, plus a few per message for framing.
//! Counting is free: nothing is held or charged.

use super::org_policy::{allowed_candidates, default_level};
use super::relay::paying_key;
use crate::error::ApiError;
use crate::state::AppState;
use std::time::Instant;
use tollgate_core::ModelMode;
use tollgate_providers::{ChatRequest, Target};
use tollgate_tenants::Principal;

/// The prompt tokens of `request` for the model it routes to.
pub(super) async fn prompt_tokens(
    state: &AppState,
    principal: &Principal,
    request: &ChatRequest,
) -> Result<i64, ApiError> {
    let level = default_level(principal);
    let candidates = tollgate_routing::candidates(
        &state.catalog.current(),
        &request.model,
        level,
        ModelMode::Chat,
    )?;
    let candidates = allowed_candidates(principal, &request.model, level, candidates)?;
    let estimate = (request.prompt_token_upper_bound() + 3) / 4;
    let Some(candidate) = candidates.first() else {
        return Ok(estimate);
    };
    let deployments = tollgate_routing::balance::order(candidate, &state.health, Instant::now());
    let Some(model) = deployments.first().map(|d| &d.entry) else {
        return Ok(estimate);
    };
    let Some(provider) = state.catalog.provider(&model.provider) else {
        return Ok(estimate);
    };
    let paying = paying_key(state, &principal.organization_id, provider).await?;
    if paying.is_none() && !provider.keyless {
        return Ok(estimate);
    }
    let target = Target {
        provider: &provider.name,
        kind: provider.kind,
        base_url: &provider.base_url,
        api_key: paying.as_ref().map(|p| p.secret()),
        upstream_model: &model.upstream,
        max_output_tokens: model.max_output_tokens,
    };
    match state.providers.count_tokens(&target, request).await {
        Ok(Some(n)) => Ok(n),
        Ok(None) => Ok(estimate),
        Err(e) => {
            tracing::info!(model = %model.id, error = %e, "the provider's token count failed; estimating");
            Ok(estimate)
        }
    }
}
