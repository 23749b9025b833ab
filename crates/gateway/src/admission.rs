//! Admission: whether this key may make this call at all, before any
//! provider is chosen. The key's scope, the organization's policy (allowed
//! models; its default power level is applied in [`crate::options`]) and
//! the rate limits of the key and the organization. All from memory: no
//! database round trip.
//!
//! A model outside the allow-list, named in `model` or in a `models`
//! fallback list, is refused with 403 (`model_not_allowed`): the model
//! exists, this organization may not use it. `auto` only considers the
//! allowed models of its power level; if none is allowed, that is a 403 too.

use crate::error::{GatewayError, seconds_up};
use std::sync::Arc;
use tollgate_core::{ErrorCode, ModelEntry, PowerLevel};
use tollgate_routing::limits::{Admission, Limits, RateLimiter, Refusal, Scope};
use tollgate_tenants::{KeyScope, Principal};

/// 403 unless the key has this scope (`chat`, `embeddings`).
pub fn require_scope(principal: &Principal, scope: KeyScope) -> Result<(), GatewayError> {
    if principal.has_scope(scope) {
        Ok(())
    } else {
        Err(GatewayError::new(
            ErrorCode::MissingScope,
            format!("this API key has no `{}` scope", scope.as_str()),
        ))
    }
}

/// The candidates this organization may use, in their order.
pub(crate) fn allowed_candidates(
    principal: &Principal,
    asked: &str,
    level: PowerLevel,
    candidates: Vec<Arc<ModelEntry>>,
) -> Result<Vec<Arc<ModelEntry>>, GatewayError> {
    if principal.allowed_models.is_none() {
        return Ok(candidates);
    }
    if asked == tollgate_routing::AUTO {
        let allowed: Vec<_> = candidates
            .into_iter()
            .filter(|m| principal.may_use_model(&m.id))
            .collect();
        if allowed.is_empty() {
            return Err(GatewayError::new(
                ErrorCode::ModelNotAllowed,
                format!(
                    "no model of power level `{}` is allowed for this organization",
                    level.as_str()
                ),
            ));
        }
        return Ok(allowed);
    }
    if let Some(refused) = candidates.iter().find(|m| !principal.may_use_model(&m.id)) {
        return Err(GatewayError::new(
            ErrorCode::ModelNotAllowed,
            format!(
                "model `{}` is not allowed for this organization",
                refused.id
            ),
        ));
    }
    Ok(candidates)
}

/// Admits a call of about `estimated_tokens` tokens for this caller under
/// its key's and organization's limits, or refuses it (429 with the wait
/// and the quotas). The admission is kept until the call or stream ends.
pub(crate) async fn admit(
    limiter: &RateLimiter,
    platform: Limits,
    principal: &Principal,
    estimated_tokens: i64,
) -> Result<Admission, GatewayError> {
    let key_limits = Limits {
        requests_per_minute: principal.rpm_limit,
        tokens_per_minute: principal.tpm_limit,
        concurrency: principal.max_concurrency,
    };
    // The organization's own limits, each falling back to the platform's.
    let org_limits = Limits {
        requests_per_minute: principal.org_rpm_limit.or(platform.requests_per_minute),
        tokens_per_minute: principal.org_tpm_limit.or(platform.tokens_per_minute),
        concurrency: principal.org_max_concurrency.or(platform.concurrency),
    };
    if key_limits.is_unlimited() && org_limits.is_unlimited() {
        // Nothing to count: skip naming the scopes.
        return Ok(Admission::unlimited(limiter));
    }
    let scopes = vec![
        Scope {
            name: format!("key:{}", principal.key_id),
            limits: key_limits,
        },
        Scope {
            name: format!("org:{}", principal.organization_id),
            limits: org_limits,
        },
    ];
    limiter
        .acquire(scopes, estimated_tokens)
        .await
        .map_err(refused)
}

fn refused(refusal: Refusal) -> GatewayError {
    let whose = if refusal.scope.starts_with("org:") {
        "organization"
    } else {
        "API key"
    };
    let wait = seconds_up(refusal.retry_after);
    let mut err = GatewayError::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "rate limit reached: this {whose} may make {} {}; retry after {wait}s",
            refusal.limit,
            refusal.kind.as_str(),
        ),
    )
    .with_retry_after(wait);
    err.refusal = Some(Box::new((refusal.retry_after, refusal.quotas)));
    err
}
