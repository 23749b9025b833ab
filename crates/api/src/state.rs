//! What every handler shares. Cheap to clone: one `Arc`.

use crate::metrics::Metrics;
use secrecy::SecretString;
use std::ops::Deref;
use std::sync::Arc;
use tokio_util::task::TaskTracker;
use tollgate_billing::Billing;
use tollgate_core::{Catalog, Db};
use tollgate_credentials::CredentialStore;
use tollgate_providers::ProviderClient;
use tollgate_tenants::Tenants;

pub struct Inner {
    pub db: Db,
    pub tenants: Tenants,
    pub billing: Billing,
    /// Organizations' own provider keys (BYOK), cached for the request path.
    pub credentials: CredentialStore,
    /// `TOLLGATE_BYOK_FEE_PERCENT`: the fee on BYOK calls, in percent of list cost.
    pub byok_fee_percent: u32,
    pub catalog: Arc<Catalog>,
    pub providers: ProviderClient,
    pub admin_token: Option<SecretString>,
    pub metrics: Metrics,
    /// Streams still being read or settled; shutdown waits for them.
    pub streams: TaskTracker,
    pub max_body_bytes: usize,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
