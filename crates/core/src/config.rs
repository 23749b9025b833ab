//! The YAML configuration file (contract section 2): providers, models and
//! power levels. `${NAME}` in any string is replaced by the environment
//! variable NAME (empty when unset). Errors name the exact field, e.g.
//! `models[2].price.input_per_mtok: invalid type: string "x", expected f64`.

use crate::catalog::{
    AutoDetect, Capabilities, Catalog, Deployment, ModelEntry, ModelMode, ModelPattern, PowerLevel,
    Price, ProviderEntry, ProviderKind,
};
use crate::money::UsdMicros;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// The catalog used when no configuration file is given.
const BUILTIN_CATALOG: &str = include_str!("builtin_catalog.yaml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config is not valid YAML: {0}")]
    Yaml(String),
    #[error("config field `{path}`: {message}")]
    Field { path: String, message: String },
}

fn field(path: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Field {
        path: path.into(),
        message: message.into(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    providers: BTreeMap<String, RawProvider>,
    #[serde(default)]
    models: Vec<RawModel>,
    #[serde(default)]
    power_levels: HashMap<PowerLevel, Vec<String>>,
    /// Default fallbacks of a named model, tried in order when a request
    /// gives no `models` list of its own (LiteLLM's `fallbacks`).
    #[serde(default)]
    fallbacks: BTreeMap<String, Vec<String>>,
    auto_detect: Option<RawAutoDetect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    kind: Option<ProviderKind>,
    /// Optional when the provider names a preset (or is named like one).
    base_url: Option<String>,
    api_key: Option<String>,
    /// A built-in preset (`groq`, `ollama`, …) giving kind and base URL.
    preset: Option<String>,
    /// Calls need no key (local servers); default from the preset.
    keyless: Option<bool>,
    /// Speaks OpenAI's Responses API; default: only the provider named
    /// `openai` (or naming the `openai` preset).
    responses_api: Option<bool>,
}

/// `auto_detect`: how names missing from `models` are resolved.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAutoDetect {
    #[serde(default = "yes")]
    enabled: bool,
    /// `provider/model` names a configured provider and its model.
    #[serde(default = "yes")]
    prefix: bool,
    /// Replaces the default patterns when given.
    patterns: Option<Vec<RawPattern>>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPattern {
    #[serde(rename = "match")]
    pattern: String,
    provider: String,
    #[serde(default)]
    mode: ModelMode,
    #[serde(default = "default_tier")]
    tier: u8,
    #[serde(default = "default_quality")]
    quality: u8,
    context_window: Option<i64>,
    max_output_tokens: Option<i64>,
    price: Option<RawPrice>,
}

/// The patterns used when the configuration gives none; those whose
/// provider is not configured are left out.
const DEFAULT_PATTERNS: [(&str, &str, ModelMode); 10] = [
    ("text-embedding-*", "openai", ModelMode::Embedding),
    ("gpt-*", "openai", ModelMode::Chat),
    ("chatgpt-*", "openai", ModelMode::Chat),
    ("o1*", "openai", ModelMode::Chat),
    ("o3*", "openai", ModelMode::Chat),
    ("o4*", "openai", ModelMode::Chat),
    ("claude-*", "anthropic", ModelMode::Chat),
    ("gemini-embedding-*", "gemini", ModelMode::Embedding),
    ("gemini-*", "gemini", ModelMode::Chat),
    ("deepseek-*", "deepseek", ModelMode::Chat),
];

/// One `models` entry. `P` is how its price is written: USD per million
/// tokens in the file ([`RawPrice`]), micro-dollars in the management API
/// (`crate::catalog_store::MicrosPrice`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(
    feature = "openapi",
    schema(
        description = "A model for the catalog: its provider (or deployments), upstream name, mode, tier, quality, limits and price in micro-dollars."
    )
)]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawModel<P = RawPrice> {
    pub(crate) id: String,
    /// The one provider serving the model; or else `deployments`.
    pub(crate) provider: Option<String>,
    /// The default upstream name of the model's deployments.
    pub(crate) upstream: Option<String>,
    /// Several places serving the same model (instead of `provider`).
    pub(crate) deployments: Option<Vec<RawDeployment>>,
    pub(crate) supports_tools: Option<bool>,
    pub(crate) supports_vision: Option<bool>,
    pub(crate) supports_json: Option<bool>,
    #[serde(default = "default_tier")]
    pub(crate) tier: u8,
    #[serde(default = "default_quality")]
    pub(crate) quality: u8,
    #[serde(default = "default_context_window")]
    pub(crate) context_window: i64,
    #[serde(default = "default_max_output")]
    pub(crate) max_output_tokens: i64,
    #[serde(default)]
    pub(crate) price: P,
    #[serde(default)]
    pub(crate) mode: ModelMode,
}

/// One entry of a model's `deployments`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CatalogDeploymentInput))]
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDeployment {
    pub(crate) provider: String,
    /// Default: the model's `upstream`, else its id.
    pub(crate) upstream: Option<String>,
    #[serde(default = "default_weight")]
    pub(crate) weight: u32,
    pub(crate) rpm: Option<i64>,
    pub(crate) tpm: Option<i64>,
}

fn default_weight() -> u32 {
    1
}

fn default_tier() -> u8 {
    1
}
fn default_quality() -> u8 {
    50
}
fn default_context_window() -> i64 {
    128_000
}
fn default_max_output() -> i64 {
    4_096
}

/// Prices as written in the file: USD per million tokens.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPrice {
    #[serde(default)]
    input_per_mtok: f64,
    #[serde(default)]
    output_per_mtok: f64,
    cached_input_per_mtok: Option<f64>,
    cache_write_per_mtok: Option<f64>,
    #[serde(default)]
    per_request: f64,
}

/// Loads the catalog from a YAML file, or the built-in catalog when `path` is `None`.
pub fn load_catalog(path: Option<&Path>) -> Result<Catalog, ConfigError> {
    let env = |name: &str| std::env::var(name).ok();
    match path {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.display().to_string(),
                source,
            })?;
            parse_catalog(&text, env)
        }
        None => builtin_catalog(env),
    }
}

/// The built-in catalog of well-known models, with platform keys from the
/// usual environment variables (`OPENAI_API_KEY`, …).
pub fn builtin_catalog(env: impl Fn(&str) -> Option<String>) -> Result<Catalog, ConfigError> {
    parse_catalog(BUILTIN_CATALOG, env)
}

/// Parses and validates a configuration text; `env` resolves `${NAME}`.
pub fn parse_catalog(
    text: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Catalog, ConfigError> {
    let mut value: serde_norway::Value =
        serde_norway::from_str(text).map_err(|e| ConfigError::Yaml(e.to_string()))?;
    if value.is_null() {
        value = serde_norway::Value::Mapping(Default::default());
    }
    interpolate(&mut value, &env);
    let raw: RawConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        field(path, e.into_inner().to_string())
    })?;
    build_catalog(raw)
}

fn interpolate(value: &mut serde_norway::Value, env: &impl Fn(&str) -> Option<String>) {
    use serde_norway::Value;
    match value {
        Value::String(s) if s.contains("${") => *s = substitute(s, env),
        Value::Sequence(items) => items.iter_mut().for_each(|v| interpolate(v, env)),
        Value::Mapping(map) => map.values_mut().for_each(|v| interpolate(v, env)),
        _ => {}
    }
}

fn substitute(s: &str, env: &impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&env(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn usd_per_mtok_to_micros(path: &str, usd: f64) -> Result<UsdMicros, ConfigError> {
    if !usd.is_finite() || !(0.0..=1_000_000.0).contains(&usd) {
        return Err(field(path, "must be a price in USD between 0 and 1000000"));
    }
    // The only float in Tollgate: a configured price, converted once at load time.
    #[allow(clippy::cast_possible_truncation)]
    Ok(UsdMicros((usd * 1_000_000.0).round() as i64))
}

fn build_catalog(raw: RawConfig) -> Result<Catalog, ConfigError> {
    let mut providers = Vec::with_capacity(raw.providers.len());
    for (name, p) in raw.providers {
        // A preset applies when named, or by the provider's own name when
        // it gives no base URL of its own.
        let preset = match &p.preset {
            Some(preset) => Some(crate::presets::find(preset).ok_or_else(|| {
                let names: Vec<&str> = crate::presets::PRESETS.iter().map(|p| p.name).collect();
                field(
                    format!("providers.{name}.preset"),
                    format!("unknown preset `{preset}` (one of: {})", names.join(", ")),
                )
            })?),
            None if p.base_url.is_none() => crate::presets::find(&name),
            None => None,
        };
        let kind = p
            .kind
            .or(preset.map(|p| p.kind))
            .or_else(|| ProviderKind::from_provider_name(&name))
            .ok_or_else(|| {
                field(
                    format!("providers.{name}.kind"),
                    "required unless the provider is named openai, anthropic or gemini \
                     or names a preset (one of: openai, anthropic, gemini)",
                )
            })?;
        let base_url = p
            .base_url
            .as_deref()
            .or(preset.map(|p| p.base_url))
            .ok_or_else(|| {
                field(
                    format!("providers.{name}.base_url"),
                    "required unless the provider names a preset",
                )
            })?
            .trim()
            .trim_end_matches('/')
            .to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(field(
                format!("providers.{name}.base_url"),
                "must start with http:// or https://",
            ));
        }
        let api_key = p
            .api_key
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from);
        let keyless = p
            .keyless
            .unwrap_or_else(|| preset.is_some_and(|p| p.key_env.is_none()));
        let responses_api = match p.responses_api {
            Some(true) if kind != ProviderKind::OpenAi => {
                return Err(field(
                    format!("providers.{name}.responses_api"),
                    "only a provider of kind openai can speak the Responses API",
                ));
            }
            Some(speaks) => speaks,
            // OpenAI itself; OpenAI-compatible APIs (DeepSeek, Groq, …) mostly
            // have no `/responses`, so they get the translation unless told.
            None => {
                kind == ProviderKind::OpenAi
                    && (name == "openai" || preset.is_some_and(|p| p.name == "openai"))
            }
        };
        providers.push(ProviderEntry {
            name,
            kind,
            base_url,
            api_key,
            keyless,
            responses_api,
        });
    }
    let provider_names: HashSet<&str> = providers.iter().map(|p| p.name.as_str()).collect();

    let mut models = Vec::with_capacity(raw.models.len());
    let mut seen = HashSet::new();
    for (i, m) in raw.models.into_iter().enumerate() {
        let at = |f: &str| format!("models[{i}].{f}");
        if !seen.insert(m.id.clone()) {
            return Err(field(at("id"), format!("duplicate model id `{}`", m.id)));
        }
        let price = price_of(&at("price"), &m.price)?;
        models.push(build_model(m, price, &provider_names, &at)?);
    }

    let chat_models: HashSet<&str> = models
        .iter()
        .filter(|m| m.mode == ModelMode::Chat)
        .map(|m| m.id.as_str())
        .collect();
    for (level, ids) in &raw.power_levels {
        for (i, id) in ids.iter().enumerate() {
            if !chat_models.contains(id.as_str()) {
                return Err(field(
                    format!("power_levels.{level}[{i}]"),
                    format!("`{id}` is not a chat model under `models`"),
                ));
            }
        }
    }
    check_fallbacks(&raw.fallbacks, &models)?;
    let auto_detect = auto_detect(raw.auto_detect, &provider_names)?;
    Ok(Catalog::from_parts(providers, models, raw.power_levels)
        .with_auto_detect(auto_detect)
        .with_fallbacks(raw.fallbacks.into_iter().collect()))
}

/// Every name in `fallbacks` is a model under `models`, and a model falls
/// back only to models of its own mode (chat or embedding).
fn check_fallbacks(
    fallbacks: &BTreeMap<String, Vec<String>>,
    models: &[ModelEntry],
) -> Result<(), ConfigError> {
    let mode_of = |id: &str| models.iter().find(|m| m.id == id).map(|m| m.mode);
    for (model, list) in fallbacks {
        let Some(mode) = mode_of(model) else {
            return Err(field(
                format!("fallbacks.{model}"),
                format!("`{model}` is not a model under `models`"),
            ));
        };
        for (i, id) in list.iter().enumerate() {
            match mode_of(id) {
                None => {
                    return Err(field(
                        format!("fallbacks.{model}[{i}]"),
                        format!("`{id}` is not a model under `models`"),
                    ));
                }
                Some(other) if other != mode => {
                    return Err(field(
                        format!("fallbacks.{model}[{i}]"),
                        format!("`{id}` is not of the same mode as `{model}`"),
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// Validates one model whose price is already converted, against the
/// configured providers; `at` names a field in errors (`models[2].tier` in
/// the file, `tier` in the management API).
pub(crate) fn build_model<P>(
    m: RawModel<P>,
    price: Price,
    provider_names: &HashSet<&str>,
    at: &impl Fn(&str) -> String,
) -> Result<ModelEntry, ConfigError> {
    if m.id.trim().is_empty() {
        return Err(field(at("id"), "must not be empty"));
    }
    let deployments = raw_deployments(&m, provider_names, at)?;
    if m.tier > 5 {
        return Err(field(at("tier"), "must be between 0 and 5"));
    }
    if m.quality > 100 {
        return Err(field(at("quality"), "must be between 0 and 100"));
    }
    if m.context_window <= 0 {
        return Err(field(at("context_window"), "must be positive"));
    }
    if m.max_output_tokens <= 0 {
        return Err(field(at("max_output_tokens"), "must be positive"));
    }
    let capabilities = Capabilities {
        tools: m.supports_tools.unwrap_or(true),
        vision: m.supports_vision.unwrap_or(true),
        json: m.supports_json.unwrap_or(true),
    };
    let (provider, upstream) = deployments
        .first()
        .map(|d| (d.provider.clone(), d.upstream.clone()))
        .unwrap_or_default();
    let mut model = ModelEntry {
        id: m.id,
        provider,
        upstream,
        tier: m.tier,
        quality: m.quality,
        context_window: m.context_window,
        max_output_tokens: m.max_output_tokens,
        price,
        mode: m.mode,
        capabilities,
        deployments: Arc::from(Vec::new()),
    };
    model.deployments = deployments
        .into_iter()
        .map(|d| Deployment {
            entry: Arc::new(model.served_by(&d.provider, &d.upstream)),
            weight: d.weight,
            rpm: d.rpm,
            tpm: d.tpm,
        })
        .collect();
    Ok(model)
}

/// A validated deployment of the file: provider, upstream name, weight and caps.
struct DeploymentSpec {
    provider: String,
    upstream: String,
    weight: u32,
    rpm: Option<i64>,
    tpm: Option<i64>,
}

/// A model's deployments: its `deployments` list, or its one `provider`.
/// Each provider serves a model at most once (its health and caps are
/// kept per provider and model).
fn raw_deployments<P>(
    m: &RawModel<P>,
    provider_names: &HashSet<&str>,
    at: &impl Fn(&str) -> String,
) -> Result<Vec<DeploymentSpec>, ConfigError> {
    let default_upstream = m.upstream.clone().unwrap_or_else(|| m.id.clone());
    let specs = match (&m.provider, &m.deployments) {
        (Some(_), Some(_)) => {
            return Err(field(
                at("deployments"),
                "give either `provider` or `deployments`, not both",
            ));
        }
        (None, None) => return Err(field(at("provider"), "missing field `provider`")),
        (Some(provider), None) => {
            if !provider_names.contains(provider.as_str()) {
                return Err(field(
                    at("provider"),
                    format!("unknown provider `{provider}` (not under `providers`)"),
                ));
            }
            vec![DeploymentSpec {
                provider: provider.clone(),
                upstream: default_upstream,
                weight: 1,
                rpm: None,
                tpm: None,
            }]
        }
        (None, Some(list)) => {
            if list.is_empty() {
                return Err(field(at("deployments"), "must not be empty"));
            }
            let mut specs: Vec<DeploymentSpec> = Vec::with_capacity(list.len());
            for (j, d) in list.iter().enumerate() {
                let at = |f: &str| at(&format!("deployments[{j}].{f}"));
                if !provider_names.contains(d.provider.as_str()) {
                    return Err(field(
                        at("provider"),
                        format!("unknown provider `{}` (not under `providers`)", d.provider),
                    ));
                }
                if specs.iter().any(|s| s.provider == d.provider) {
                    return Err(field(
                        at("provider"),
                        format!(
                            "provider `{}` already serves this model; declare the provider \
                             twice under `providers` (for example with another key) to serve \
                             it twice",
                            d.provider
                        ),
                    ));
                }
                if !(1..=1_000_000).contains(&d.weight) {
                    return Err(field(at("weight"), "must be between 1 and 1000000"));
                }
                if d.rpm.is_some_and(|n| n <= 0) {
                    return Err(field(at("rpm"), "must be positive"));
                }
                if d.tpm.is_some_and(|n| n <= 0) {
                    return Err(field(at("tpm"), "must be positive"));
                }
                specs.push(DeploymentSpec {
                    provider: d.provider.clone(),
                    upstream: d
                        .upstream
                        .clone()
                        .unwrap_or_else(|| default_upstream.clone()),
                    weight: d.weight,
                    rpm: d.rpm,
                    tpm: d.tpm,
                });
            }
            specs
        }
    };
    Ok(specs)
}

fn price_of(at: &str, raw: &RawPrice) -> Result<Price, ConfigError> {
    let input = usd_per_mtok_to_micros(&format!("{at}.input_per_mtok"), raw.input_per_mtok)?;
    Ok(Price {
        input_per_mtok: input,
        output_per_mtok: usd_per_mtok_to_micros(
            &format!("{at}.output_per_mtok"),
            raw.output_per_mtok,
        )?,
        cached_input_per_mtok: match raw.cached_input_per_mtok {
            Some(usd) => usd_per_mtok_to_micros(&format!("{at}.cached_input_per_mtok"), usd)?,
            None => input,
        },
        cache_write_per_mtok: match raw.cache_write_per_mtok {
            Some(usd) => usd_per_mtok_to_micros(&format!("{at}.cache_write_per_mtok"), usd)?,
            None => input,
        },
        per_request: usd_per_mtok_to_micros(&format!("{at}.per_request"), raw.per_request)?,
    })
}

fn auto_detect(
    raw: Option<RawAutoDetect>,
    provider_names: &HashSet<&str>,
) -> Result<AutoDetect, ConfigError> {
    let raw = raw.unwrap_or(RawAutoDetect {
        enabled: true,
        prefix: true,
        patterns: None,
    });
    if !raw.enabled {
        return Ok(AutoDetect::default());
    }
    let patterns = match raw.patterns {
        None => DEFAULT_PATTERNS
            .iter()
            .filter(|(_, provider, _)| provider_names.contains(provider))
            .map(|&(pattern, provider, mode)| ModelPattern {
                pattern: pattern.to_owned(),
                provider: provider.to_owned(),
                mode,
                tier: default_tier(),
                quality: default_quality(),
                context_window: None,
                max_output_tokens: None,
                price: None,
            })
            .collect(),
        Some(list) => {
            let mut patterns = Vec::with_capacity(list.len());
            for (i, p) in list.into_iter().enumerate() {
                let at = |f: &str| format!("auto_detect.patterns[{i}].{f}");
                if p.pattern.trim().is_empty() {
                    return Err(field(at("match"), "must not be empty"));
                }
                if !provider_names.contains(p.provider.as_str()) {
                    return Err(field(
                        at("provider"),
                        format!("unknown provider `{}` (not under `providers`)", p.provider),
                    ));
                }
                if p.tier > 5 {
                    return Err(field(at("tier"), "must be between 0 and 5"));
                }
                if p.quality > 100 {
                    return Err(field(at("quality"), "must be between 0 and 100"));
                }
                if p.context_window.is_some_and(|n| n <= 0) {
                    return Err(field(at("context_window"), "must be positive"));
                }
                if p.max_output_tokens.is_some_and(|n| n <= 0) {
                    return Err(field(at("max_output_tokens"), "must be positive"));
                }
                let price = match &p.price {
                    Some(raw) => Some(price_of(&at("price"), raw)?),
                    None => None,
                };
                patterns.push(ModelPattern {
                    pattern: p.pattern,
                    provider: p.provider,
                    mode: p.mode,
                    tier: p.tier,
                    quality: p.quality,
                    context_window: p.context_window,
                    max_output_tokens: p.max_output_tokens,
                    price,
                });
            }
            patterns
        }
    };
    Ok(AutoDetect {
        prefix: raw.prefix,
        patterns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    const MINIMAL: &str = r#"
providers:
  openai: { base_url: "https://api.openai.com/v1/", api_key: "${OPENAI_API_KEY}" }
  deepseek: { kind: openai, base_url: "https://api.deepseek.com/v1" }
models:
  - id: gpt-4o-mini
    provider: openai
    price: { input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075 }
  - id: ds
    provider: deepseek
    upstream: deepseek-chat
power_levels:
  eco: [ds]
"#;

    #[test]
    fn parses_providers_models_prices_and_interpolates_env() {
        let env = |name: &str| (name == "OPENAI_API_KEY").then(|| "sk-test".to_owned());
        let catalog = parse_catalog(MINIMAL, env).unwrap();
        let openai = catalog.provider("openai").unwrap();
        assert_eq!(openai.kind, ProviderKind::OpenAi);
        assert_eq!(openai.base_url, "https://api.openai.com/v1");
        assert_eq!(openai.api_key.as_ref().unwrap().expose_secret(), "sk-test");
        assert!(catalog.provider("deepseek").unwrap().api_key.is_none());
        let mini = catalog.model("gpt-4o-mini").unwrap();
        assert_eq!(mini.price.input_per_mtok, UsdMicros(150_000));
        assert_eq!(mini.price.output_per_mtok, UsdMicros(600_000));
        assert_eq!(mini.price.cached_input_per_mtok, UsdMicros(75_000));
        assert_eq!(catalog.model("ds").unwrap().upstream, "deepseek-chat");
        assert_eq!(catalog.power_level(PowerLevel::Eco), ["ds".to_owned()]);
    }

    #[test]
    fn unset_variable_means_no_platform_key() {
        let catalog = parse_catalog(MINIMAL, no_env).unwrap();
        assert!(catalog.provider("openai").unwrap().api_key.is_none());
    }

    #[test]
    fn errors_name_the_field() {
        let bad_price = MINIMAL.replace("input_per_mtok: 0.15", "input_per_mtok: cheap");
        let err = parse_catalog(&bad_price, no_env).unwrap_err().to_string();
        assert!(err.contains("models[0].price.input_per_mtok"), "{err}");

        let bad_provider = MINIMAL.replace("provider: deepseek", "provider: nowhere");
        let err = parse_catalog(&bad_provider, no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("models[1].provider"), "{err}");

        let missing_kind = MINIMAL.replace("kind: openai, ", "");
        let err = parse_catalog(&missing_kind, no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.deepseek.kind"), "{err}");

        let unknown_level_model = MINIMAL.replace("eco: [ds]", "eco: [nope]");
        let err = parse_catalog(&unknown_level_model, no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("power_levels.eco[0]"), "{err}");

        let typo = MINIMAL.replace("upstream:", "upstraem:");
        let err = parse_catalog(&typo, no_env).unwrap_err().to_string();
        assert!(
            err.contains("models[1]") && err.contains("upstraem"),
            "{err}"
        );
    }

    #[test]
    fn fallbacks_name_models_of_the_same_mode() {
        let with = |fallbacks: &str| format!("{MINIMAL}fallbacks:\n{fallbacks}\n");
        let catalog = parse_catalog(&with("  gpt-4o-mini: [ds]"), no_env).unwrap();
        assert_eq!(catalog.fallbacks("gpt-4o-mini"), ["ds".to_owned()]);
        assert!(catalog.fallbacks("ds").is_empty());

        let err = parse_catalog(&with("  gpt-4o-mini: [nope]"), no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fallbacks.gpt-4o-mini[0]"), "{err}");
        let err = parse_catalog(&with("  nope: [ds]"), no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fallbacks.nope"), "{err}");
    }

    #[test]
    fn builtin_catalog_is_valid() {
        let catalog = builtin_catalog(no_env).unwrap();
        assert!(catalog.model("gpt-4o-mini").is_some());
        for level in PowerLevel::ALL {
            assert!(!catalog.power_level(level).is_empty(), "{level}");
        }
        let groq = catalog.provider("groq").unwrap();
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert_eq!(
            catalog.provider("anthropic").unwrap().kind,
            ProviderKind::Anthropic
        );
        for name in [
            "claude-opus-9",
            "gemini-9-pro",
            "gpt-9",
            "o3-pro",
            "deepseek-v9",
            "groq/qwen-3",
        ] {
            assert!(catalog.detect(name).is_some(), "{name}");
        }
    }

    #[test]
    fn presets_fill_kind_and_base_url_and_local_servers_need_no_key() {
        let config = r#"
providers:
  groq: { api_key: "${GROQ_API_KEY}" }
  my-router: { preset: openrouter }
  local: { preset: ollama, base_url: "http://gpu-box:11434/v1" }
  vllm: {}
"#;
        let env = |name: &str| (name == "GROQ_API_KEY").then(|| "gsk-1".to_owned());
        let catalog = parse_catalog(config, env).unwrap();
        let groq = catalog.provider("groq").unwrap();
        assert_eq!(groq.kind, ProviderKind::OpenAi);
        assert_eq!(groq.base_url, "https://api.groq.com/openai/v1");
        assert!(!groq.keyless && groq.api_key.is_some());
        assert_eq!(
            catalog.provider("my-router").unwrap().base_url,
            "https://openrouter.ai/api/v1"
        );
        let local = catalog.provider("local").unwrap();
        assert_eq!(local.base_url, "http://gpu-box:11434/v1");
        assert!(local.keyless && local.api_key.is_none());
        assert!(catalog.provider("vllm").unwrap().keyless);

        let err = parse_catalog("providers:\n  x: { preset: nope }\n", no_env)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("providers.x.preset") && err.contains("groq"),
            "{err}"
        );
        let err = parse_catalog("providers:\n  x: { kind: openai }\n", no_env)
            .unwrap_err()
            .to_string();
        assert!(err.contains("providers.x.base_url"), "{err}");
    }

    #[test]
    fn only_openai_speaks_responses_unless_the_file_says_so() {
        let config = r#"
providers:
  openai: { base_url: "https://api.openai.com/v1" }
  deepseek: { api_key: "k" }
  proxy: { kind: openai, base_url: "https://proxy.example/v1", responses_api: true }
  no-native: { preset: openai, responses_api: false }
"#;
        let catalog = parse_catalog(config, no_env).unwrap();
        let speaks = |name: &str| catalog.provider(name).unwrap().responses_api;
        assert!(speaks("openai") && speaks("proxy"));
        assert!(!speaks("deepseek") && !speaks("no-native"));
        let err = parse_catalog(
            "providers:\n  anthropic: { api_key: k, responses_api: true }\n",
            no_env,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("providers.anthropic.responses_api"), "{err}");
    }

    #[test]
    fn default_patterns_detect_well_known_names_at_list_price_or_above() {
        use crate::catalog::Detection;
        let catalog = parse_catalog(MINIMAL, no_env).unwrap();
        // gpt-* goes to openai, priced like its dearest catalog model.
        let Some(Detection::Model(m)) = catalog.detect("gpt-9-turbo") else {
            panic!("gpt-9-turbo not detected")
        };
        assert_eq!(
            (m.provider.as_str(), m.upstream.as_str()),
            ("openai", "gpt-9-turbo")
        );
        assert_eq!(m.price.input_per_mtok, UsdMicros(150_000));
        // deepseek-* matches, but deepseek's only model has no price: it is
        // priced at that (zero) list price, which is what the config says.
        assert!(catalog.detect("deepseek-v4").is_some());
        // No anthropic provider here: claude-* is not detected.
        assert!(catalog.detect("claude-opus-4-7").is_none());
        // provider/model: a catalog model by its upstream name, or a new one.
        let Some(Detection::Model(known)) = catalog.detect("deepseek/deepseek-chat") else {
            panic!("prefix form not detected")
        };
        assert_eq!(known.id, "ds");
        let Some(Detection::Model(new)) = catalog.detect("openai/gpt-5.4-mini") else {
            panic!("prefix form not detected")
        };
        assert_eq!(new.upstream, "gpt-5.4-mini");
        assert!(catalog.detect("nowhere/model").is_none());
        assert!(catalog.detect("llama-3").is_none());
    }

    #[test]
    fn configured_patterns_replace_the_defaults_and_are_validated() {
        use crate::catalog::Detection;
        let config = format!(
            "{MINIMAL}auto_detect:\n  prefix: false\n  patterns:\n    - {{ match: \"ds-*\", provider: deepseek, max_output_tokens: 100, price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}\n    - {{ match: \"*-embed\", provider: openai, mode: embedding }}\n"
        );
        let catalog = parse_catalog(&config, no_env).unwrap();
        assert!(catalog.detect("gpt-4o").is_none(), "defaults replaced");
        assert!(catalog.detect("openai/gpt-4o").is_none(), "prefix off");
        let Some(Detection::Model(m)) = catalog.detect("ds-coder") else {
            panic!("ds-coder not detected")
        };
        assert_eq!(m.max_output_tokens, 100);
        assert_eq!(m.price.output_per_mtok, UsdMicros(2_000_000));
        // An embedding pattern with no embedding model to take a price from.
        assert!(matches!(
            catalog.detect("my-embed"),
            Some(Detection::Unpriced { .. })
        ));
        let bad = config.replace("provider: deepseek, max", "provider: nowhere, max");
        let err = parse_catalog(&bad, no_env).unwrap_err().to_string();
        assert!(err.contains("auto_detect.patterns[0].provider"), "{err}");
        let off = format!("{MINIMAL}auto_detect: {{ enabled: false }}\n");
        assert!(
            parse_catalog(&off, no_env)
                .unwrap()
                .detect("gpt-4o")
                .is_none()
        );
    }

    #[test]
    fn a_model_lists_its_deployments_with_weights_caps_and_capabilities() {
        let config = r#"
providers:
  east: { kind: openai, base_url: "http://east/v1" }
  west: { kind: openai, base_url: "http://west/v1" }
models:
  - id: chat
    upstream: chat-2025
    supports_vision: false
    deployments:
      - { provider: east, weight: 3, rpm: 100 }
      - { provider: west, upstream: chat-west, tpm: 5000 }
  - { id: single, provider: east }
"#;
        let catalog = parse_catalog(config, no_env).unwrap();
        let chat = catalog.model("chat").unwrap();
        assert_eq!(
            (chat.provider.as_str(), chat.upstream.as_str()),
            ("east", "chat-2025")
        );
        assert!(chat.capabilities.tools && !chat.capabilities.vision && chat.capabilities.json);
        let d: Vec<_> = chat
            .deployments
            .iter()
            .map(|d| {
                (
                    d.entry.provider.as_str(),
                    d.entry.upstream.as_str(),
                    d.weight,
                    d.rpm,
                    d.tpm,
                )
            })
            .collect();
        assert_eq!(
            d,
            [
                ("east", "chat-2025", 3, Some(100), None),
                ("west", "chat-west", 1, None, Some(5000))
            ]
        );
        assert_eq!(chat.deployments[1].entry.id, "chat");
        assert!(!chat.deployments[1].entry.capabilities.vision);
        let single = catalog.model("single").unwrap();
        assert_eq!(single.deployments.len(), 1);
        assert_eq!(single.deployments[0].weight, 1);

        for (bad, path) in [
            (
                "deployments:\n      - { provider: east, weight: 3, rpm: 100 }",
                "models[0].deployments",
            ),
            (
                "{ provider: west, upstream: chat-west, tpm: 5000 }",
                "models[0].deployments[1].provider",
            ),
            ("weight: 3,", "models[0].deployments[0].weight"),
            ("rpm: 100", "models[0].deployments[0].rpm"),
        ] {
            let replacement = match path {
                "models[0].deployments" => {
                    "provider: east\n    deployments:\n      - { provider: east }"
                }
                "models[0].deployments[1].provider" => "{ provider: east }",
                "models[0].deployments[0].weight" => "weight: 0,",
                _ => "rpm: 0",
            };
            let err = parse_catalog(&config.replace(bad, replacement), no_env)
                .unwrap_err()
                .to_string();
            assert!(err.contains(path), "{path}: {err}");
        }
    }

    #[test]
    fn globs_match_prefixes_suffixes_and_middles() {
        use crate::catalog::glob_match;
        assert!(glob_match("gpt-*", "gpt-4o"));
        assert!(glob_match("o3*", "o3"));
        assert!(glob_match("o3*", "o3-mini"));
        assert!(!glob_match("o3*", "xo3"));
        assert!(glob_match("*-embed", "my-embed"));
        assert!(glob_match("a*b*c", "a-x-b-y-c"));
        assert!(!glob_match("a*b*c", "a-x-c"));
        assert!(glob_match("exact", "exact") && !glob_match("exact", "exactly"));
    }

    #[test]
    fn cost_rounds_up_once_and_prices_cached_tokens() {
        let price = Price {
            input_per_mtok: UsdMicros(150_000),
            output_per_mtok: UsdMicros(600_000),
            cached_input_per_mtok: UsdMicros(75_000),
            cache_write_per_mtok: UsdMicros(75_000),
            per_request: UsdMicros(0),
        };
        let usage = crate::money::TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 500,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        // 1000 × 0.15 + 500 × 0.60 = 450 micro-dollars exactly.
        assert_eq!(price.cost(&usage), UsdMicros(450));
        let tiny = crate::money::TokenUsage {
            prompt_tokens: 9,
            completion_tokens: 0,
            cached_prompt_tokens: 0,
            cache_write_tokens: 0,
        };
        // 9 × 0.15 = 1.35 micro-dollars, rounded up.
        assert_eq!(price.cost(&tiny), UsdMicros(2));
        let cached = crate::money::TokenUsage {
            prompt_tokens: 1_000,
            completion_tokens: 0,
            cached_prompt_tokens: 400,
            cache_write_tokens: 0,
        };
        // 600 × 0.15 + 400 × 0.075 = 120.
        assert_eq!(price.cost(&cached), UsdMicros(120));
    }
}
