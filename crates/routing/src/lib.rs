//! Routing: which catalog models may serve a request, in order of preference.
//!
//! `"auto"` means the request's power level: the configured candidate list
//! of that level, or, when none is configured, a rule over the catalog
//! (eco: cheapest first; precision: best quality first; balanced: best
//! quality per dollar first). Any other name is that model alone: a catalog
//! model, or else one resolved by auto-detection (`provider/model`, or a
//! configured pattern such as `claude-*` → anthropic).

pub mod balance;
pub mod fit;
pub mod health;
pub mod limits;

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
        "model `{0}` is not a valid model name: outside the catalog, a name may hold only letters, \
         digits and `-._:@+/`, with no empty, `.` or `..` part between slashes"
    )]
    InvalidModelName(String),
    #[error("model `{0}` is disabled in this gateway's catalog")]
    Disabled(String),
    #[error(
        "model `{model}` belongs to provider `{provider}`, but this gateway knows no price for it; \
         add it under `models` in the configuration file, or give its `auto_detect.patterns` entry a `price`"
    )]
    Unpriced { model: String, provider: String },
    #[error("model `{model}` is not a {wanted} model")]
    WrongMode { model: String, wanted: &'static str },
    #[error("no model is available for power level `{0}`")]
    NoCandidates(PowerLevel),
    #[error("model `{model}` cannot serve this request: {reason}")]
    Unfit { model: String, reason: String },
    #[error(
        "none of the {total} models that could serve this request can: the last one was \
         skipped because {reason}"
    )]
    NoneFit { total: usize, reason: String },
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
        None if !tollgate_core::is_detectable_name(model) => {
            return Err(RouteError::InvalidModelName(model.to_owned()));
        }
        None => match catalog.detect(model) {
            Some(Detection::Model(entry)) => entry,
            Some(Detection::Unpriced { provider }) => {
                return Err(RouteError::Unpriced {
                    model: model.to_owned(),
                    provider,
                });
            }
            None if catalog.disabled_models().iter().any(|m| m.id == model) => {
                return Err(RouteError::Disabled(model.to_owned()));
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

/// Most entries a request's `models` fallback list may have.
pub const MAX_FALLBACKS: usize = 10;

/// The candidates for `model`, then those of each name in `fallbacks` (an
/// OpenRouter-style `models` list), in order, each model once. Every name
/// must resolve: a typo in a fallback list is the caller's error, not a
/// silent skip.
pub fn candidates_with_fallbacks(
    catalog: &Catalog,
    model: &str,
    fallbacks: &[String],
    level: PowerLevel,
    mode: ModelMode,
) -> Result<Vec<Arc<ModelEntry>>, RouteError> {
    let mut list = candidates(catalog, model, level, mode)?;
    for name in fallbacks {
        for entry in candidates(catalog, name, level, mode)? {
            if !list.iter().any(|m| m.id == entry.id) {
                list.push(entry);
            }
        }
    }
    Ok(list)
}

/// `list` (a named model's candidates, when the request gave no fallbacks)
/// followed by the configuration's `fallbacks` of `model` that `allowed`
/// lets the caller use, each model once. The caller did not ask for these:
/// one that no longer resolves (disabled at runtime) or is not allowed is
/// left out rather than refused.
pub fn with_configured_fallbacks(
    catalog: &Catalog,
    mut list: Vec<Arc<ModelEntry>>,
    model: &str,
    level: PowerLevel,
    mode: ModelMode,
    allowed: impl Fn(&str) -> bool,
) -> Vec<Arc<ModelEntry>> {
    for name in catalog.fallbacks(model) {
        for entry in candidates(catalog, name, level, mode).unwrap_or_default() {
            if allowed(&entry.id) && !list.iter().any(|m| m.id == entry.id) {
                list.push(entry);
            }
        }
    }
    list
}

/// Whether a request of about `prompt_tokens` (a cheap estimate, bytes / 4)
/// asking for up to `max_tokens` completion tokens fits the model's
/// context window. A model with no known window (0) fits everything.
pub fn fits_context(model: &ModelEntry, prompt_tokens: i64, max_tokens: Option<i64>) -> bool {
    model.context_window <= 0
        || prompt_tokens.saturating_add(max_tokens.unwrap_or(0).max(0)) <= model.context_window
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

fn sort_by_rule(models: &mut Vec<Arc<ModelEntry>>, level: PowerLevel) {
    // Each model's price is worked out once, not at every comparison.
    let mut keyed: Vec<(i64, Arc<ModelEntry>)> =
        models.drain(..).map(|m| (blended_price(&m), m)).collect();
    match level {
        PowerLevel::Eco => {
            keyed.sort_by_key(|(price, m)| (*price, std::cmp::Reverse(m.quality)));
        }
        PowerLevel::Precision => {
            keyed.sort_by_key(|(price, m)| (std::cmp::Reverse(m.quality), *price));
        }
        PowerLevel::Balanced => keyed.sort_by(|(pa, a), (pb, b)| {
            // quality per dollar, compared without division: qa/pa > qb/pb ⇔ qa·pb > qb·pa
            let (qa, pa) = (i128::from(a.quality), i128::from((*pa).max(1)));
            let (qb, pb) = (i128::from(b.quality), i128::from((*pb).max(1)));
            (qb * pa).cmp(&(qa * pb)).then(b.quality.cmp(&a.quality))
        }),
    }
    models.extend(keyed.into_iter().map(|(_, m)| m));
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
    fn detected_names_that_could_steer_a_url_are_refused() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        for name in [
            "openai/../../../../escape",
            "openai/x?key=abc&",
            "openai/x#y",
            "openai/x%2F..",
            "openai//x",
            "openai/./x",
            "gpt-5 x",
        ] {
            assert!(
                matches!(
                    candidates(&catalog, name, PowerLevel::Eco, ModelMode::Chat),
                    Err(RouteError::InvalidModelName(_))
                ),
                "{name}"
            );
        }
        for name in [
            "openai/meta-llama/llama-3:free",
            "openai/claude@2024",
            "gpt-5.5",
        ] {
            assert!(
                candidates(&catalog, name, PowerLevel::Eco, ModelMode::Chat).is_ok(),
                "{name}"
            );
        }
    }

    #[test]
    fn configured_fallbacks_follow_a_named_model_as_far_as_they_are_allowed() {
        let config = format!("{CONFIG}fallbacks:\n  best: [mid, cheap]\n");
        let catalog = parse_catalog(&config, |_| None).unwrap();
        let with = |model: &str, allowed: &dyn Fn(&str) -> bool| {
            let list = candidates(&catalog, model, PowerLevel::Eco, ModelMode::Chat).unwrap();
            with_configured_fallbacks(
                &catalog,
                list,
                model,
                PowerLevel::Eco,
                ModelMode::Chat,
                allowed,
            )
        };
        assert_eq!(ids(&with("best", &|_| true)), ["best", "mid", "cheap"]);
        assert_eq!(ids(&with("best", &|id| id != "mid")), ["best", "cheap"]);
        assert_eq!(ids(&with("mid", &|_| true)), ["mid"]);
    }

    #[test]
    fn fallbacks_follow_the_model_each_once() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        let list = candidates_with_fallbacks(
            &catalog,
            "best",
            &["mid".to_owned(), "best".to_owned(), "cheap".to_owned()],
            PowerLevel::Eco,
            ModelMode::Chat,
        )
        .unwrap();
        assert_eq!(ids(&list), ["best", "mid", "cheap"]);
        assert!(
            candidates_with_fallbacks(
                &catalog,
                "best",
                &["nope".to_owned()],
                PowerLevel::Eco,
                ModelMode::Chat
            )
            .is_err()
        );
    }

    #[test]
    fn the_context_window_counts_prompt_and_max_tokens() {
        let config = "providers:\n  openai: { base_url: \"http://localhost/v1\" }\nmodels:\n  - { id: small, provider: openai, context_window: 1000 }\n";
        let catalog = parse_catalog(config, |_| None).unwrap();
        let small = catalog.model("small").unwrap();
        assert!(fits_context(small, 600, Some(400)));
        assert!(!fits_context(small, 600, Some(401)));
        assert!(!fits_context(small, 1001, None));
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
