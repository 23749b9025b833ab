//! The gateway's own request options, parsed once for every surface: the
//! body's `power_level`, `models` (fallbacks) and `max_price` (taken out of
//! the body: never sent upstream) and the `x-tollgate-power-level` and
//! `x-tollgate-timeout-ms` headers.

use crate::error::GatewayError;
use crate::headers;
use serde_json::{Map, Value};
use std::time::Duration;
use tollgate_core::PowerLevel;
use tollgate_core::money::UsdMicros;
use tollgate_providers::ChatRequest;
use tollgate_routing::fit::MaxPrice;
use tollgate_tenants::Principal;

/// What a client asked of the gateway itself, beyond its provider request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallOptions {
    /// The power level for `"model": "auto"`.
    pub power_level: PowerLevel,
    /// Models to fall back to, in order, after the one asked for.
    pub models: Vec<String>,
    /// The most the client will pay per million tokens.
    pub max_price: MaxPrice,
    /// The client's own timeout: fallbacks, retries and each provider call
    /// end by then.
    pub timeout: Option<Duration>,
}

/// The option headers, as plain text (`Some("")` for a value that is not
/// text: it is refused like any other bad value).
#[derive(Debug, Clone, Copy, Default)]
pub struct OptionHeaders<'a> {
    /// `x-tollgate-power-level`
    pub power_level: Option<&'a str>,
    /// `x-tollgate-timeout-ms`
    pub timeout_ms: Option<&'a str>,
}

/// Takes the gateway's options out of a request body's extra fields and
/// the headers. The power level defaults to the organization's own default,
/// else `balanced`; the body's `power_level` wins over the header.
pub fn call_options(
    body: &mut Map<String, Value>,
    headers: OptionHeaders<'_>,
    principal: &Principal,
) -> Result<CallOptions, GatewayError> {
    let default = principal
        .default_power_level
        .unwrap_or(PowerLevel::Balanced);
    Ok(CallOptions {
        power_level: power_level(body.remove("power_level"), headers.power_level, default)?,
        models: fallback_models(body.remove("models"))?,
        max_price: max_price(body.remove("max_price"))?,
        timeout: timeout(headers.timeout_ms)?,
    })
}

fn power_level(
    from_body: Option<Value>,
    from_header: Option<&str>,
    default: PowerLevel,
) -> Result<PowerLevel, GatewayError> {
    let invalid =
        || GatewayError::bad_request("`power_level` must be one of eco, balanced, precision");
    match from_body {
        Some(Value::String(s)) => s.parse().map_err(|_| invalid()),
        Some(Value::Null) => Ok(default),
        Some(_) => Err(invalid()),
        None => match from_header {
            Some(v) => v.parse().map_err(|_| invalid()),
            None => Ok(default),
        },
    }
}

/// The OpenRouter-style `models` list: the models to fall back to.
fn fallback_models(value: Option<Value>) -> Result<Vec<String>, GatewayError> {
    let invalid = || {
        GatewayError::bad_request(format!(
            "`models` must be a list of at most {} model names",
            tollgate_routing::MAX_FALLBACKS
        ))
    };
    match value {
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

/// `max_price` (`{input_per_mtok, output_per_mtok}`, USD per million
/// tokens, as OpenRouter's `provider.max_price`).
fn max_price(value: Option<Value>) -> Result<MaxPrice, GatewayError> {
    match value {
        None | Some(Value::Null) => Ok(MaxPrice::default()),
        Some(Value::Object(map)) => {
            let mut max = MaxPrice::default();
            for (name, value) in map {
                let price = usd_per_mtok(&value).ok_or_else(|| {
                    GatewayError::bad_request(format!(
                        "`max_price.{name}` must be a price in USD per million tokens, a number \
                         of at least 0"
                    ))
                })?;
                match name.as_str() {
                    "input_per_mtok" | "prompt" => max.input_per_mtok = Some(price),
                    "output_per_mtok" | "completion" => max.output_per_mtok = Some(price),
                    _ => {
                        return Err(GatewayError::bad_request(format!(
                            "`max_price.{name}` is not a known field (input_per_mtok, output_per_mtok)"
                        )));
                    }
                }
            }
            Ok(max)
        }
        Some(_) => Err(GatewayError::bad_request(
            "`max_price` must be an object such as {\"input_per_mtok\": 1, \"output_per_mtok\": 4}",
        )),
    }
}

/// The client's own timeout (1 ms to 1 hour).
fn timeout(value: Option<&str>) -> Result<Option<Duration>, GatewayError> {
    let Some(value) = value else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| (1..=3_600_000).contains(ms))
        .map(|ms| Some(Duration::from_millis(ms)))
        .ok_or_else(|| {
            GatewayError::bad_request(format!(
                "header `{}` must be a whole number of milliseconds from 1 to 3600000",
                headers::TIMEOUT_MS
            ))
        })
}

/// Most answers one call may ask for (`n`, `best_of`), as OpenAI allows.
const MAX_ANSWERS: i64 = 128;

/// How many answers the provider may produce for this request: the larger
/// of `n` and `best_of` (each completion is paid for, even those `best_of`
/// does not return). Every one is in the hold and the charge.
pub(crate) fn answers(request: &ChatRequest) -> Result<i64, GatewayError> {
    let mut most = 1;
    for name in ["n", "best_of"] {
        match request.extra.get(name) {
            None | Some(Value::Null) => {}
            Some(v) => {
                let n = v
                    .as_i64()
                    .filter(|n| (1..=MAX_ANSWERS).contains(n))
                    .ok_or_else(|| {
                        GatewayError::bad_request(format!(
                            "`{name}` must be an integer from 1 to {MAX_ANSWERS}"
                        ))
                    })?;
                most = most.max(n);
            }
        }
    }
    Ok(most)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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

    #[test]
    fn the_body_power_level_wins_over_the_header() {
        let level = power_level(Some(json!("eco")), Some("precision"), PowerLevel::Balanced);
        assert_eq!(level.unwrap(), PowerLevel::Eco);
        let level = power_level(None, Some("precision"), PowerLevel::Balanced);
        assert_eq!(level.unwrap(), PowerLevel::Precision);
        assert!(power_level(None, Some(""), PowerLevel::Balanced).is_err());
    }

    #[test]
    fn timeouts_are_whole_milliseconds_up_to_an_hour() {
        assert_eq!(
            timeout(Some(" 250 ")).unwrap(),
            Some(Duration::from_millis(250))
        );
        assert!(timeout(Some("0")).is_err());
        assert!(timeout(Some("3600001")).is_err());
        assert_eq!(timeout(None).unwrap(), None);
    }

    #[test]
    fn every_answer_asked_for_counts() {
        let request = |extra: Value| -> ChatRequest {
            let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
            if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
                b.extend(e.clone());
            }
            serde_json::from_value(body).unwrap()
        };
        assert_eq!(answers(&request(json!({}))).unwrap(), 1);
        assert_eq!(answers(&request(json!({"n": 4}))).unwrap(), 4);
        assert_eq!(answers(&request(json!({"n": 2, "best_of": 5}))).unwrap(), 5);
        assert!(answers(&request(json!({"n": 0}))).is_err());
        assert!(answers(&request(json!({"n": "3"}))).is_err());
    }
}
