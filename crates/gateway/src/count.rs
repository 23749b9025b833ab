//! Prompt token counts without a call (Anthropic's `count_tokens`,
//! Gemini's `countTokens`): the provider's own count where it has a
//! counter, for the model the request routes to first; for
//! OpenAI-compatible providers, or when the provider's counter fails,
//! Tollgate's estimate: one token per 4 bytes of the prompt's text, plus a
//! few per message for framing. Counting is free: nothing is held or
//! charged, and no rate limit is taken.

use crate::Gateway;
use crate::error::GatewayError;
use crate::options::CallOptions;
use std::time::Instant;
use tollgate_core::ModelMode;
use tollgate_providers::{ChatRequest, Target};
use tollgate_tenants::Principal;

impl Gateway {
    /// The prompt tokens of `request` for the model it routes to; the
    /// provider's counter gets the client's `traceparent`, if any.
    pub async fn count_tokens(
        &self,
        principal: &Principal,
        request: &ChatRequest,
        options: &CallOptions,
        traceparent: Option<&str>,
    ) -> Result<i64, GatewayError> {
        let estimate = (request.prompt_token_upper_bound() + 3) / 4;
        let candidates = self.candidates(principal, &request.model, options, ModelMode::Chat)?;
        let Some(candidate) = candidates.first() else {
            return Ok(estimate);
        };
        let deployments = tollgate_routing::balance::order(candidate, &self.health, Instant::now());
        let Some(model) = deployments.first().map(|d| &d.entry) else {
            return Ok(estimate);
        };
        let Some(provider) = self.catalog.provider(&model.provider) else {
            return Ok(estimate);
        };
        let paying = self
            .paying_key(&principal.organization_id, provider)
            .await?;
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
            traceparent,
        };
        match self.providers.count_tokens(&target, request).await {
            Ok(Some(n)) => Ok(n),
            Ok(None) => Ok(estimate),
            Err(e) => {
                tracing::info!(model = %model.id, error = %e, "the provider's token count failed; estimating");
                Ok(estimate)
            }
        }
    }
}
