//! Rate limits on the data plane: the caller's API key and organization
//! limits, checked by [`tollgate_routing::limits`], mapped to 429 and the
//! `x-ratelimit-*` headers OpenAI clients read.

use crate::error::ApiError;
use crate::state::AppState;
use axum::http::{HeaderMap, HeaderValue};
use std::time::Duration;
use tollgate_routing::limits::{Admission, Limits, Quotas, Refusal, Scope};
use tollgate_tenants::Principal;

/// Admits a call of about `estimated_tokens` tokens for this caller, or
/// refuses it with a 429 carrying `Retry-After` and the quota headers.
pub async fn admit(
    state: &AppState,
    principal: &Principal,
    estimated_tokens: i64,
) -> Result<Admission, ApiError> {
    let key_limits = Limits {
        requests_per_minute: principal.rpm_limit,
        tokens_per_minute: principal.tpm_limit,
        concurrency: principal.max_concurrency,
    };
    let org_limits = org_limits(principal, state.org_limits);
    if key_limits.is_unlimited() && org_limits.is_unlimited() {
        // Nothing to count: skip naming the scopes.
        return Ok(Admission::unlimited(&state.limiter));
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
    state
        .limiter
        .acquire(scopes, estimated_tokens)
        .await
        .map_err(|refusal| {
            let scope = if refusal.scope.starts_with("org:") {
                "organization"
            } else {
                "key"
            };
            state
                .metrics
                .rate_limit_refusals
                .get_or_create(&crate::metrics::RefusalLabels { scope })
                .inc();
            refused(refusal)
        })
}

/// The organization's own limits (cached with its keys), each falling back
/// to the platform default (`TOLLGATE_ORG_*`) when unset.
fn org_limits(principal: &Principal, platform: Limits) -> Limits {
    Limits {
        requests_per_minute: principal.org_rpm_limit.or(platform.requests_per_minute),
        tokens_per_minute: principal.org_tpm_limit.or(platform.tokens_per_minute),
        concurrency: principal.org_max_concurrency.or(platform.concurrency),
    }
}

fn refused(refusal: Refusal) -> ApiError {
    let whose = if refusal.scope.starts_with("org:") {
        "organization"
    } else {
        "API key"
    };
    let mut err = ApiError::rate_limited(format!(
        "rate limit reached: this {whose} may make {} {}; retry after {}s",
        refusal.limit,
        refusal.kind.as_str(),
        seconds_up(refusal.retry_after)
    ));
    err.retry_after = Some(seconds_up(refusal.retry_after));
    let mut headers = HeaderMap::new();
    quota_headers(&mut headers, refusal.quotas);
    if let Ok(v) = HeaderValue::from_str(&refusal.retry_after.as_millis().to_string()) {
        headers.insert("retry-after-ms", v);
    }
    err.headers = headers
        .into_iter()
        .filter_map(|(name, value)| Some((name?, value)))
        .collect();
    err
}

fn seconds_up(d: Duration) -> u64 {
    d.as_millis()
        .div_ceil(1000)
        .max(1)
        .try_into()
        .unwrap_or(u64::MAX)
}

/// OpenAI's duration format for the reset headers: `1s`, `6m0s`, `250ms`.
fn reset_text(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// Sets `x-ratelimit-{limit,remaining,reset}-{requests,tokens}` for the
/// tightest limits that apply; nothing when none does.
pub fn quota_headers(headers: &mut HeaderMap, quotas: Quotas) {
    for (suffix, quota) in [("requests", quotas.requests), ("tokens", quotas.tokens)] {
        let Some(q) = quota else { continue };
        let values = [
            ("limit", q.limit.to_string()),
            ("remaining", q.remaining.to_string()),
            ("reset", reset_text(q.reset)),
        ];
        for (what, value) in values {
            if let (Ok(name), Ok(value)) = (
                axum::http::HeaderName::try_from(format!("x-ratelimit-{what}-{suffix}")),
                HeaderValue::from_str(&value),
            ) {
                headers.insert(name, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_read_like_openai_s() {
        assert_eq!(reset_text(Duration::from_millis(250)), "250ms");
        assert_eq!(reset_text(Duration::from_millis(1500)), "2s");
        assert_eq!(reset_text(Duration::from_secs(360)), "6m0s");
    }
}
