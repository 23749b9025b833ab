//! Imports other gateways' configuration into Tollgate's (contract section 2).
//! Today one source: a LiteLLM proxy `config.yaml` ([`litellm::convert`]),
//! behind `tollgate import litellm PATH [--output FILE]`.
//!
//! What cannot be mapped is returned as notes for the caller to show; no
//! key value is ever written: `os.environ/NAME` becomes `${NAME}`, and a
//! literal key becomes a reference to a variable the notes name.

pub mod litellm;
mod output;

pub use litellm::convert;

/// A converted configuration.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The Tollgate configuration file, YAML, with the settings that belong
    /// in the environment listed in its leading comment.
    pub yaml: String,
    /// Settings of `tollgate serve` (environment variable, value) that
    /// carry the source's router settings; values hold no secret.
    pub settings: Vec<(String, String)>,
    /// What could not be mapped, or was mapped only approximately, one
    /// sentence each.
    pub notes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("the LiteLLM config is not valid YAML: {0}")]
    Yaml(String),
    #[error("the LiteLLM config has no usable `model_list`: {0}")]
    NoModels(String),
    /// A bug of the importer: what it wrote is not a configuration Tollgate accepts.
    #[error("the imported configuration is not valid: {0}")]
    Invalid(String),
}
