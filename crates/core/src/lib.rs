//! Tollgate's shared core: the types every other crate speaks (money, billing
//! modes, the model catalog and its configuration, ids, time) and the database
//! handle that works on both SQLite and PostgreSQL.

pub mod batch;
pub mod budget;
pub mod catalog;
pub mod catalog_store;
pub mod changes;
pub mod config;
pub mod db;
pub mod error;
pub mod ids;
pub mod load_once;
pub mod money;
#[cfg(feature = "openapi")]
pub mod openapi;
pub mod outage;
pub mod presets;
pub mod responses_store;
pub mod sql;
#[cfg(feature = "testing")]
pub mod testing;
pub mod time;
pub mod wakes;

pub use budget::BudgetPeriod;
pub use catalog::{
    AutoDetect, Capabilities, Catalog, Deployment, Detection, ModelEntry, ModelMode, ModelPattern,
    PowerLevel, Price, ProviderEntry, ProviderKind, is_detectable_name,
};
pub use db::{Backend, Db, DbError};
pub use error::ErrorCode;
pub use money::{BillingMode, Unit};
pub use secrecy::{ExposeSecret, SecretString};
