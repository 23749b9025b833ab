//! `tollgate serve --demo`: a quick start with no provider key and no
//! network. The project's mock provider runs inside the process on a
//! loopback port, and the catalog is two models it serves, priced like a
//! small real model so that calls are billed as usual.

use crate::settings::{Environment, Settings};
use tollgate_core::catalog::Catalog;
use tollgate_core::config::{ConfigError, parse_catalog};
use tollgate_mock_provider::{MockOptions, MockProvider};

/// What the demo model answers (one word per stream chunk).
const DEMO_REPLY: &str = "Hello from the Tollgate demo model! This answer was made inside the \
gateway, without a provider key; the call was billed like any other.";

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("--demo serves its own catalog: leave TOLLGATE_CONFIG (--config) unset")]
    WithConfig,
    #[error("--demo is for trying Tollgate out, not for TOLLGATE_ENV=production")]
    InProduction,
    #[error("cannot start the demo provider on a loopback port: {0}")]
    Bind(#[from] std::io::Error),
}

/// Starts the demo provider when `settings.demo` is set, and points the
/// settings at it. The provider stops when the returned value is dropped.
pub async fn start(settings: &mut Settings) -> Result<Option<MockProvider>, DemoError> {
    if !settings.demo {
        return Ok(None);
    }
    if settings.config.is_some() {
        return Err(DemoError::WithConfig);
    }
    if settings.environment == Environment::Production {
        return Err(DemoError::InProduction);
    }
    let options = MockOptions {
        // Recording would keep every request in memory for the life of the process.
        record: false,
        reply: DEMO_REPLY.to_owned(),
        ..MockOptions::default()
    };
    let provider = MockProvider::start_on(([127, 0, 0, 1], 0).into(), options).await?;
    settings.demo_base_url = Some(provider.base_url());
    tracing::warn!(
        "demo mode: models demo-chat and demo-embed are answered locally by a demo provider; \
         restart without --demo (and with provider keys or TOLLGATE_CONFIG) for real models"
    );
    Ok(Some(provider))
}

/// The demo catalog, its provider at `base_url`. The provider has a
/// (meaningless) platform key, as a real one would: the demo provider, like
/// OpenAI, refuses calls without one, and an organization's own key (BYOK)
/// replaces it.
pub fn catalog(base_url: &str) -> Result<Catalog, ConfigError> {
    let yaml = format!(
        r#"
providers:
  demo: {{ kind: openai, base_url: "{base_url}", api_key: "demo-platform-key" }}
models:
  - {{ id: demo-chat, provider: demo, tier: 1, quality: 50, max_output_tokens: 1024,
      price: {{ input_per_mtok: 0.15, output_per_mtok: 0.60 }} }}
  - {{ id: demo-embed, provider: demo, mode: embedding, price: {{ input_per_mtok: 0.02 }} }}
power_levels:
  eco: [demo-chat]
  balanced: [demo-chat]
  precision: [demo-chat]
auto_detect: {{ enabled: false }}
"#
    );
    parse_catalog(&yaml, |_| None)
}
