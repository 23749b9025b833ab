//! The Tollgate configuration the importer writes: the file's shape
//! (contract section 2, plus `fallbacks` and `auto_detect`), serialized in
//! the order it was built so the output reads like the source.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

/// A YAML mapping that keeps insertion order.
#[derive(Debug, Clone)]
pub(crate) struct Ordered<V>(pub(crate) Vec<(String, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<V> Ordered<V> {
    pub(crate) fn get(&self, key: &str) -> Option<&V> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<V: Serialize> Serialize for Ordered<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct Config {
    pub(crate) providers: Ordered<Provider>,
    pub(crate) models: Vec<Model>,
    #[serde(skip_serializing_if = "Ordered::is_empty")]
    pub(crate) fallbacks: Ordered<Vec<String>>,
    pub(crate) auto_detect: AutoDetect,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Provider {
    pub(crate) kind: &'static str,
    pub(crate) base_url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) keyless: bool,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Model {
    pub(crate) id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) upstream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) deployments: Option<Vec<Deployment>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tier: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) quality: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) context_window: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) max_output_tokens: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) supports_tools: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) supports_vision: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) price: Option<Price>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Deployment {
    pub(crate) provider: String,
    pub(crate) upstream: String,
    #[serde(skip_serializing_if = "is_one")]
    pub(crate) weight: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) rpm: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) tpm: Option<i64>,
}

fn is_one(n: &u32) -> bool {
    *n == 1
}

/// USD per million tokens, as the file writes prices.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Price {
    pub(crate) input_per_mtok: f64,
    pub(crate) output_per_mtok: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) cached_input_per_mtok: Option<f64>,
}

#[derive(Debug, Serialize)]
pub(crate) struct AutoDetect {
    pub(crate) enabled: bool,
}
