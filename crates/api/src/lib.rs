//! Tollgate's HTTP API: a thin layer that turns HTTP into calls on the
//! domain crates. [`start`] prepares a gateway from its settings, [`app`]
//! builds the whole HTTP surface (tests drive it without a socket), and
//! [`Gateway::serve`] runs it until shutdown.

pub mod auth;
pub mod console;
pub mod demo;
pub mod error;
pub mod extract;
mod limits;
pub mod metrics;
mod middleware;
pub mod observe;
pub mod openapi;
pub(crate) mod routes;
pub mod server;
pub mod settings;
mod startup;
pub mod state;

pub use middleware::Surface;
pub use routes::app;
pub use settings::{Environment, Settings};
pub use startup::{Gateway, rotate_master_key, start};
