//! Built-in provider presets: where each well-known provider is reached and
//! which environment variable conventionally holds its key. A provider in
//! the configuration names one with `preset:`, or by its own name when it
//! gives no `base_url` (`providers: { groq: { api_key: "${GROQ_API_KEY}" } }`).

use crate::catalog::ProviderKind;

/// One well-known provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub kind: ProviderKind,
    pub base_url: &'static str,
    /// The conventional key variable; `None` for local servers that need no key.
    pub key_env: Option<&'static str>,
}

const fn preset(
    name: &'static str,
    kind: ProviderKind,
    base_url: &'static str,
    key_env: Option<&'static str>,
) -> Preset {
    Preset {
        name,
        kind,
        base_url,
        key_env,
    }
}

/// Every preset, by name.
pub const PRESETS: &[Preset] = &[
    preset(
        "openai",
        ProviderKind::OpenAi,
        "https://api.openai.com/v1",
        Some("OPENAI_API_KEY"),
    ),
    preset(
        "anthropic",
        ProviderKind::Anthropic,
        "https://api.anthropic.com",
        Some("ANTHROPIC_API_KEY"),
    ),
    preset(
        "gemini",
        ProviderKind::Gemini,
        "https://generativelanguage.googleapis.com",
        Some("GEMINI_API_KEY"),
    ),
    preset(
        "deepseek",
        ProviderKind::OpenAi,
        "https://api.deepseek.com/v1",
        Some("DEEPSEEK_API_KEY"),
    ),
    preset(
        "groq",
        ProviderKind::OpenAi,
        "https://api.groq.com/openai/v1",
        Some("GROQ_API_KEY"),
    ),
    preset(
        "together",
        ProviderKind::OpenAi,
        "https://api.together.xyz/v1",
        Some("TOGETHER_API_KEY"),
    ),
    preset(
        "fireworks",
        ProviderKind::OpenAi,
        "https://api.fireworks.ai/inference/v1",
        Some("FIREWORKS_API_KEY"),
    ),
    preset(
        "openrouter",
        ProviderKind::OpenAi,
        "https://openrouter.ai/api/v1",
        Some("OPENROUTER_API_KEY"),
    ),
    preset(
        "deepinfra",
        ProviderKind::OpenAi,
        "https://api.deepinfra.com/v1/openai",
        Some("DEEPINFRA_API_KEY"),
    ),
    preset(
        "mistral",
        ProviderKind::OpenAi,
        "https://api.mistral.ai/v1",
        Some("MISTRAL_API_KEY"),
    ),
    preset(
        "xai",
        ProviderKind::OpenAi,
        "https://api.x.ai/v1",
        Some("XAI_API_KEY"),
    ),
    preset(
        "vllm",
        ProviderKind::OpenAi,
        "http://localhost:8000/v1",
        None,
    ),
    preset(
        "ollama",
        ProviderKind::OpenAi,
        "http://localhost:11434/v1",
        None,
    ),
];

/// The preset of this name, if any.
pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_has_a_distinct_name_and_an_http_url() {
        for (i, p) in PRESETS.iter().enumerate() {
            assert!(p.base_url.starts_with("http"), "{}", p.name);
            assert!(!p.base_url.ends_with('/'), "{}", p.name);
            assert!(
                PRESETS[i + 1..].iter().all(|q| q.name != p.name),
                "{}",
                p.name
            );
        }
        assert_eq!(find("groq").map(|p| p.kind), Some(ProviderKind::OpenAi));
        assert!(find("ollama").is_some_and(|p| p.key_env.is_none()));
    }
}
