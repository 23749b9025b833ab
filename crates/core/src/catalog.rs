//! The model catalog: which providers exist, which models they serve, at what
//! price, and which models each power level prefers. Built once from the
//! configuration and shared read-only on the hot path.

use crate::money::{TokenUsage, UsdMicros};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Which wire format a provider speaks.
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
}

/// What a model is called for.
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
    pub per_request: UsdMicros,
}

impl Price {
    /// The USD cost of one call. Token costs are summed exactly (in
    /// micro-dollars × 10⁻⁶) and rounded up once to a whole micro-dollar, so a
    /// call is never charged less than its list price; the per-request fee is
    /// added as is.
    pub fn cost(&self, usage: &TokenUsage) -> UsdMicros {
        let cached = usage
            .cached_prompt_tokens
            .clamp(0, usage.prompt_tokens.max(0));
        let uncached = usage.prompt_tokens.max(0) - cached;
        let scaled = i128::from(uncached) * i128::from(self.input_per_mtok.0)
            + i128::from(cached) * i128::from(self.cached_input_per_mtok.0)
            + i128::from(usage.completion_tokens.max(0)) * i128::from(self.output_per_mtok.0);
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
}

/// A routing preference for `"model": "auto"`.
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

/// The whole catalog, validated: every model's provider exists and every
/// power-level entry names a chat model.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    providers: HashMap<String, Arc<ProviderEntry>>,
    models: Vec<Arc<ModelEntry>>,
    by_id: HashMap<String, usize>,
    power_levels: HashMap<PowerLevel, Vec<String>>,
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
        }
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
