//! Routing: which catalog models may serve a request, in order of preference.
//!
//! `"auto"` means the request's power level: the configured candidate list
//! of that level, or, when none is configured, a rule over the catalog
//! (eco: cheapest first; precision: best quality first; balanced: best
//! quality per dollar first). Any other name is that model alone: a catalog
//! model, or else one resolved by auto-detection (`provider/model`, or a
//! configured pattern such as `claude-*` → anthropic).

use std::sync::Arc;
use tollgate_core::{Catalog, Detection, ModelEntry, ModelMode, PowerLevel};

/// The model name that asks for routing by power level.
pub const AUTO: &str = "auto";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteError {
    #[error(
        "model `{0}` does not exist in this gateway's catalog; use GET /v1/models to list the models, \
         or add it under `models` in the configuration file (or name a configured provider, as in \
         `provider/model`)"
    )]
    UnknownModel(String),
    #[error(
        "model `{model}` belongs to provider `{provider}`, but this gateway knows no price for it; \
         add it under `models` in the configuration file, or give its `auto_detect.patterns` entry a `price`"
    )]
    Unpriced { model: String, provider: String },
    #[error("model `{model}` is not a {wanted} model")]
    WrongMode { model: String, wanted: &'static str },
    #[error("no model is available for power level `{0}`")]
    NoCandidates(PowerLevel),
}

fn mode_name(mode: ModelMode) -> &'static str {
    match mode {
        ModelMode::Chat => "chat",
        ModelMode::Embedding => "embedding",
    }
}

/// The models that may serve a request for `model`, best first.
pub fn candidates(
    catalog: &Catalog,
    model: &str,
    level: PowerLevel,
    mode: ModelMode,
) -> Result<Vec<Arc<ModelEntry>>, RouteError> {
    if model == AUTO && mode == ModelMode::Chat {
        return by_power_level(catalog, level);
    }
    let entry = match catalog.model(model) {
        Some(entry) => entry.clone(),
        None => match catalog.detect(model) {
            Some(Detection::Model(entry)) => entry,
            Some(Detection::Unpriced { provider }) => {
                return Err(RouteError::Unpriced {
                    model: model.to_owned(),
                    provider,
                });
            }
            None => return Err(RouteError::UnknownModel(model.to_owned())),
        },
    };
    if entry.mode != mode {
        return Err(RouteError::WrongMode {
            model: model.to_owned(),
            wanted: mode_name(mode),
        });
    }
    Ok(vec![entry])
}

fn by_power_level(
    catalog: &Catalog,
    level: PowerLevel,
) -> Result<Vec<Arc<ModelEntry>>, RouteError> {
    let configured = catalog.power_level(level);
    let mut list: Vec<Arc<ModelEntry>> = if configured.is_empty() {
        let mut chat: Vec<Arc<ModelEntry>> = catalog
            .models()
            .iter()
            .filter(|m| m.mode == ModelMode::Chat)
            .cloned()
            .collect();
        sort_by_rule(&mut chat, level);
        chat
    } else {
        configured
            .iter()
            .filter_map(|id| catalog.model(id).cloned())
            .collect()
    };
    list.dedup_by(|a, b| a.id == b.id);
    if list.is_empty() {
        return Err(RouteError::NoCandidates(level));
    }
    Ok(list)
}

/// A model's blended price per million tokens (3 input : 1 output), in micro-dollars.
fn blended_price(m: &ModelEntry) -> i64 {
    (3 * m.price.input_per_mtok.0 + m.price.output_per_mtok.0) / 4
}

fn sort_by_rule(models: &mut [Arc<ModelEntry>], level: PowerLevel) {
    match level {
        PowerLevel::Eco => models.sort_by_key(|m| (blended_price(m), std::cmp::Reverse(m.quality))),
        PowerLevel::Precision => {
            models.sort_by_key(|m| (std::cmp::Reverse(m.quality), blended_price(m)))
        }
        PowerLevel::Balanced => models.sort_by(|a, b| {
            // quality per dollar, compared without division: qa/pa > qb/pb ⇔ qa·pb > qb·pa
            let (qa, pa) = (i128::from(a.quality), i128::from(blended_price(a).max(1)));
            let (qb, pb) = (i128::from(b.quality), i128::from(blended_price(b).max(1)));
            (qb * pa).cmp(&(qa * pb)).then(b.quality.cmp(&a.quality))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_core::config::parse_catalog;

    const CONFIG: &str = r#"
providers:
  openai: { base_url: "http://localhost/v1" }
models:
  - { id: cheap, provider: openai, quality: 50, price: { input_per_mtok: 0.1, output_per_mtok: 0.4 } }
  - { id: mid, provider: openai, quality: 80, price: { input_per_mtok: 0.4, output_per_mtok: 1.6 } }
  - { id: best, provider: openai, quality: 95, price: { input_per_mtok: 15, output_per_mtok: 75 } }
  - { id: emb, provider: openai, mode: embedding }
"#;

    fn ids(list: &[Arc<ModelEntry>]) -> Vec<&str> {
        list.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn rule_orders_each_level_without_configured_lists() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        let eco = candidates(&catalog, AUTO, PowerLevel::Eco, ModelMode::Chat).unwrap();
        assert_eq!(ids(&eco), ["cheap", "mid", "best"]);
        let precision = candidates(&catalog, AUTO, PowerLevel::Precision, ModelMode::Chat).unwrap();
        assert_eq!(ids(&precision), ["best", "mid", "cheap"]);
        let balanced = candidates(&catalog, AUTO, PowerLevel::Balanced, ModelMode::Chat).unwrap();
        assert_eq!(ids(&balanced)[0], "cheap");
    }

    #[test]
    fn configured_lists_win_and_names_resolve() {
        let config = format!("{CONFIG}power_levels:\n  eco: [mid, cheap]\n");
        let catalog = parse_catalog(&config, |_| None).unwrap();
        let eco = candidates(&catalog, AUTO, PowerLevel::Eco, ModelMode::Chat).unwrap();
        assert_eq!(ids(&eco), ["mid", "cheap"]);
        let named = candidates(&catalog, "best", PowerLevel::Eco, ModelMode::Chat).unwrap();
        assert_eq!(ids(&named), ["best"]);
    }

    #[test]
    fn names_outside_the_catalog_are_auto_detected() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        let detected = candidates(&catalog, "gpt-5.5", PowerLevel::Eco, ModelMode::Chat).unwrap();
        assert_eq!(detected[0].provider, "openai");
        assert_eq!(detected[0].upstream, "gpt-5.5");
        // Priced at the provider's dearest chat model: never below list.
        assert_eq!(detected[0].price.output_per_mtok.0, 75_000_000);
        let prefixed =
            candidates(&catalog, "openai/mid", PowerLevel::Eco, ModelMode::Chat).unwrap();
        assert_eq!(prefixed[0].id, "mid");
        assert!(matches!(
            candidates(
                &catalog,
                "claude-opus-4-7",
                PowerLevel::Eco,
                ModelMode::Chat
            ),
            Err(RouteError::UnknownModel(_))
        ));
        let message = candidates(&catalog, "llama", PowerLevel::Eco, ModelMode::Chat)
            .unwrap_err()
            .to_string();
        assert!(message.contains("add it under `models`"), "{message}");
    }

    #[test]
    fn unknown_and_wrong_mode_models_are_refused() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        assert!(matches!(
            candidates(&catalog, "nope", PowerLevel::Eco, ModelMode::Chat),
            Err(RouteError::UnknownModel(_))
        ));
        assert!(matches!(
            candidates(&catalog, "emb", PowerLevel::Eco, ModelMode::Chat),
            Err(RouteError::WrongMode { .. })
        ));
    }
}
