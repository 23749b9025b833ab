//! Every setting of the `tollgate` binary, from flags or the environment
//! (contract section 1). Secrets are hidden from `--help` and debug output.

use clap::{Args, ValueEnum};
use secrecy::SecretString;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const DEFAULT_DATABASE_URL: &str = "sqlite://tollgate.db";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Environment {
    Development,
    Production,
}

#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to bind.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// sqlite://PATH (embedded, single node; created if missing) or postgres://… (many replicas).
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL, hide_env_values = true)]
    pub database_url: String,

    /// YAML catalog of providers, models and power levels; without it, a built-in catalog.
    #[arg(long, global = true, env = "TOLLGATE_CONFIG")]
    pub config: Option<PathBuf>,

    /// Serve a local demo provider instead of the catalog: models
    /// `demo-chat` (plain and streamed) and `demo-embed`, answered inside
    /// this process with no provider key and no network, and billed at
    /// their catalog price like any model. For trying Tollgate out; refused
    /// with TOLLGATE_CONFIG and in production.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_DEMO",
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        default_missing_value = "true",
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub demo: bool,

    /// The running demo provider's base URL (set by `serve --demo`).
    #[arg(skip)]
    pub demo_base_url: Option<String>,

    /// Bearer token with platform-admin rights on the management API.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<SecretString>,

    /// Root key for BYOK encryption: 32 bytes as base64, or a passphrase.
    /// Development only: generated once into tollgate.master.key beside the SQLite file.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_MASTER_KEY",
        hide_env_values = true
    )]
    pub master_key: Option<SecretString>,

    /// `production` refuses to start without TOLLGATE_MASTER_KEY and a non-default DATABASE_URL.
    #[arg(
        long = "env",
        global = true,
        env = "TOLLGATE_ENV",
        value_enum,
        default_value = "development"
    )]
    pub environment: Environment,

    /// Optional Redis (`redis://HOST:PORT[/DB]`) that rate-limit counters are
    /// kept in, so that limits hold exactly across replicas. Without it,
    /// each process counts on its own. If Redis cannot be reached, calls are
    /// counted in-process (fail open, with a warning) until it is back.
    #[arg(long, global = true, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,

    /// Secret that signs management JWTs (HS256), at least 32 bytes. Tokens
    /// from `POST /api/v1/auth/login` are valid for an hour. Without it, in
    /// development, a random secret is generated once and kept in the
    /// database (`system_settings`), shared by every replica; in production,
    /// sign-in is off (login answers 503) and only the admin token works.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_JWT_SECRET",
        hide_env_values = true
    )]
    pub jwt_secret: Option<SecretString>,

    /// Signing secret (`whsec_…`) that verifies Stripe webhooks
    /// (`POST /api/v1/billing/webhooks/stripe`). Several, comma-separated,
    /// while one is rotated out: any of them verifies. Unset: that webhook
    /// answers 503.
    #[arg(
        long,
        global = true,
        env = "STRIPE_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub stripe_webhook_secret: Option<SecretString>,

    /// HMAC key that verifies Lago webhooks (`X-Lago-Signature`, Lago's
    /// `hmac` signature mode). Unset: that webhook answers 503.
    #[arg(
        long,
        global = true,
        env = "LAGO_WEBHOOK_SECRET",
        hide_env_values = true
    )]
    pub lago_webhook_secret: Option<SecretString>,

    /// Lago's public key, which verifies Lago webhooks in Lago's `jwt`
    /// signature mode (its default): the value of Lago's
    /// `GET /api/v1/webhooks/public_key` (a base64-encoded PEM) or the PEM
    /// itself. Unset: a `jwt`-mode webhook answers 503.
    #[arg(long, global = true, env = "LAGO_WEBHOOK_PUBLIC_KEY")]
    pub lago_webhook_public_key: Option<String>,

    /// Lago's API URL, the issuer (`iss`) its `jwt`-mode signatures must
    /// name: Lago's own `LAGO_API_URL` for a self-hosted Lago.
    #[arg(
        long,
        global = true,
        env = "LAGO_API_URL",
        default_value = "https://api.getlago.com"
    )]
    pub lago_api_url: String,

    /// Most database connections this process opens. Default: 1 on SQLite
    /// (one writer at a time anyway; more would only wait on its lock), 16 on PostgreSQL.
    #[arg(long, global = true, env = "TOLLGATE_DB_MAX_CONNECTIONS")]
    pub db_max_connections: Option<u32>,

    /// Longest wait, in seconds, for the next bytes from a provider.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_UPSTREAM_TIMEOUT_SECS",
        default_value_t = 300
    )]
    pub upstream_timeout_secs: u64,

    /// Milliseconds a credit lease may sit idle (no call in flight) before
    /// it goes back to the organization's balance; 0 returns it at once.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_LEASE_IDLE_MS",
        default_value_t = 1000
    )]
    pub lease_idle_ms: u64,

    /// Milliseconds without a heartbeat after which a gateway instance is
    /// taken for dead: the other instances (on PostgreSQL) then return its
    /// credit leases and API-key budget leases. Heartbeats come every
    /// third of this, at most every 5 s.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_INSTANCE_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub instance_timeout_ms: u64,

    /// Directory for this instance's local data: the settlement journal
    /// lives in its `journal/` folder. Default: the SQLite file's directory,
    /// or `./tollgate-data` on PostgreSQL. Give each replica its own, on a
    /// disk that outlives the process (see Billing in the README).
    #[arg(long, global = true, env = "TOLLGATE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,

    /// Milliseconds between two commits of journaled settlements to the
    /// database (0: commit as soon as the last commit ends). Balances, the
    /// ledger and usage read through another replica lag by at most this
    /// plus one commit; reads through the same replica wait for it.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_COMMIT_INTERVAL_MS",
        default_value_t = 10
    )]
    pub commit_interval_ms: u64,

    /// Milliseconds a call waits for the database when it needs it (a
    /// credit lease top-up, a free connection) before it is answered 503
    /// `service_unavailable` with `Retry-After`.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_DB_TIMEOUT_MS",
        default_value_t = 1500
    )]
    pub db_timeout_ms: u64,

    /// Platform fee on calls paid with an organization's own provider key
    /// (BYOK), in percent (0 to 100) of what the call would cost at list
    /// price in the organization's unit: USD micro-dollars for `usd`
    /// organizations, tokens for `tokens`, one request for `requests`;
    /// rounded up to a whole unit. 0: BYOK calls are free (still recorded).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_BYOK_FEE_PERCENT",
        default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=100)
    )]
    pub byok_fee_percent: u32,

    /// Prefix of every Redis key Tollgate writes (to share one Redis).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_REDIS_PREFIX",
        default_value = "tollgate"
    )]
    pub redis_prefix: String,

    /// Requests per minute each organization may make, over all its keys
    /// (on top of each key's own `rpm_limit`). Unset: no organization limit.
    #[arg(long, global = true, env = "TOLLGATE_ORG_RPM_LIMIT", value_parser = clap::value_parser!(i64).range(1..))]
    pub org_rpm_limit: Option<i64>,

    /// Tokens (prompt and completion) per minute each organization may use,
    /// over all its keys. Unset: no organization limit.
    #[arg(long, global = true, env = "TOLLGATE_ORG_TPM_LIMIT", value_parser = clap::value_parser!(i64).range(1..))]
    pub org_tpm_limit: Option<i64>,

    /// Days a stored OpenAI Responses answer (`store: true`, the default)
    /// is kept for `GET /v1/responses/{id}` and `previous_response_id`.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_RESPONSES_RETENTION_DAYS",
        default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(1..=3650)
    )]
    pub responses_retention_days: u32,

    /// Calls each organization may have in flight at once, over all its
    /// keys. Unset: no organization limit.
    #[arg(long, global = true, env = "TOLLGATE_ORG_MAX_CONCURRENCY", value_parser = clap::value_parser!(i64).range(1..))]
    pub org_max_concurrency: Option<i64>,

    /// Retryable failures in a row (connect error, timeout, 429, 5xx) after
    /// which a deployment (a model on a provider) is skipped for a cooldown.
    /// A failure with `Retry-After` starts a cooldown at once.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_COOLDOWN_FAILURES",
        default_value_t = 3
    )]
    pub cooldown_failures: u32,

    /// How long, in milliseconds, a failing deployment is skipped; then one
    /// call probes it. A provider's `Retry-After` replaces this (up to 5 minutes).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_COOLDOWN_MS",
        default_value_t = 30_000
    )]
    pub cooldown_ms: u64,

    /// Extra rounds over the candidates when every one failed with a
    /// retryable error before its first byte, each after an exponential
    /// backoff with jitter (100 ms, 200 ms, … up to 2 s). 0: no retry (the
    /// OpenAI SDKs retry on their own).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_ROUTING_RETRIES",
        default_value_t = 0
    )]
    pub routing_retries: u32,

    /// Total time, in milliseconds from the request's arrival, within which
    /// retry rounds may start.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_ROUTING_DEADLINE_MS",
        default_value_t = 30_000
    )]
    pub routing_deadline_ms: u64,

    /// Stripe event types that grant credits, comma-separated.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_STRIPE_GRANT_EVENTS",
        default_value = "checkout.session.completed,payment_intent.succeeded,invoice.paid"
    )]
    pub stripe_grant_events: String,

    /// Lago webhook types that grant credits (for a succeeded invoice), comma-separated.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_LAGO_GRANT_EVENTS",
        default_value = "invoice.payment_status_updated,invoice.paid_credit_added"
    )]
    pub lago_grant_events: String,

    /// Milliseconds between two looks of the outbound webhook worker for
    /// due deliveries and balance crossings (credits.low, credits.depleted).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_WEBHOOK_POLL_MS",
        default_value_t = 1000
    )]
    pub webhook_poll_ms: u64,

    /// Attempts per outbound webhook delivery before it is marked failed.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_WEBHOOK_MAX_ATTEMPTS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub webhook_max_attempts: u32,

    /// Milliseconds before the first retry of a failed delivery; each next
    /// retry waits twice as long (at most an hour), with jitter (a random
    /// point in the upper half of the wait).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_WEBHOOK_BACKOFF_MS",
        default_value_t = 2000
    )]
    pub webhook_backoff_ms: u64,

    /// Milliseconds a webhook receiver has to answer (connect included);
    /// redirects are never followed.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_WEBHOOK_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub webhook_timeout_ms: u64,

    /// Let outbound webhooks reach loopback, private, link-local and other
    /// non-public addresses (`localhost`, 10.0.0.0/8, 169.254.169.254, …).
    /// Off by default: organizations choose the URLs, and must not reach
    /// the gateway's own network through them.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_WEBHOOK_ALLOW_PRIVATE",
        action = clap::ArgAction::Set,
        default_value_t = false,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub webhook_allow_private: bool,

    /// Seconds between two `usage.batch` summaries (sent only when there is new usage).
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_USAGE_BATCH_SECS",
        default_value_t = 60
    )]
    pub usage_batch_secs: u64,

    /// Largest request body accepted, in bytes.
    #[arg(long, global = true, env = "TOLLGATE_MAX_BODY_BYTES", default_value_t = 10 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Milliseconds a connection may take, once ready for a request (just
    /// opened, or done with the previous one), to send that request's
    /// headers; then it is closed. Bounds slowloris and idle keep-alive
    /// connections alike.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_HTTP_HEADER_READ_TIMEOUT_MS",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub http_header_read_timeout_ms: u64,

    /// Most HTTP connections open at once; further ones wait in the listen
    /// backlog until one closes.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_HTTP_MAX_CONNECTIONS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u32).range(1..)
    )]
    pub http_max_connections: u32,
    #[command(flatten)]
    pub observability: crate::observe::settings::ObservabilitySettings,
}

impl Settings {
    /// Settings for tests and embedding: defaults, on the given database.
    pub fn for_database(database_url: &str) -> Settings {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: database_url.to_owned(),
            responses_retention_days: 30,
            config: None,
            demo: false,
            demo_base_url: None,
            admin_token: None,
            master_key: None,
            environment: Environment::Development,
            redis_url: None,
            jwt_secret: None,
            stripe_webhook_secret: None,
            lago_webhook_secret: None,
            lago_webhook_public_key: None,
            lago_api_url: "https://api.getlago.com".into(),
            db_max_connections: None,
            upstream_timeout_secs: 300,
            max_body_bytes: 10 * 1024 * 1024,
            http_header_read_timeout_ms: 30_000,
            http_max_connections: 10_000,
            redis_prefix: "tollgate".to_owned(),
            org_rpm_limit: None,
            org_tpm_limit: None,
            org_max_concurrency: None,
            cooldown_failures: 3,
            cooldown_ms: 30_000,
            routing_retries: 0,
            routing_deadline_ms: 30_000,
            lease_idle_ms: 1000,
            instance_timeout_ms: 30_000,
            data_dir: None,
            commit_interval_ms: 10,
            db_timeout_ms: 1500,
            byok_fee_percent: 0,
            stripe_grant_events: "checkout.session.completed,payment_intent.succeeded,invoice.paid"
                .to_owned(),
            lago_grant_events: "invoice.payment_status_updated,invoice.paid_credit_added"
                .to_owned(),
            webhook_poll_ms: 1000,
            webhook_max_attempts: 8,
            webhook_backoff_ms: 2000,
            webhook_timeout_ms: 10_000,
            usage_batch_secs: 60,
            webhook_allow_private: false,
            observability: Default::default(),
        }
    }
}
