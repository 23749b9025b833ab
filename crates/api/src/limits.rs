//! The `x-ratelimit-*` headers OpenAI clients read, from the quotas the
//! gateway's rate limits report (on an answer, and on a 429).

use axum::http::{HeaderMap, HeaderValue};
use std::time::Duration;
use tollgate_routing::limits::Quotas;

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
