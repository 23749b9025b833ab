//! The model catalog: which providers exist, which models they serve, at what
//! price, and which models each power level prefers. Built from the
//! configuration, with the models changed at runtime laid over it
//! ([`crate::catalog_store`]), and shared read-only on the hot path.

use crate::money::{TokenUsage, UsdMicros};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Which wire format a provider speaks.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// OpenAI or any OpenAI-compatible API.
    OpenAi,
    Anthropic,
    Gemini,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Gemini => "gemini",
        }
    }

    /// The kind implied by a provider's name, for the three native names.
    pub fn from_provider_name(name: &str) -> Option<ProviderKind> {
        match name {
            "openai" => Some(ProviderKind::OpenAi),
            "anthropic" => Some(ProviderKind::Anthropic),
            "gemini" => Some(ProviderKind::Gemini),
            _ => None,
        }
    }
}

/// How to reach one provider.
#[derive(Debug, Clone)]
pub struct ProviderEntry {
    pub name: String,
    pub kind: ProviderKind,
    /// Base URL without a trailing slash.
    pub base_url: String,
    /// The platform's own key; `None` means only BYOK organizations can use it.
    pub api_key: Option<SecretString>,
    /// Needs no key at all (a local vLLM or Ollama): calls go without one.
    pub keyless: bool,
    /// Speaks OpenAI's Responses API (`POST {base_url}/responses`): a
    /// `/v1/responses` call it serves is passed through natively instead of
    /// translated to Chat Completions. Only for the `openai` kind.
    pub responses_api: bool,
}

/// What a model is called for.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ModelMode {
    #[default]
    Chat,
    Embedding,
}

/// List prices, in micro-dollars per million tokens (so 0.15 USD/Mtok is 150 000).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Price {
    pub input_per_mtok: UsdMicros,
    pub output_per_mtok: UsdMicros,
    pub cached_input_per_mtok: UsdMicros,
    /// Prompt tokens written to the provider's cache (defaults to the input price).
    pub cache_write_per_mtok: UsdMicros,
    pub per_request: UsdMicros,
}

impl Price {
    /// The exact token cost of one call in micro-dollars × 10⁻⁶ (no
    /// rounding, no per-request fee): cached prompt tokens at the cached
    /// price, tokens written to the cache at the cache-write price, the rest
    /// of the prompt at the input price, the completion at the output price.
    /// An `i128` holds any `i64` count times any price.
    pub fn exact_token_cost(&self, usage: &TokenUsage) -> i128 {
        let prompt = usage.prompt_tokens.max(0);
        let cached = usage.cached_prompt_tokens.clamp(0, prompt);
        let written = usage.cache_write_tokens.clamp(0, prompt - cached);
        let uncached = prompt - cached - written;
        i128::from(uncached) * i128::from(self.input_per_mtok.0)
            + i128::from(cached) * i128::from(self.cached_input_per_mtok.0)
            + i128::from(written) * i128::from(self.cache_write_per_mtok.0)
            + i128::from(usage.completion_tokens.max(0)) * i128::from(self.output_per_mtok.0)
    }

    /// The USD cost of one call. Token costs are summed exactly (in
    /// micro-dollars × 10⁻⁶) and rounded up once to a whole micro-dollar, so a
    /// call is never charged less than its list price; the per-request fee is
    /// added as is.
    pub fn cost(&self, usage: &TokenUsage) -> UsdMicros {
        let scaled = self.exact_token_cost(usage);
        let micros = (scaled + 999_999) / 1_000_000;
        let micros = i64::try_from(micros).unwrap_or(i64::MAX);
        UsdMicros(micros.saturating_add(self.per_request.0))
    }
}

/// One model clients can ask for.
#[derive(Debug, Clone)]
pub struct ModelEntry {
    /// The name clients send.
    pub id: String,
    pub provider: String,
    /// The name sent to the provider.
    pub upstream: String,
    /// 0 (free) .. 5 (premium).
    pub tier: u8,
    /// 0..100, higher is better.
    pub quality: u8,
    pub context_window: i64,
    pub max_output_tokens: i64,
    pub price: Price,
    pub mode: ModelMode,
    /// What the model can do; a request that needs more skips it.
    pub capabilities: Capabilities,
    /// Where the model is served, when configured under `deployments` or
    /// with one `provider` (then one deployment). Each deployment's
    /// [`Deployment::entry`] is this model as that deployment serves it
    /// (its own `provider` and `upstream`, the same id, price and
    /// capabilities, and no deployments of its own). Empty for models made
    /// by auto-detection: the model is then its own single deployment.
    pub deployments: Arc<[Deployment]>,
}

/// Request features a chat model may lack (`supports_tools`,
/// `supports_vision`, `supports_json` in the configuration; all `true`
/// unless set `false`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Function / tool calling (`tools`, `functions`).
    pub tools: bool,
    /// Image content parts.
    pub vision: bool,
    /// JSON mode (`response_format` `json_object` or `json_schema`).
    pub json: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Capabilities {
            tools: true,
            vision: true,
            json: true,
        }
    }
}

/// One place a catalog model is served: a provider (its base URL and key)
/// and the upstream name there, with its share of the traffic and its own
/// caps.
#[derive(Debug, Clone)]
pub struct Deployment {
    /// The model as served here (provider and upstream of this deployment).
    pub entry: Arc<ModelEntry>,
    /// Relative share of the traffic (at least 1).
    pub weight: u32,
    /// Requests per minute this deployment takes at most.
    pub rpm: Option<i64>,
    /// Tokens per minute this deployment takes at most.
    pub tpm: Option<i64>,
}

impl ModelEntry {
    /// This model with no deployments of its own, served by `provider` as `upstream`.
    pub fn served_by(&self, provider: &str, upstream: &str) -> ModelEntry {
        ModelEntry {
            provider: provider.to_owned(),
            upstream: upstream.to_owned(),
            deployments: Arc::from(Vec::new()),
            ..self.clone()
        }
    }
}

/// A routing preference for `"model": "auto"`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerLevel {
    Eco,
    Balanced,
    Precision,
}

impl PowerLevel {
    pub const ALL: [PowerLevel; 3] = [PowerLevel::Eco, PowerLevel::Balanced, PowerLevel::Precision];

    pub fn as_str(self) -> &'static str {
        match self {
            PowerLevel::Eco => "eco",
            PowerLevel::Balanced => "balanced",
            PowerLevel::Precision => "precision",
        }
    }
}

impl FromStr for PowerLevel {
    type Err = crate::money::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "eco" => Ok(PowerLevel::Eco),
            "balanced" => Ok(PowerLevel::Balanced),
            "precision" => Ok(PowerLevel::Precision),
            _ => Err(crate::money::UnknownName(s.to_owned())),
        }
    }
}

impl fmt::Display for PowerLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule that sends model names missing from the catalog to a provider
/// (`claude-*` → anthropic). `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPattern {
    pub pattern: String,
    pub provider: String,
    pub mode: ModelMode,
    pub tier: u8,
    pub quality: u8,
    pub context_window: Option<i64>,
    pub max_output_tokens: Option<i64>,
    /// The price to charge; without it, the highest list price among the
    /// provider's catalog models of the same mode (never less than list).
    pub price: Option<Price>,
}

/// How names missing from the catalog are resolved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AutoDetect {
    /// `provider/model` names a configured provider and its model.
    pub prefix: bool,
    pub patterns: Vec<ModelPattern>,
}

/// What auto-detection made of a name missing from the catalog.
#[derive(Debug, Clone)]
pub enum Detection {
    /// A model to use, priced as documented on [`ModelPattern::price`].
    Model(Arc<ModelEntry>),
    /// The name belongs to this provider, but no price can be derived.
    Unpriced { provider: String },
}

/// Whether a name outside the catalog may be auto-detected: the characters
/// of real model names (`meta-llama/llama-3:free`, `claude@2024`), and no
/// empty, `.` or `..` segment. Such a name becomes the upstream model the
/// gateway sends with the platform's key, so nothing in it may read as URL
/// syntax (`?`, `#`, `%`, dot segments) even before an adapter encodes it.
pub fn is_detectable_name(name: &str) -> bool {
    name.bytes().all(|b| {
        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':' | b'@' | b'+' | b'/')
    }) && name
        .split('/')
        .all(|segment| !segment.is_empty() && segment != "." && segment != "..")
}

/// Whether `name` matches a glob where `*` stands for any run of characters.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        return rest.is_empty();
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The whole catalog, validated: every model's provider exists and every
/// power-level entry names a chat model.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    providers: HashMap<String, Arc<ProviderEntry>>,
    models: Vec<Arc<ModelEntry>>,
    by_id: HashMap<String, usize>,
    power_levels: HashMap<PowerLevel, Vec<String>>,
    /// A named model's default fallbacks (configuration `fallbacks`).
    fallbacks: HashMap<String, Vec<String>>,
    auto_detect: AutoDetect,
    /// Models disabled at runtime: hidden from routing and auto-detection,
    /// listed only for the management API.
    disabled: Vec<Arc<ModelEntry>>,
}

impl Catalog {
    /// Builds a catalog from parts that [`crate::config`] has already validated.
    pub(crate) fn from_parts(
        providers: Vec<ProviderEntry>,
        models: Vec<ModelEntry>,
        power_levels: HashMap<PowerLevel, Vec<String>>,
    ) -> Catalog {
        let by_id = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        Catalog {
            providers: providers
                .into_iter()
                .map(|p| (p.name.clone(), Arc::new(p)))
                .collect(),
            models: models.into_iter().map(Arc::new).collect(),
            by_id,
            power_levels,
            fallbacks: HashMap::new(),
            auto_detect: AutoDetect::default(),
            disabled: Vec::new(),
        }
    }

    /// This catalog with runtime changes laid over it: each of `replaced`
    /// takes the place of the model of its id (or is added after the
    /// others), each id of `hidden` is removed, and `disabled` is what the
    /// management API lists as disabled. A power level keeps only the chat
    /// models that remain.
    pub(crate) fn overlaid(
        &self,
        replaced: Vec<ModelEntry>,
        hidden: &HashSet<String>,
        disabled: Vec<ModelEntry>,
    ) -> Catalog {
        let mut models: Vec<Arc<ModelEntry>> = self.models.clone();
        for model in replaced {
            match models.iter().position(|m| m.id == model.id) {
                Some(at) => models[at] = Arc::new(model),
                None => models.push(Arc::new(model)),
            }
        }
        models.retain(|m| !hidden.contains(&m.id));
        let by_id: HashMap<String, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.id.clone(), i))
            .collect();
        let is_chat = |id: &String| {
            by_id
                .get(id)
                .is_some_and(|&i| models[i].mode == ModelMode::Chat)
        };
        let power_levels = self
            .power_levels
            .iter()
            .map(|(level, ids)| {
                (
                    *level,
                    ids.iter().filter(|id| is_chat(id)).cloned().collect(),
                )
            })
            .collect();
        Catalog {
            providers: self.providers.clone(),
            models,
            by_id,
            power_levels,
            fallbacks: self.fallbacks.clone(),
            auto_detect: self.auto_detect.clone(),
            disabled: disabled.into_iter().map(Arc::new).collect(),
        }
    }

    /// The models disabled at runtime (not routable).
    pub fn disabled_models(&self) -> &[Arc<ModelEntry>] {
        &self.disabled
    }

    /// Whether `name` names a model disabled at runtime, by its id or as
    /// `provider/upstream`: auto-detection must not bring it back.
    fn is_disabled(&self, name: &str) -> bool {
        self.disabled.iter().any(|m| {
            m.id == name
                || name.split_once('/').is_some_and(|(provider, model)| {
                    m.provider == provider && (m.upstream == model || m.id == model)
                })
        })
    }

    pub(crate) fn provider_names(&self) -> HashSet<&str> {
        self.providers.keys().map(String::as_str).collect()
    }

    pub(crate) fn with_auto_detect(mut self, auto_detect: AutoDetect) -> Catalog {
        self.auto_detect = auto_detect;
        self
    }

    pub(crate) fn with_fallbacks(mut self, fallbacks: HashMap<String, Vec<String>>) -> Catalog {
        self.fallbacks = fallbacks;
        self
    }

    /// The configured fallbacks of `model`, in order (empty when none).
    pub fn fallbacks(&self, model: &str) -> &[String] {
        self.fallbacks.get(model).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn auto_detect(&self) -> &AutoDetect {
        &self.auto_detect
    }

    /// Resolves a name that is not a catalog id: `provider/model` first
    /// (when enabled), then the first matching pattern.
    pub fn detect(&self, name: &str) -> Option<Detection> {
        if self.is_disabled(name) || !is_detectable_name(name) {
            return None;
        }
        if self.auto_detect.prefix
            && let Some((provider, model)) = name.split_once('/')
            && !model.is_empty()
            && self.providers.contains_key(provider)
        {
            let known = self
                .models
                .iter()
                .find(|m| m.provider == provider && (m.upstream == model || m.id == model));
            if let Some(known) = known {
                return Some(Detection::Model(known.clone()));
            }
            let rule = ModelPattern {
                pattern: format!("{provider}/*"),
                provider: provider.to_owned(),
                mode: ModelMode::Chat,
                tier: 1,
                quality: 50,
                context_window: None,
                max_output_tokens: None,
                price: None,
            };
            return Some(self.synthesize(name, model, &rule));
        }
        let rule =
            self.auto_detect.patterns.iter().find(|p| {
                self.providers.contains_key(&p.provider) && glob_match(&p.pattern, name)
            })?;
        Some(self.synthesize(name, name, rule))
    }

    fn synthesize(&self, id: &str, upstream: &str, rule: &ModelPattern) -> Detection {
        let peers: Vec<&Arc<ModelEntry>> = self
            .models
            .iter()
            .filter(|m| m.provider == rule.provider && m.mode == rule.mode)
            .collect();
        let price = rule.price.or_else(|| {
            let max = |f: fn(&Price) -> UsdMicros| peers.iter().map(|m| f(&m.price)).max();
            Some(Price {
                input_per_mtok: max(|p| p.input_per_mtok)?,
                output_per_mtok: max(|p| p.output_per_mtok)?,
                cached_input_per_mtok: max(|p| p.cached_input_per_mtok)?,
                cache_write_per_mtok: max(|p| p.cache_write_per_mtok)?,
                per_request: max(|p| p.per_request)?,
            })
        });
        let Some(price) = price else {
            return Detection::Unpriced {
                provider: rule.provider.clone(),
            };
        };
        Detection::Model(Arc::new(ModelEntry {
            id: id.to_owned(),
            provider: rule.provider.clone(),
            upstream: upstream.to_owned(),
            tier: rule.tier,
            quality: rule.quality,
            context_window: rule
                .context_window
                .or_else(|| peers.iter().map(|m| m.context_window).max())
                .unwrap_or(128_000),
            max_output_tokens: rule
                .max_output_tokens
                .or_else(|| peers.iter().map(|m| m.max_output_tokens).max())
                .unwrap_or(4_096),
            price,
            mode: rule.mode,
            capabilities: Capabilities::default(),
            deployments: Arc::from(Vec::new()),
        }))
    }

    pub fn model(&self, id: &str) -> Option<&Arc<ModelEntry>> {
        self.by_id.get(id).and_then(|&i| self.models.get(i))
    }

    pub fn models(&self) -> &[Arc<ModelEntry>] {
        &self.models
    }

    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderEntry>> {
        self.providers.get(name)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderEntry>> {
        self.providers.values()
    }

    /// The configured candidate list of a power level (empty when none is configured).
    pub fn power_level(&self, level: PowerLevel) -> &[String] {
        self.power_levels
            .get(&level)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}
