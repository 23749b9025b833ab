//! The catalog as it is now: the configuration's (or the built-in one) with
//! the models added, changed or disabled at runtime laid over it. Those
//! changes are rows of `catalog_models` (the model's definition as JSON,
//! plus `disabled`); every replica polls the table and swaps in a rebuilt
//! catalog when it changed, so the hot path only loads a pointer.

use crate::catalog::{Catalog, ModelEntry, Price, ProviderEntry};
use crate::config::{ConfigError, RawDeployment, RawModel, build_model};
use crate::db::{Db, is_unique_violation};
use crate::money::UsdMicros;
use crate::outage::{Dependency, OutageLog};
use crate::time;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use sqlx::Row;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// The highest price accepted, per million tokens or per request: one
/// million USD, as in the configuration file.
const MAX_PRICE_MICROS: i64 = 1_000_000_000_000;

/// Every replica polls each second: a database outage is logged once, then
/// as a periodic summary.
static POLL_FAILED: OutageLog = OutageLog::new(
    Dependency::Database,
    "polling catalog changes failed: changes reach this replica when the database is back",
);

/// Longest model id or upstream name accepted.
const MAX_NAME_CHARS: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum CatalogStoreError {
    /// The message names the field (`tier`, `price.input_per_mtok_usd_micros`).
    #[error("invalid field `{path}`: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "model `{0}` already exists; change it with PATCH /api/v1/models/{0} (also to enable it again)"
    )]
    Exists(String),
    #[error("model `{0}` is not in the catalog")]
    NotFound(String),
    #[error("model `{0}` was changed by another request at the same time; try again")]
    Conflict(String),
    #[error("stored definition of model `{id}` is unreadable: {message}")]
    Corrupt { id: String, message: String },
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
}

impl From<ConfigError> for CatalogStoreError {
    fn from(e: ConfigError) -> Self {
        match e {
            ConfigError::Field { path, message } => CatalogStoreError::Invalid { path, message },
            other => CatalogStoreError::Invalid {
                path: ".".to_owned(),
                message: other.to_string(),
            },
        }
    }
}

fn invalid(path: &str, message: impl Into<String>) -> CatalogStoreError {
    CatalogStoreError::Invalid {
        path: path.to_owned(),
        message: message.into(),
    }
}

/// Prices as the management API writes them: micro-dollars per million
/// tokens (and per request), as `GET /api/v1/models` shows them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CatalogPriceInput))]
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosPrice {
    #[serde(default)]
    pub input_per_mtok_usd_micros: i64,
    #[serde(default)]
    pub output_per_mtok_usd_micros: i64,
    /// `null`: the input price.
    pub cached_input_per_mtok_usd_micros: Option<i64>,
    /// `null`: the input price.
    #[serde(default)]
    pub cache_write_per_mtok_usd_micros: Option<i64>,
    #[serde(default)]
    pub per_request_usd_micros: i64,
}

impl MicrosPrice {
    fn to_price(&self) -> Result<Price, CatalogStoreError> {
        let check = |name: &str, value: i64| {
            if (0..=MAX_PRICE_MICROS).contains(&value) {
                Ok(UsdMicros(value))
            } else {
                Err(invalid(
                    &format!("price.{name}"),
                    format!("must be between 0 and {MAX_PRICE_MICROS} micro-dollars"),
                ))
            }
        };
        let input = check("input_per_mtok_usd_micros", self.input_per_mtok_usd_micros)?;
        Ok(Price {
            input_per_mtok: input,
            output_per_mtok: check(
                "output_per_mtok_usd_micros",
                self.output_per_mtok_usd_micros,
            )?,
            cached_input_per_mtok: match self.cached_input_per_mtok_usd_micros {
                Some(v) => check("cached_input_per_mtok_usd_micros", v)?,
                None => input,
            },
            cache_write_per_mtok: match self.cache_write_per_mtok_usd_micros {
                Some(v) => check("cache_write_per_mtok_usd_micros", v)?,
                None => input,
            },
            per_request: check("per_request_usd_micros", self.per_request_usd_micros)?,
        })
    }

    fn of(price: &Price) -> MicrosPrice {
        MicrosPrice {
            input_per_mtok_usd_micros: price.input_per_mtok.0,
            output_per_mtok_usd_micros: price.output_per_mtok.0,
            cached_input_per_mtok_usd_micros: Some(price.cached_input_per_mtok.0),
            cache_write_per_mtok_usd_micros: Some(price.cache_write_per_mtok.0),
            per_request_usd_micros: price.per_request.0,
        }
    }
}

/// A model to add: the fields of a configuration `models` entry, with
/// [`MicrosPrice`] prices.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ModelSpec(RawModel<MicrosPrice>);

/// Documented as `CreateCatalogModel`, with the fields of the entry it wraps.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ModelSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        <RawModel<MicrosPrice> as utoipa::PartialSchema>::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ModelSpec {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("CreateCatalogModel")
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <RawModel<MicrosPrice> as utoipa::ToSchema>::schemas(schemas);
    }
}

impl ModelSpec {
    pub fn id(&self) -> &str {
        &self.0.id
    }

    /// The definition of a model of the catalog, to change it.
    fn of(entry: &ModelEntry) -> ModelSpec {
        let (provider, deployments) = if entry.deployments.is_empty() {
            (Some(entry.provider.clone()), None)
        } else {
            let list = entry
                .deployments
                .iter()
                .map(|d| RawDeployment {
                    provider: d.entry.provider.clone(),
                    upstream: Some(d.entry.upstream.clone()),
                    weight: d.weight,
                    rpm: d.rpm,
                    tpm: d.tpm,
                })
                .collect();
            (None, Some(list))
        };
        ModelSpec(RawModel {
            id: entry.id.clone(),
            provider,
            upstream: Some(entry.upstream.clone()),
            deployments,
            supports_tools: Some(entry.capabilities.tools),
            supports_vision: Some(entry.capabilities.vision),
            supports_json: Some(entry.capabilities.json),
            tier: entry.tier,
            quality: entry.quality,
            context_window: entry.context_window,
            max_output_tokens: entry.max_output_tokens,
            price: MicrosPrice::of(&entry.price),
            mode: entry.mode,
        })
    }

    /// The model this defines, checked against the catalog's providers.
    fn build(&self, base: &Catalog) -> Result<ModelEntry, CatalogStoreError> {
        let m = &self.0;
        check_name("id", &m.id)?;
        if m.id == "auto" {
            return Err(invalid(
                "id",
                "`auto` is reserved for routing by power level",
            ));
        }
        if let Some(upstream) = &m.upstream {
            check_name("upstream", upstream)?;
        }
        for (i, d) in m.deployments.iter().flatten().enumerate() {
            if let Some(upstream) = &d.upstream {
                check_name(&format!("deployments[{i}].upstream"), upstream)?;
            }
        }
        let price = m.price.to_price()?;
        Ok(build_model(
            m.clone(),
            price,
            &base.provider_names(),
            &|f: &str| f.to_owned(),
        )?)
    }
}

/// Names are sent to providers and shown in lists: printable, bounded.
fn check_name(path: &str, name: &str) -> Result<(), CatalogStoreError> {
    if name.trim().is_empty() {
        return Err(invalid(path, "must not be empty"));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(invalid(
            path,
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ));
    }
    if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(invalid(
            path,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

/// A change to a model: each field given replaces the model's.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = UpdateCatalogModel))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPatch {
    pub tier: Option<u8>,
    pub quality: Option<u8>,
    pub context_window: Option<i64>,
    pub max_output_tokens: Option<i64>,
    pub price: Option<PricePatch>,
    pub supports_tools: Option<bool>,
    pub supports_vision: Option<bool>,
    pub supports_json: Option<bool>,
    /// `true` hides the model from routing and `GET /v1/models`; `false`
    /// brings it back.
    pub disabled: Option<bool>,
}

/// The prices to change, in micro-dollars; the others stay.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = CatalogPricePatch))]
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricePatch {
    pub input_per_mtok_usd_micros: Option<i64>,
    pub output_per_mtok_usd_micros: Option<i64>,
    pub cached_input_per_mtok_usd_micros: Option<i64>,
    pub cache_write_per_mtok_usd_micros: Option<i64>,
    pub per_request_usd_micros: Option<i64>,
}

impl ModelPatch {
    fn apply(&self, spec: &mut ModelSpec) {
        let m = &mut spec.0;
        m.tier = self.tier.unwrap_or(m.tier);
        m.quality = self.quality.unwrap_or(m.quality);
        m.context_window = self.context_window.unwrap_or(m.context_window);
        m.max_output_tokens = self.max_output_tokens.unwrap_or(m.max_output_tokens);
        m.supports_tools = self.supports_tools.or(m.supports_tools);
        m.supports_vision = self.supports_vision.or(m.supports_vision);
        m.supports_json = self.supports_json.or(m.supports_json);
        if let Some(price) = &self.price {
            let p = &mut m.price;
            p.input_per_mtok_usd_micros = price
                .input_per_mtok_usd_micros
                .unwrap_or(p.input_per_mtok_usd_micros);
            p.output_per_mtok_usd_micros = price
                .output_per_mtok_usd_micros
                .unwrap_or(p.output_per_mtok_usd_micros);
            p.cached_input_per_mtok_usd_micros = price
                .cached_input_per_mtok_usd_micros
                .or(p.cached_input_per_mtok_usd_micros);
            p.cache_write_per_mtok_usd_micros = price
                .cache_write_per_mtok_usd_micros
                .or(p.cache_write_per_mtok_usd_micros);
            p.per_request_usd_micros = price
                .per_request_usd_micros
                .unwrap_or(p.per_request_usd_micros);
        }
    }
}

/// A model as the management API shows it after a change.
#[derive(Debug, Clone)]
pub struct ManagedModel {
    pub entry: Arc<ModelEntry>,
    pub disabled: bool,
}

/// What the table looked like when the catalog was last rebuilt: every
/// change inserts a row or moves its `updated_at` forward, so the count and
/// the sum of `updated_at` change with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Signature {
    rows: i64,
    latest: i64,
    total: i64,
}

/// The catalog every request reads ([`LiveCatalog::current`]), rebuilt
/// from the configuration and `catalog_models` whenever the table changes.
pub struct LiveCatalog {
    db: Db,
    base: Arc<Catalog>,
    current: ArcSwap<Catalog>,
    /// One rebuild at a time, so an older read never replaces a newer one.
    rebuilding: tokio::sync::Mutex<Option<Signature>>,
}

impl LiveCatalog {
    /// The configured catalog with the stored changes laid over it.
    pub async fn load(db: Db, base: Catalog) -> Result<LiveCatalog, CatalogStoreError> {
        let base = Arc::new(base);
        let live = LiveCatalog {
            db,
            current: ArcSwap::new(base.clone()),
            base,
            rebuilding: tokio::sync::Mutex::new(None),
        };
        live.refresh().await?;
        Ok(live)
    }

    /// The catalog as it is now: a pointer load, no database round trip.
    pub fn current(&self) -> Arc<Catalog> {
        self.current.load_full()
    }

    /// A provider. Providers come from the configuration only, so they
    /// need no snapshot.
    pub fn provider(&self, name: &str) -> Option<&Arc<ProviderEntry>> {
        self.base.provider(name)
    }

    pub fn providers(&self) -> impl Iterator<Item = &Arc<ProviderEntry>> {
        self.base.providers()
    }

    /// Rebuilds from the table now (after a change made here).
    pub async fn refresh(&self) -> Result<(), CatalogStoreError> {
        let mut seen = self.rebuilding.lock().await;
        let signature = self.signature().await?;
        self.rebuild().await?;
        *seen = Some(signature);
        Ok(())
    }

    /// Rebuilds only when the table changed since the last rebuild.
    async fn refresh_if_changed(&self) -> Result<(), CatalogStoreError> {
        let mut seen = self.rebuilding.lock().await;
        let signature = self.signature().await?;
        if *seen != Some(signature) {
            self.rebuild().await?;
            *seen = Some(signature);
        }
        Ok(())
    }

    /// Picks up changes made by any replica, polling every `interval`.
    pub async fn watch_changes(self: Arc<Self>, interval: Duration) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            match self.refresh_if_changed().await {
                Ok(()) => POLL_FAILED.recovered(),
                Err(e) => POLL_FAILED.failed(&e),
            }
        }
    }

    async fn signature(&self) -> Result<Signature, CatalogStoreError> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n, CAST(COALESCE(MAX(updated_at), 0) AS BIGINT) AS latest, \
             CAST(COALESCE(SUM(updated_at), 0) AS BIGINT) AS total FROM catalog_models",
        )
        .fetch_one(self.db.pool())
        .await?;
        Ok(Signature {
            rows: row.try_get("n")?,
            latest: row.try_get("latest")?,
            total: row.try_get("total")?,
        })
    }

    async fn rebuild(&self) -> Result<(), CatalogStoreError> {
        let rows = sqlx::query(
            "SELECT id, definition, CAST(CASE WHEN disabled THEN 1 ELSE 0 END AS BIGINT) AS disabled \
             FROM catalog_models ORDER BY created_at, id",
        )
        .fetch_all(self.db.pool())
        .await?;
        let mut replaced = Vec::new();
        let mut hidden = HashSet::new();
        let mut disabled = Vec::new();
        for row in rows {
            let id: String = row.try_get("id")?;
            let is_disabled = row.try_get::<i64, _>("disabled")? != 0;
            let definition: String = row.try_get("definition")?;
            if is_disabled {
                hidden.insert(id.clone());
            }
            // A row the configuration no longer supports (its provider was
            // removed) is left out, and said so, rather than stop the gateway.
            let entry = match parse_spec(&id, &definition).and_then(|s| s.build(&self.base)) {
                Ok(entry) => entry,
                Err(e) => {
                    tracing::warn!(model = %id, error = %e, "skipping a stored catalog model");
                    continue;
                }
            };
            if is_disabled {
                disabled.push(entry);
            } else {
                replaced.push(entry);
            }
        }
        self.current
            .store(Arc::new(self.base.overlaid(replaced, &hidden, disabled)));
        Ok(())
    }

    /// Adds a model (enabled). 409 when the id is taken, by the catalog or
    /// by a stored (even disabled) model.
    pub async fn add(&self, spec: ModelSpec) -> Result<ManagedModel, CatalogStoreError> {
        let entry = spec.build(&self.base)?;
        let id = entry.id.clone();
        if self.current().model(&id).is_some() || self.stored(&id).await?.is_some() {
            return Err(CatalogStoreError::Exists(id));
        }
        insert(&self.db, &id, &encode(&spec)?, false)
            .await
            .map_err(|e| conflict_or(e, || CatalogStoreError::Exists(id.clone())))?;
        self.refresh().await?;
        Ok(ManagedModel {
            entry: Arc::new(entry),
            disabled: false,
        })
    }

    /// Changes a model of the catalog, enabled or disabled.
    pub async fn update(
        &self,
        id: &str,
        patch: &ModelPatch,
    ) -> Result<ManagedModel, CatalogStoreError> {
        let stored = self.stored(id).await?;
        let (mut spec, was_disabled) = match &stored {
            Some((definition, disabled)) => (parse_spec(id, definition)?, *disabled),
            None => match self.base.model(id) {
                Some(entry) => (ModelSpec::of(entry), false),
                None => return Err(CatalogStoreError::NotFound(id.to_owned())),
            },
        };
        patch.apply(&mut spec);
        let entry = spec.build(&self.base)?;
        let disabled = patch.disabled.unwrap_or(was_disabled);
        let definition = encode(&spec)?;
        let conflict = || CatalogStoreError::Conflict(id.to_owned());
        match &stored {
            Some((old_definition, _)) => {
                let changed = sqlx::query(
                    "UPDATE catalog_models SET definition = $1, disabled = $2, \
                     updated_at = CASE WHEN updated_at < $3 THEN $3 ELSE updated_at + 1 END \
                     WHERE id = $4 AND definition = $5 AND disabled = $6",
                )
                .bind(&definition)
                .bind(disabled)
                .bind(time::now_millis())
                .bind(id)
                .bind(old_definition)
                .bind(was_disabled)
                .execute(self.db.pool())
                .await?;
                if changed.rows_affected() == 0 {
                    return Err(conflict());
                }
            }
            None => insert(&self.db, id, &definition, disabled)
                .await
                .map_err(|e| conflict_or(e, conflict))?,
        }
        self.refresh().await?;
        Ok(ManagedModel {
            entry: Arc::new(entry),
            disabled,
        })
    }

    /// A stored model's definition and whether it is disabled.
    async fn stored(&self, id: &str) -> Result<Option<(String, bool)>, CatalogStoreError> {
        let row = sqlx::query(
            "SELECT definition, CAST(CASE WHEN disabled THEN 1 ELSE 0 END AS BIGINT) AS disabled \
             FROM catalog_models WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        row.map(|row| {
            Ok((
                row.try_get("definition")?,
                row.try_get::<i64, _>("disabled")? != 0,
            ))
        })
        .transpose()
    }
}

async fn insert(db: &Db, id: &str, definition: &str, disabled: bool) -> Result<(), sqlx::Error> {
    let now = time::now_millis();
    sqlx::query(
        "INSERT INTO catalog_models (id, definition, disabled, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(definition)
    .bind(disabled)
    .bind(now)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// A unique-key violation means another request got there first.
fn conflict_or(e: sqlx::Error, conflict: impl FnOnce() -> CatalogStoreError) -> CatalogStoreError {
    if is_unique_violation(&e) {
        conflict()
    } else {
        CatalogStoreError::Db(e)
    }
}

fn encode(spec: &ModelSpec) -> Result<String, CatalogStoreError> {
    serde_json::to_string(spec).map_err(|e| CatalogStoreError::Corrupt {
        id: spec.id().to_owned(),
        message: e.to_string(),
    })
}

fn parse_spec(id: &str, definition: &str) -> Result<ModelSpec, CatalogStoreError> {
    serde_json::from_str(definition).map_err(|e| CatalogStoreError::Corrupt {
        id: id.to_owned(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_catalog;

    const CONFIG: &str = r#"
providers:
  openai: { base_url: "http://localhost/v1" }
models:
  - { id: mini, provider: openai, price: { input_per_mtok: 0.15, output_per_mtok: 0.6 } }
  - { id: big, provider: openai, quality: 95 }
power_levels:
  eco: [mini, big]
"#;

    fn spec(json: serde_json::Value) -> ModelSpec {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_catalog_model_round_trips_through_its_definition() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        let mini = catalog.model("mini").unwrap();
        let again = ModelSpec::of(mini).build(&catalog).unwrap();
        assert_eq!(again.price, mini.price);
        assert_eq!(
            (again.provider.as_str(), again.upstream.as_str()),
            ("openai", "mini")
        );
        assert_eq!(again.deployments.len(), 1);
    }

    #[test]
    fn definitions_are_validated_naming_the_field() {
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        for (body, path) in [
            (
                serde_json::json!({"id": "x", "provider": "nowhere"}),
                "provider",
            ),
            (
                serde_json::json!({"id": "x", "provider": "openai", "tier": 6}),
                "tier",
            ),
            (
                serde_json::json!({"id": "x", "provider": "openai", "price": {"input_per_mtok_usd_micros": -1}}),
                "price.input_per_mtok_usd_micros",
            ),
            (serde_json::json!({"id": "a b", "provider": "openai"}), "id"),
            (
                serde_json::json!({"id": "auto", "provider": "openai"}),
                "id",
            ),
        ] {
            match spec(body).build(&catalog) {
                Err(CatalogStoreError::Invalid { path: got, .. }) => assert_eq!(got, path),
                other => panic!("{path}: {other:?}"),
            }
        }
    }

    #[test]
    fn overlay_replaces_hides_and_drops_hidden_models_from_power_levels() {
        use crate::catalog::PowerLevel;
        let catalog = parse_catalog(CONFIG, |_| None).unwrap();
        let mut cheaper = ModelSpec::of(catalog.model("big").unwrap());
        ModelPatch {
            price: Some(PricePatch {
                input_per_mtok_usd_micros: Some(7),
                ..PricePatch::default()
            }),
            ..ModelPatch::default()
        }
        .apply(&mut cheaper);
        let big = cheaper.build(&catalog).unwrap();
        let added = spec(serde_json::json!({"id": "new", "provider": "openai"}))
            .build(&catalog)
            .unwrap();
        let hidden: HashSet<String> = ["mini".to_owned()].into();
        let mini = catalog.model("mini").unwrap().as_ref().clone();
        let live = catalog.overlaid(vec![big, added], &hidden, vec![mini]);
        assert!(live.model("mini").is_none());
        assert_eq!(
            live.model("big").unwrap().price.input_per_mtok,
            UsdMicros(7)
        );
        assert_eq!(
            live.model("big").unwrap().deployments[0]
                .entry
                .price
                .input_per_mtok,
            UsdMicros(7)
        );
        assert!(live.model("new").is_some());
        assert_eq!(live.power_level(PowerLevel::Eco), ["big".to_owned()]);
        assert!(live.detect("openai/mini").is_none());
        assert_eq!(live.disabled_models().len(), 1);
    }
}
