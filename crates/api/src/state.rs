//! What every handler shares. Cheap to clone: one `Arc`.

use crate::metrics::Metrics;
use secrecy::SecretString;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::task::TaskTracker;
use tollgate_billing::Billing;
use tollgate_core::Db;
use tollgate_core::catalog_store::LiveCatalog;
use tollgate_credentials::CredentialStore;
use tollgate_providers::ProviderClient;
use tollgate_tenants::Tenants;

pub struct Inner {
    pub db: Db,
    /// Stored OpenAI Responses, per organization.
    pub responses: tollgate_core::responses_store::ResponseStore,
    pub tenants: Tenants,
    pub billing: Billing,
    /// Organizations' own provider keys (BYOK), cached for the request path.
    pub credentials: CredentialStore,
    /// `TOLLGATE_BYOK_FEE_PERCENT`: the fee on BYOK calls, in percent of list cost.
    pub byok_fee_percent: u32,
    /// The catalog, with runtime changes: read it once per request with
    /// `catalog.current()` (a pointer load).
    pub catalog: Arc<LiveCatalog>,
    pub providers: ProviderClient,
    pub admin_token: Option<SecretString>,
    /// Signs and checks management JWTs; `None` when sign-in is off
    /// (production without `TOLLGATE_JWT_SECRET`).
    pub jwt: Option<crate::auth::Jwt>,
    pub metrics: Metrics,
    /// Streams still being read or settled; shutdown waits for them.
    pub streams: TaskTracker,
    pub max_body_bytes: usize,
    /// Rate limits of keys and organizations (in-process or Redis).
    pub limiter: tollgate_routing::limits::RateLimiter,
    /// The limits every organization has (`TOLLGATE_ORG_*`).
    pub org_limits: tollgate_routing::limits::Limits,
    /// Circuit breakers, latency and error rates of deployments.
    pub health: tollgate_routing::health::Health,
    /// Retry rounds over the candidates, and the deadline they must start within.
    pub retries: Retries,
    /// Billing webhooks: Stripe and Lago in, Standard Webhooks out.
    pub webhooks: tollgate_webhooks::Webhooks,
}

/// `TOLLGATE_ROUTING_RETRIES` and `TOLLGATE_ROUTING_DEADLINE_MS`.
#[derive(Debug, Clone, Copy)]
pub struct Retries {
    pub rounds: u32,
    pub deadline: std::time::Duration,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
