//! What the relay needs beyond the candidate list: what a request needs of
//! its model (capabilities, the `max_price` ceiling), and a call's lease on
//! the deployment it goes to (its place among the calls in flight, and its
//! share of the deployment's own RPM/TPM caps).

use crate::error::ApiError;
use crate::state::AppState;
use serde_json::Value;
use std::time::Duration;
use tollgate_core::Deployment;
use tollgate_core::money::UsdMicros;
use tollgate_providers::ChatRequest;
use tollgate_routing::fit::{MaxPrice, Needs};
use tollgate_routing::health::InFlight;
use tollgate_routing::limits::{Admission, Limits, Scope};

/// What `request` needs of its model. Takes out the body's `max_price`
/// (`{input_per_mtok, output_per_mtok}`, USD per million tokens, as
/// OpenRouter's `provider.max_price`): it is never sent upstream.
pub(super) fn needs_of(request: &mut ChatRequest) -> Result<Needs, ApiError> {
    let max_price = match request.extra.remove("max_price") {
        None | Some(Value::Null) => MaxPrice::default(),
        Some(Value::Object(map)) => {
            let mut max = MaxPrice::default();
            for (name, value) in map {
                let price = usd_per_mtok(&value).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "`max_price.{name}` must be a price in USD per million tokens, a number \
                         of at least 0"
                    ))
                })?;
                match name.as_str() {
                    "input_per_mtok" | "prompt" => max.input_per_mtok = Some(price),
                    "output_per_mtok" | "completion" => max.output_per_mtok = Some(price),
                    _ => {
                        return Err(ApiError::bad_request(format!(
                            "`max_price.{name}` is not a known field (input_per_mtok, output_per_mtok)"
                        )));
                    }
                }
            }
            max
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "`max_price` must be an object such as {\"input_per_mtok\": 1, \"output_per_mtok\": 4}",
            ));
        }
    };
    let non_empty = |name: &str| match request.extra.get(name) {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Null) | None => false,
        Some(_) => true,
    };
    let tools = non_empty("tools") || non_empty("functions");
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
    Ok(Needs {
        tools,
        vision,
        json,
        max_price,
    })
}

/// A JSON number of USD as integer micro-dollars, read from its decimal
/// text (no floating point): `0.15` → 150 000.
fn usd_per_mtok(value: &Value) -> Option<UsdMicros> {
    let Value::Number(n) = value else {
        return None;
    };
    decimal_micros(&n.to_string()).map(UsdMicros)
}

/// `digits[.digits][e±digits]` × 10⁶, rounded down; `None` when negative,
/// malformed or above 10¹² USD.
fn decimal_micros(text: &str) -> Option<i64> {
    let (mantissa, exponent) = match text.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (text, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    // digits × 10^(6 + exponent - frac.len())
    let digits: String = format!("{whole}{frac}").trim_start_matches('0').to_owned();
    let shift = 6 + i64::from(exponent) - i64::try_from(frac.len()).ok()?;
    if digits.is_empty() {
        return Some(0);
    }
    if shift < 0 {
        let keep = i64::try_from(digits.len()).ok()? + shift;
        if keep <= 0 {
            return Some(0);
        }
        let keep = usize::try_from(keep).ok()?;
        return digits.get(..keep)?.parse().ok();
    }
    if i64::try_from(digits.len()).ok()? + shift > 18 {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    value.checked_mul(10_i64.checked_pow(u32::try_from(shift).ok()?)?)
}

/// A call's hold on its deployment, kept until the answer (or the stream)
/// ends.
#[derive(Clone)]
pub(super) struct DeploymentLease {
    _in_flight: Option<InFlight>,
    caps: Option<Admission>,
}

impl DeploymentLease {
    /// Replaces the tokens estimated against the deployment's TPM cap by
    /// the call's real count.
    pub(super) async fn used_tokens(&self, tokens: i64) {
        if let Some(caps) = &self.caps {
            caps.used_tokens(tokens).await;
        }
    }
}

/// Takes a place on `deployment` for a call of about `estimated_tokens`,
/// or says how long until its RPM/TPM caps have room. The caps are counted
/// like the keys' limits: in Redis when it is configured, so they hold
/// across replicas.
pub(super) async fn lease(
    state: &AppState,
    deployment: &Deployment,
    estimated_tokens: i64,
) -> Result<DeploymentLease, Duration> {
    let model = &deployment.entry;
    let caps = if deployment.rpm.is_some() || deployment.tpm.is_some() {
        let scope = Scope {
            name: format!("dep:{}/{}", model.provider, model.id),
            limits: Limits {
                requests_per_minute: deployment.rpm,
                tokens_per_minute: deployment.tpm,
                concurrency: None,
            },
        };
        match state.limiter.acquire(vec![scope], estimated_tokens).await {
            Ok(admission) => Some(admission),
            Err(refusal) => return Err(refusal.retry_after),
        }
    } else {
        None
    };
    Ok(DeploymentLease {
        _in_flight: state.health.begin(&model.provider, &model.id),
        caps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_prices_become_exact_micros() {
        assert_eq!(decimal_micros("0.15"), Some(150_000));
        assert_eq!(decimal_micros("15"), Some(15_000_000));
        assert_eq!(decimal_micros("0"), Some(0));
        assert_eq!(decimal_micros("1e-5"), Some(10));
        assert_eq!(decimal_micros("2.5e1"), Some(25_000_000));
        assert_eq!(decimal_micros("0.0000001"), Some(0));
        assert_eq!(decimal_micros("-1"), None);
        assert_eq!(decimal_micros("1e30"), None);
    }
}
