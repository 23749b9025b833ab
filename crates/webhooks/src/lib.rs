//! Billing webhooks, both ways.
//!
//! - **In** ([`Webhooks::stripe_event`], [`Webhooks::lago_event`]): a
//!   payment event from Stripe or Lago, its signature verified, grants
//!   credits through `tollgate-billing` exactly once: the dedup row
//!   (`inbound_webhook_events`, unique per source and event id), the grant,
//!   its ledger row and the `credits.granted` outbox rows commit in one
//!   transaction.
//! - **Out** ([`Webhooks::create_subscription`], [`Webhooks::run_worker`]):
//!   organizations subscribe URLs to events; each event is a row of the
//!   `webhook_deliveries` outbox, signed per the Standard Webhooks spec and
//!   delivered by a worker with exponential backoff and jitter. Rows are
//!   claimed with a lease column, so one replica delivers each, and a
//!   restart picks up whatever was not delivered.

mod addresses;
mod events;
mod inbound;
mod settled;
pub mod signature;
mod subscriptions;
mod worker;

#[cfg(feature = "openapi")]
pub use events::WebhookEvent;
pub use events::{BudgetExceeded, EVENT_TYPES, WebhookPayload};
pub use inbound::{InboundOutcome, LAGO_DEFAULT_GRANT_EVENTS, STRIPE_DEFAULT_GRANT_EVENTS};
pub use signature::{LagoJwt, LagoKeyError, SignatureError};
pub use subscriptions::{Attempt, Delivery, NewSubscription, Subscription};

use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tollgate_billing::{Billing, BillingError};
use tollgate_core::Db;
use tollgate_credentials::{CredentialError, CredentialStore};

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// The inbound webhook's secret is not configured (answered 503).
    #[error("{0} is not set: this webhook is disabled")]
    NotConfigured(&'static str),
    #[error("invalid signature: {0}")]
    Signature(#[from] SignatureError),
    #[error("invalid {field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("webhook subscription not found")]
    NotFound,
    #[error(transparent)]
    Billing(#[from] BillingError),
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error("the delivery client could not be built: {0}")]
    Client(String),
    #[error("a delivery's payload could not be encoded: {0}")]
    Encode(#[from] serde_json::Error),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// How webhooks behave on this instance.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// `STRIPE_WEBHOOK_SECRET`, split on commas: any of them verifies.
    pub stripe_secrets: Vec<SecretString>,
    /// `LAGO_WEBHOOK_SECRET`: Lago's HMAC key (its `hmac` mode).
    pub lago_secret: Option<SecretString>,
    /// `LAGO_WEBHOOK_PUBLIC_KEY` and `LAGO_API_URL`: Lago's `jwt` mode.
    pub lago_jwt: Option<LagoJwt>,
    /// Stripe event types that grant credits.
    pub stripe_grant_events: Vec<String>,
    /// Lago webhook types that grant credits.
    pub lago_grant_events: Vec<String>,
    /// How often the worker looks for due deliveries and balance crossings.
    pub poll_interval: Duration,
    /// Attempts per delivery before it is marked failed.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long.
    pub backoff_base: Duration,
    /// Longest wait for a receiver's answer.
    pub timeout: Duration,
    /// How often `usage.batch` summarises new usage.
    pub usage_batch_interval: Duration,
    /// Whether deliveries may go to loopback, private, link-local and other
    /// non-public addresses (off by default: organizations pick the URLs).
    pub allow_private_addresses: bool,
}

impl Default for WebhookOptions {
    fn default() -> Self {
        WebhookOptions {
            stripe_secrets: Vec::new(),
            lago_secret: None,
            lago_jwt: None,
            stripe_grant_events: STRIPE_DEFAULT_GRANT_EVENTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            lago_grant_events: LAGO_DEFAULT_GRANT_EVENTS
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            poll_interval: Duration::from_secs(1),
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            usage_batch_interval: Duration::from_secs(60),
            allow_private_addresses: false,
        }
    }
}

/// The webhook service of one gateway instance. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    billing: Billing,
    credentials: CredentialStore,
    options: WebhookOptions,
    http: reqwest::Client,
    attempt_outcomes: AttemptOutcomes,
}

/// Delivery attempts made by this process, by what came of them (for metrics).
#[derive(Debug, Default)]
pub struct AttemptOutcomes {
    /// The receiver took the event.
    pub delivered: std::sync::atomic::AtomicU64,
    /// It failed; another attempt will follow.
    pub retrying: std::sync::atomic::AtomicU64,
    /// It failed, and it was the last attempt.
    pub failed: std::sync::atomic::AtomicU64,
}

impl AttemptOutcomes {
    fn count(&self, status: &str) {
        let counter = match status {
            "delivered" => &self.delivered,
            "failed" => &self.failed,
            _ => &self.retrying,
        };
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    /// `(outcome, attempts)` for each outcome.
    pub fn snapshot(&self) -> [(&'static str, u64); 3] {
        let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        [
            ("delivered", get(&self.delivered)),
            ("retrying", get(&self.retrying)),
            ("failed", get(&self.failed)),
        ]
    }
}

impl Webhooks {
    /// The service; deliveries start with [`Webhooks::run_worker`].
    pub fn new(
        db: Db,
        billing: Billing,
        credentials: CredentialStore,
        options: WebhookOptions,
    ) -> Result<Webhooks, WebhookError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        // A receiver's redirect is its answer, never followed: following it
        // would send signed events wherever the receiver points.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent("tollgate-webhooks");
        if !options.allow_private_addresses {
            http = http.dns_resolver(addresses::PublicOnly).no_proxy();
        }
        let http = http
            .build()
            .map_err(|e| WebhookError::Client(e.to_string()))?;
        Ok(Webhooks {
            inner: Arc::new(Inner {
                db,
                billing,
                credentials,
                options,
                http,
                attempt_outcomes: AttemptOutcomes::default(),
            }),
        })
    }

    fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Delivery attempts made by this process so far, by outcome.
    pub fn attempt_outcomes(&self) -> [(&'static str, u64); 3] {
        self.inner.attempt_outcomes.snapshot()
    }

    fn options(&self) -> &WebhookOptions {
        &self.inner.options
    }
}
