//! What every handler shares. Cheap to clone: one `Arc`.

use crate::metrics::Metrics;
use secrecy::SecretString;
use std::ops::Deref;
use std::sync::Arc;
use tollgate_billing::Billing;
use tollgate_core::Db;
use tollgate_core::catalog_store::LiveCatalog;
use tollgate_credentials::CredentialStore;
use tollgate_gateway::Gateway;
use tollgate_providers::ProviderClient;
use tollgate_tenants::Tenants;

pub struct Inner {
    pub db: Db,
    /// Stored OpenAI Responses, per organization.
    pub responses: tollgate_core::responses_store::ResponseStore,
    pub tenants: Tenants,
    pub billing: Billing,
    /// Organizations' own provider keys (BYOK), for the management plane.
    pub credentials: CredentialStore,
    /// The catalog, with runtime changes: read it once per request with
    /// `catalog.current()` (a pointer load).
    pub catalog: Arc<LiveCatalog>,
    /// For the management plane's provider-key checks.
    pub providers: ProviderClient,
    /// The call pipeline of the data plane.
    pub gateway: Gateway,
    pub admin_token: Option<SecretString>,
    /// Signs and checks management JWTs; `None` when sign-in is off
    /// (production without `TOLLGATE_JWT_SECRET`).
    pub jwt: Option<crate::auth::Jwt>,
    pub metrics: Arc<Metrics>,
    /// Traces, call log lines and the request log (the gateway's observer).
    pub observer: Arc<crate::observe::Observer>,
    pub max_body_bytes: usize,
    /// Billing webhooks: Stripe and Lago in, Standard Webhooks out.
    pub webhooks: tollgate_webhooks::Webhooks,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
