//! Money and credit units. Everything is an integer: USD amounts are
//! micro-dollars (1 USD = 1 000 000), token and request credits are counts.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A USD amount in micro-dollars.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UsdMicros(pub i64);

/// How an organization pays for calls.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    /// Charged the USD list cost of each call, in micro-dollars.
    Usd,
    /// Charged prompt plus completion tokens.
    Tokens,
    /// Charged one credit per call.
    Requests,
}

/// The unit an organization's balance and costs are counted in.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    UsdMicros,
    Tokens,
    Requests,
}

impl BillingMode {
    pub fn unit(self) -> Unit {
        match self {
            BillingMode::Usd => Unit::UsdMicros,
            BillingMode::Tokens => Unit::Tokens,
            BillingMode::Requests => Unit::Requests,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BillingMode::Usd => "usd",
            BillingMode::Tokens => "tokens",
            BillingMode::Requests => "requests",
        }
    }
}

impl Unit {
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::UsdMicros => "usd_micros",
            Unit::Tokens => "tokens",
            Unit::Requests => "requests",
        }
    }
}

/// A value that is not one of the names of an enum.
#[derive(Debug, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownName(pub String);

impl FromStr for BillingMode {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "usd" => Ok(BillingMode::Usd),
            "tokens" => Ok(BillingMode::Tokens),
            "requests" => Ok(BillingMode::Requests),
            other => Err(UnknownName(other.to_owned())),
        }
    }
}

impl fmt::Display for BillingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Token counts reported by a provider for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// All prompt tokens, cached ones included (OpenAI's convention).
    pub prompt_tokens: i64,
    pub completion_tokens: i64,
    /// The part of `prompt_tokens` served from the provider's prompt cache.
    pub cached_prompt_tokens: i64,
    /// The part of `prompt_tokens` written to the provider's prompt cache
    /// (Anthropic's `cache_creation_input_tokens`), priced at the
    /// catalog's cache-write price rather than the input price.
    #[serde(default)]
    pub cache_write_tokens: i64,
}

impl TokenUsage {
    pub fn total(&self) -> i64 {
        self.prompt_tokens.saturating_add(self.completion_tokens)
    }
}
