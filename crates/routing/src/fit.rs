//! Which candidates can serve a request: capabilities (tools, vision, JSON
//! mode) and the request's price ceiling (`max_price`).
//!
//! A model the client named that cannot serve the request is the client's
//! error (400 naming why); for `auto` and fallback lists, unfit candidates
//! are skipped, and when none is left that is a 400 naming the need.

use crate::{AUTO, RouteError};
use std::sync::Arc;
use tollgate_core::ModelEntry;
use tollgate_core::money::UsdMicros;

/// What a request needs of the model that serves it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub tools: bool,
    pub vision: bool,
    pub json: bool,
    pub max_price: MaxPrice,
}

/// The most the client will pay, per million tokens (`None`: no ceiling).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaxPrice {
    pub input_per_mtok: Option<UsdMicros>,
    pub output_per_mtok: Option<UsdMicros>,
}

/// Why `model` cannot serve a request with these `needs`, if it cannot.
pub fn unfit(model: &ModelEntry, needs: &Needs) -> Option<String> {
    let caps = model.capabilities;
    if needs.tools && !caps.tools {
        return Some("it does not support tools (`tools` / `functions`)".to_owned());
    }
    if needs.vision && !caps.vision {
        return Some("it does not support image input".to_owned());
    }
    if needs.json && !caps.json {
        return Some("it does not support JSON mode (`response_format`)".to_owned());
    }
    let above = |price: UsdMicros, max: Option<UsdMicros>| max.is_some_and(|max| price > max);
    if above(model.price.input_per_mtok, needs.max_price.input_per_mtok) {
        return Some(format!(
            "its input price ({} USD per million tokens) is above `max_price.input_per_mtok`",
            usd(model.price.input_per_mtok)
        ));
    }
    if above(model.price.output_per_mtok, needs.max_price.output_per_mtok) {
        return Some(format!(
            "its output price ({} USD per million tokens) is above `max_price.output_per_mtok`",
            usd(model.price.output_per_mtok)
        ));
    }
    None
}

fn usd(micros: UsdMicros) -> String {
    let whole = micros.0 / 1_000_000;
    let frac = micros.0 % 1_000_000;
    let text = format!("{whole}.{frac:06}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Keeps the candidates that can serve the request. `requested` is the
/// request's `model`: when it names a model (not `auto`) that cannot serve
/// the request, that is an error naming why.
pub fn fitting(
    candidates: Vec<Arc<ModelEntry>>,
    requested: &str,
    needs: &Needs,
) -> Result<Vec<Arc<ModelEntry>>, RouteError> {
    if *needs == Needs::default() {
        return Ok(candidates);
    }
    if requested != AUTO
        && let Some(first) = candidates.first()
        && let Some(reason) = unfit(first, needs)
    {
        return Err(RouteError::Unfit {
            model: first.id.clone(),
            reason,
        });
    }
    let total = candidates.len();
    let mut last_reason = None;
    let kept: Vec<Arc<ModelEntry>> = candidates
        .into_iter()
        .filter(|m| match unfit(m, needs) {
            Some(reason) => {
                last_reason = Some(reason);
                false
            }
            None => true,
        })
        .collect();
    match (kept.is_empty(), last_reason) {
        (true, Some(reason)) => Err(RouteError::NoneFit { total, reason }),
        _ => Ok(kept),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::parse_catalog;

    const CONFIG: &str = r#"
providers:
  p: { kind: openai, base_url: "http://p/v1" }
models:
  - { id: plain, provider: p, supports_tools: false, supports_vision: false, supports_json: false, price: { input_per_mtok: 0.1, output_per_mtok: 0.2 } }
  - { id: full, provider: p, price: { input_per_mtok: 3, output_per_mtok: 15 } }
"#;

    fn list(ids: &[&str]) -> Vec<Arc<ModelEntry>> {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        ids.iter()
            .map(|id| catalog.model(id).unwrap().clone())
            .collect()
    }

    #[test]
    fn a_named_model_without_the_capability_is_refused_with_the_reason() {
        let needs = Needs {
            tools: true,
            ..Needs::default()
        };
        let err = fitting(list(&["plain", "full"]), "plain", &needs).unwrap_err();
        assert!(err.to_string().contains("does not support tools"), "{err}");
    }

    #[test]
    fn auto_skips_unfit_candidates_and_fails_when_none_is_left() {
        let vision = Needs {
            vision: true,
            ..Needs::default()
        };
        let kept = fitting(list(&["plain", "full"]), AUTO, &vision).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "full");
        let cheap = Needs {
            max_price: MaxPrice {
                input_per_mtok: None,
                output_per_mtok: Some(UsdMicros(1_000_000)),
            },
            vision: true,
            ..Needs::default()
        };
        let err = fitting(list(&["plain", "full"]), AUTO, &cheap).unwrap_err();
        assert!(err.to_string().contains("15 USD"), "{err}");
    }

    #[test]
    fn a_price_ceiling_at_the_price_admits_the_model() {
        let needs = Needs {
            max_price: MaxPrice {
                input_per_mtok: Some(UsdMicros(3_000_000)),
                output_per_mtok: Some(UsdMicros(15_000_000)),
            },
            ..Needs::default()
        };
        assert_eq!(fitting(list(&["full"]), "full", &needs).unwrap().len(), 1);
    }
}
