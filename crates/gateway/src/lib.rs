//! Tollgate's call pipeline: one call from admission to settlement, for
//! every inbound API (OpenAI Chat Completions and Embeddings, Anthropic
//! Messages, and any later one). No HTTP here: surfaces decode their wire
//! format into a [`CallRequest`] and encode the [`Outcome`] back.
//!
//! The life of a call ([`Gateway::call`]), top to bottom:
//! 1. admission ([`admission`]): the key's scope, the organization's
//!    allowed models, candidates with `models` fallbacks, capability and
//!    `max_price` filters, the key's and organization's rate limits (kept
//!    until the call or stream ends);
//! 2. routing ([`pipeline`]): for each candidate and each of its
//!    deployments, in retry rounds within the routing deadline and the
//!    client's timeout: cooldown check, deployment caps, the paying key
//!    (BYOK or platform), the hold (prompt bound + clamped completion ×
//!    answers), the provider call, health feedback;
//! 3. settlement: the usage record and the charge through
//!    `Billing::settle`, at once for a plain answer, by the stream's pump
//!    (which keeps reading a provider after the client left) for a stream;
//! 4. observation ([`observe`]): every attempt and the end of every call go
//!    to the [`CallObserver`].
//!
//! # Adding a surface (a new inbound API)
//! A surface is a decoder and an encoder, nothing else:
//! 1. decode the body into a provider request in Tollgate's (OpenAI)
//!    format: [`Operation::Chat`] with a `ChatRequest`, or
//!    [`Operation::Embed`] with an `EmbeddingRequest`, or
//!    [`Operation::Responses`] (a Responses request in its native and its
//!    Chat form; `Route::wire` tells which one answered) (see
//!    `tollgate_providers::anthropic::inbound` for a decoder), and validate
//!    it;
//! 2. take the gateway's options out of it with [`call_options`] (the
//!    body's extra fields, and the `x-tollgate-*` headers of
//!    [`headers`] as plain `Option<&str>`);
//! 3. `gateway.call(CallRequest::new(principal, request_id, operation,
//!    options, body_len)).await`;
//! 4. encode the outcome: [`Outcome::Answer`] carries the provider's
//!    OpenAI-format JSON body and the usage; [`Outcome::Stream`] a bounded
//!    receiver of [`StreamItem`]s (OpenAI chunks, then one
//!    [`StreamItem::End`] with the usage and how it ended). Set the
//!    [`Route`] headers (model, provider, byok, cost, attempts) and render a
//!    [`GatewayError`] in the surface's own error shape (its
//!    [`tollgate_core::ErrorCode`] gives the status and type).
//!
//! Nothing else is needed: billing, routing, retries, limits and metrics
//! are the same for every surface. In `crates/api`, step 4 is
//! `routes/surface.rs::serve` with a new `Dialect` variant.

pub mod admission;
mod count;
pub mod error;
mod finish;
pub mod headers;
mod lease;
pub mod observe;
pub mod options;
mod paying;
pub mod pipeline;
pub mod stream;

pub use error::GatewayError;
pub use observe::{CallObserver, NoObserver};
pub use options::{CallOptions, OptionHeaders, call_options};
pub use pipeline::{CallRequest, Operation, Outcome, Route, Wire};
pub use stream::{Events, StreamEnd, StreamItem};

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::task::TaskTracker;
use tollgate_billing::Billing;
use tollgate_core::catalog_store::LiveCatalog;
use tollgate_credentials::CredentialStore;
use tollgate_providers::ProviderClient;
use tollgate_routing::health::Health;
use tollgate_routing::limits::{Limits, RateLimiter};

/// `TOLLGATE_ROUTING_RETRIES` and `TOLLGATE_ROUTING_DEADLINE_MS`.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    /// Rounds over the candidates after the first.
    pub rounds: u32,
    /// Retry rounds start only within this time from the call's start.
    pub deadline: Duration,
}

/// What the pipeline works with.
pub struct Parts {
    /// The catalog, with runtime changes (read once per call).
    pub catalog: Arc<LiveCatalog>,
    pub providers: ProviderClient,
    /// Organizations' own provider keys (BYOK), cached.
    pub credentials: CredentialStore,
    pub billing: Billing,
    /// For the `budget.exceeded` event.
    pub webhooks: tollgate_webhooks::Webhooks,
    /// Rate limits of keys, organizations and deployments.
    pub limiter: RateLimiter,
    /// The limits every organization has (`TOLLGATE_ORG_*`).
    pub org_limits: Limits,
    /// Circuit breakers, latency and error rates of deployments.
    pub health: Health,
    pub retries: Retries,
    /// `TOLLGATE_BYOK_FEE_PERCENT`: the fee on BYOK calls, in percent of list cost.
    pub byok_fee_percent: u32,
    /// Calls and streams still running or settling; shutdown waits for them.
    pub streams: TaskTracker,
    pub observer: Arc<dyn CallObserver>,
}

/// The pipeline. Cheap to clone: one `Arc`.
#[derive(Clone)]
pub struct Gateway(Arc<Parts>);

impl Gateway {
    pub fn new(parts: Parts) -> Gateway {
        Gateway(Arc::new(parts))
    }
}

impl Deref for Gateway {
    type Target = Parts;
    fn deref(&self) -> &Parts {
        &self.0
    }
}
