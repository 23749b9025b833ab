//! Start-up and shutdown: database, migrations, master key, catalog,
//! background tasks, and a graceful stop that settles every stream; and
//! the master-key rotation behind `tollgate keys rotate`.

use crate::metrics::Metrics;
use crate::settings::{DEFAULT_DATABASE_URL, Environment, Settings};
use crate::state::{AppState, Inner};
use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tollgate_billing::{Billing, BillingOptions};
use tollgate_core::Db;
use tollgate_core::config::load_catalog;
use tollgate_core::outage::{Dependency, OutageLog};
use tollgate_credentials::{
    CredentialError, CredentialStore, MasterKey, RootKey, Rotation, generate_salt,
    load_or_create_dev_key_file, passphrase_salt, unlock,
};
use tollgate_providers::{ClientOptions, ProviderClient};
use tollgate_tenants::Tenants;

/// A prepared gateway: migrated database, loaded catalog, background tasks running.
pub struct Gateway {
    pub state: AppState,
    background: Vec<JoinHandle<()>>,
    limits: crate::server::ServerLimits,
}

/// Connects, migrates, checks the master key and loads the catalog.
pub async fn start(settings: &Settings) -> anyhow::Result<Gateway> {
    check_production(settings)?;
    let catalog = match &settings.demo_base_url {
        Some(url) => crate::demo::catalog(url).context("loading the demo catalog")?,
        None => load_catalog(settings.config.as_deref()).context("loading the configuration")?,
    };
    let max_connections = settings.db_max_connections.unwrap_or(
        match tollgate_core::db::backend_of(&settings.database_url)? {
            tollgate_core::Backend::Sqlite => 1,
            tollgate_core::Backend::Postgres => 16,
        },
    );
    let db = Db::connect_with(
        &settings.database_url,
        max_connections,
        db_timeout(settings),
    )
    .await
    .context("connecting to the database")?;
    db.migrate().await.context("applying migrations")?;
    // Checked now, so that a wrong key is refused at start, never
    // discovered on a request.
    let root_key = load_master_key(settings, &db).await?;
    let credentials = CredentialStore::new(db.clone(), root_key);

    // On SQLite (one node), leases left by an earlier run are returned here.
    let billing = Billing::start(
        db.clone(),
        BillingOptions {
            single_node: db.backend() == tollgate_core::Backend::Sqlite,
            lease_idle: Duration::from_millis(settings.lease_idle_ms),
            instance_timeout: instance_timeout(settings),
            journal_dir: journal_dir(settings),
            commit_interval: Duration::from_millis(settings.commit_interval_ms),
            db_timeout: db_timeout(settings),
            ..BillingOptions::default()
        },
    )
    .await
    .context("starting billing")?;
    let tenants = Tenants::new(db.clone());
    let providers = ProviderClient::new(&ClientOptions {
        read_timeout: Duration::from_secs(settings.upstream_timeout_secs.max(1)),
        ..ClientOptions::default()
    })?;
    let jwt = load_jwt(settings, &db).await?;
    let catalog = Arc::new(
        tollgate_core::catalog_store::LiveCatalog::load(db.clone(), catalog)
            .await
            .context("loading the catalog's runtime changes")?,
    );
    let webhooks = tollgate_webhooks::Webhooks::new(
        db.clone(),
        billing.clone(),
        credentials.clone(),
        webhook_options(settings)?,
    )?;
    let observability = &settings.observability;
    let (tracer, trace_exporter) = match observability
        .trace_config()
        .context("the OpenTelemetry settings")?
    {
        Some(config) => {
            tracing::info!(endpoint = %config.endpoint, "exporting traces over OTLP/HTTP");
            let (tracer, task) = tollgate_observe::Tracer::start(config)?;
            (tracer, Some(task))
        }
        None => (tollgate_observe::Tracer::off(), None),
    };
    let (request_log, request_log_writer) =
        tollgate_observe::RequestLog::start(db.clone(), observability.request_log);
    let metrics = Arc::new(
        Metrics::new(observability.metrics_per_organization)
            .with_webhooks(webhooks.clone())
            .with_key_cache(tenants.cache().clone()),
    );
    let observer = Arc::new(crate::observe::Observer::new(
        tracer,
        request_log.clone(),
        observability.log_format == crate::observe::settings::LogFormat::Json,
        metrics.clone(),
    ));
    let gateway = tollgate_gateway::Gateway::new(tollgate_gateway::Parts {
        catalog: catalog.clone(),
        providers: providers.clone(),
        credentials: credentials.clone(),
        billing: billing.clone(),
        webhooks: webhooks.clone(),
        limiter: rate_limiter(settings)?,
        org_limits: tollgate_routing::limits::Limits {
            requests_per_minute: settings.org_rpm_limit,
            tokens_per_minute: settings.org_tpm_limit,
            concurrency: settings.org_max_concurrency,
        },
        health: tollgate_routing::health::Health::new(tollgate_routing::health::HealthConfig {
            failure_threshold: settings.cooldown_failures.max(1),
            cooldown: Duration::from_millis(settings.cooldown_ms),
            ..Default::default()
        }),
        retries: tollgate_gateway::Retries {
            rounds: settings.routing_retries,
            deadline: Duration::from_millis(settings.routing_deadline_ms),
        },
        byok_fee_percent: settings.byok_fee_percent,
        streams: TaskTracker::new(),
        observer: observer.clone(),
    });
    let responses = tollgate_core::responses_store::ResponseStore::new(
        db.clone(),
        Duration::from_secs(u64::from(settings.responses_retention_days) * 86_400),
    );
    let state = AppState(Arc::new(Inner {
        responses,
        db,
        jwt,
        tenants: tenants.clone(),
        billing: billing.clone(),
        credentials: credentials.clone(),
        catalog: catalog.clone(),
        providers,
        gateway,
        admin_token: settings
            .admin_token
            .clone()
            .filter(|t| !t.expose_secret().is_empty()),
        metrics,
        observer,
        max_body_bytes: settings.max_body_bytes,
        webhooks: webhooks.clone(),
    }));
    let background = vec![
        tokio::spawn(tenants.watch_key_changes(Duration::from_millis(500))),
        // A changed credential reaches every replica within a second.
        tokio::spawn(credentials.watch_changes(Duration::from_millis(250))),
        tokio::spawn(billing.maintain(heartbeat_interval(settings))),
        // A catalog change reaches every replica within a second.
        tokio::spawn(catalog.watch_changes(Duration::from_millis(500))),
        tokio::spawn(webhooks.run_worker()),
        // SQLite only: WAL checkpoints off the settlement writer's path.
        tokio::spawn(state.db.clone().checkpoint_wal(Duration::from_millis(100))),
    ];
    let mut background = background;
    background.extend(trace_exporter);
    background.extend(request_log_writer);
    let retention = observability.retention();
    // Often enough that a short retention (tests) is kept to within a
    // second or so; at most once a minute.
    let sweep = (retention.bodies.min(retention.rows) / 2)
        .clamp(Duration::from_millis(200), Duration::from_secs(60));
    background.push(tokio::spawn(
        request_log.enforce_retention(retention, sweep),
    ));
    if let Some(url) = settings.redis_url.as_deref().filter(|u| !u.is_empty()) {
        let shared = tollgate_routing::health::SharedCooldowns::new(url, &settings.redis_prefix)
            .context("REDIS_URL is not a valid Redis URL")?;
        background.push(tokio::spawn(share_cooldowns(state.clone(), shared)));
    }
    let limits = crate::server::ServerLimits {
        header_read_timeout: Duration::from_millis(settings.http_header_read_timeout_ms),
        max_connections: usize::try_from(settings.http_max_connections).unwrap_or(usize::MAX),
    };
    Ok(Gateway {
        state,
        background,
        limits,
    })
}

impl Gateway {
    /// Serves on `listener` until `shutdown` completes, then stops
    /// gracefully: open connections and streams finish and are settled.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let state = self.state.clone();
        crate::server::serve(listener, crate::app(state.clone()), self.limits, shutdown).await;
        state.gateway.streams.close();
        state.gateway.streams.wait().await;
        // The last calls' log rows and spans, before the tasks stop.
        state
            .observer
            .request_log
            .flush(Duration::from_secs(5))
            .await;
        state.observer.tracer.flush(Duration::from_secs(5)).await;
        for task in &self.background {
            task.abort();
        }
        if let Err(e) = state.billing.shutdown().await {
            tracing::warn!(error = %e, "stopping billing cleanly failed");
        }
        state.db.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Shares cooldowns with the other replicas through Redis, four times a
/// second; an outage is logged once, then as a periodic summary.
async fn share_cooldowns(state: AppState, mut shared: tollgate_routing::health::SharedCooldowns) {
    static REDIS_DOWN: OutageLog = OutageLog::new(
        Dependency::Redis,
        "Redis is unreachable: cooldowns are per replica until it is back",
    );
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tick.tick().await;
        match shared.sync(&state.gateway.health).await {
            Ok(()) => REDIS_DOWN.recovered(),
            Err(e) => REDIS_DOWN.failed(&e),
        }
    }
}

/// The webhook settings. `STRIPE_WEBHOOK_SECRET` may hold several secrets,
/// comma-separated, while one is rotated out. A Lago public key that is
/// not one stops the start.
fn webhook_options(settings: &Settings) -> anyhow::Result<tollgate_webhooks::WebhookOptions> {
    let list = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect()
    };
    Ok(tollgate_webhooks::WebhookOptions {
        stripe_secrets: settings
            .stripe_webhook_secret
            .as_ref()
            .map(|s| list(s.expose_secret()))
            .unwrap_or_default()
            .into_iter()
            .map(SecretString::from)
            .collect(),
        lago_secret: settings.lago_webhook_secret.clone(),
        lago_jwt: settings
            .lago_webhook_public_key
            .as_deref()
            .filter(|key| !key.trim().is_empty())
            .map(|key| tollgate_webhooks::LagoJwt::new(key, &settings.lago_api_url))
            .transpose()?,
        stripe_grant_events: list(&settings.stripe_grant_events),
        lago_grant_events: list(&settings.lago_grant_events),
        poll_interval: Duration::from_millis(settings.webhook_poll_ms.max(10)),
        max_attempts: settings.webhook_max_attempts,
        backoff_base: Duration::from_millis(settings.webhook_backoff_ms),
        timeout: Duration::from_millis(settings.webhook_timeout_ms.max(100)),
        usage_batch_interval: Duration::from_secs(settings.usage_batch_secs.max(1)),
        allow_private_addresses: settings.webhook_allow_private,
    })
}

/// The rate limiter: in Redis when `REDIS_URL` is set, else in-process.
fn rate_limiter(settings: &Settings) -> anyhow::Result<tollgate_routing::limits::RateLimiter> {
    use tollgate_routing::limits::RateLimiter;
    match settings.redis_url.as_deref().filter(|u| !u.is_empty()) {
        Some(url) => RateLimiter::with_redis(url, &settings.redis_prefix)
            .context("REDIS_URL is not a valid Redis URL"),
        None => Ok(RateLimiter::in_process()),
    }
}

fn check_production(settings: &Settings) -> anyhow::Result<()> {
    if settings.environment != Environment::Production {
        return Ok(());
    }
    if settings.master_key.is_none() {
        bail!("TOLLGATE_ENV=production needs TOLLGATE_MASTER_KEY to be set");
    }
    if settings.database_url == DEFAULT_DATABASE_URL {
        bail!("TOLLGATE_ENV=production needs DATABASE_URL to be set (not the default SQLite file)");
    }
    Ok(())
}

/// The JWT signer: `TOLLGATE_JWT_SECRET` (at least 32 bytes), or in
/// development a secret generated once and kept in the database. In
/// production without the setting, sign-in is off (login answers 503).
async fn load_jwt(settings: &Settings, db: &Db) -> anyhow::Result<Option<crate::auth::Jwt>> {
    if let Some(secret) = &settings.jwt_secret {
        let secret = secret.expose_secret().as_bytes();
        if secret.len() < crate::auth::MIN_SECRET_BYTES {
            bail!(
                "TOLLGATE_JWT_SECRET must be at least {} bytes",
                crate::auth::MIN_SECRET_BYTES
            );
        }
        return Ok(Some(crate::auth::Jwt::new(secret)));
    }
    if settings.environment == Environment::Production {
        tracing::warn!(
            "TOLLGATE_JWT_SECRET is not set: user sign-in (POST /api/v1/auth/login) is off"
        );
        return Ok(None);
    }
    let secret = crate::auth::dev_secret(db)
        .await
        .context("reading the development JWT secret")?;
    tracing::warn!(
        "TOLLGATE_JWT_SECRET is not set: management JWTs are signed with a development secret kept in the database"
    );
    Ok(Some(crate::auth::Jwt::new(&secret)))
}

/// The master key from `TOLLGATE_MASTER_KEY` (or, without it, the
/// development key file), checked against the database.
async fn load_master_key(settings: &Settings, db: &Db) -> anyhow::Result<RootKey> {
    let key = match &settings.master_key {
        Some(value) => master_key_from_setting(db, value).await?,
        None => {
            let dir = tollgate_core::db::sqlite_path(&settings.database_url)
                .and_then(|p| p.parent().map(std::path::Path::to_path_buf))
                .unwrap_or_default();
            let path = dir.join("tollgate.master.key");
            let (key, created) = load_or_create_dev_key_file(&path)?;
            tracing::warn!(
                path = %path.display(),
                created,
                "TOLLGATE_MASTER_KEY is not set: using a development master key kept in a file; \
                 set TOLLGATE_MASTER_KEY in production"
            );
            key
        }
    };
    unlock(db, key).await.map_err(|e| match e {
        CredentialError::WrongMasterKey => anyhow::anyhow!(
            "TOLLGATE_MASTER_KEY is not the master key this database was set up with; refusing to start \
             (a wrong key would make every stored provider key unreadable; after `tollgate keys rotate`, \
             use the new key)"
        ),
        other => anyhow::Error::new(other).context("checking the master key"),
    })
}

/// A master key setting: a base64 key as is, a passphrase with the salt
/// stored in the database.
async fn master_key_from_setting(db: &Db, value: &SecretString) -> anyhow::Result<MasterKey> {
    let value = value.expose_secret();
    if MasterKey::is_raw_key_setting(value) {
        return Ok(MasterKey::from_setting(value, &[])?);
    }
    let salt = passphrase_salt(db).await?;
    Ok(MasterKey::from_setting(value, &salt)?)
}

/// `tollgate keys rotate`: re-wraps every organization's data key under
/// `new_master_key` (base64 key or passphrase) in one transaction, and makes
/// it the master key of the database. Gateways already running keep
/// working; each must be restarted with the new `TOLLGATE_MASTER_KEY`
/// before the next rotation.
pub async fn rotate_master_key(
    settings: &Settings,
    new_master_key: &SecretString,
) -> anyhow::Result<Rotation> {
    let db = Db::connect(&settings.database_url, 2)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("applying migrations")?;
    let current = load_master_key(settings, &db).await?;
    let value = new_master_key.expose_secret();
    let (new, salt) = if MasterKey::is_raw_key_setting(value) {
        (MasterKey::from_setting(value, &[]), None)
    } else {
        let salt = generate_salt();
        (MasterKey::from_setting(value, &salt), Some(salt))
    };
    let new = new.context("the new master key")?;
    let rotation = tollgate_credentials::rotate(&db, &current, &new, salt.as_ref().map(|s| &s[..]))
        .await
        .context("rotating the master key (nothing was changed)")?;
    db.close().await;
    Ok(rotation)
}

/// The settlement journal's directory: `journal/` in `TOLLGATE_DATA_DIR`,
/// by default beside the SQLite file, or in `./tollgate-data` on PostgreSQL.
/// An in-memory SQLite database has no journal (nothing outlives it).
fn journal_dir(settings: &Settings) -> Option<std::path::PathBuf> {
    let data_dir = match &settings.data_dir {
        Some(dir) => dir.clone(),
        None if settings.database_url.starts_with("sqlite:") => {
            let file = tollgate_core::db::sqlite_path(&settings.database_url)?;
            file.parent()
                .map(std::path::Path::to_path_buf)
                .unwrap_or_default()
        }
        None => std::path::PathBuf::from("tollgate-data"),
    };
    Some(data_dir.join("journal"))
}

fn db_timeout(settings: &Settings) -> Duration {
    Duration::from_millis(settings.db_timeout_ms.max(50))
}

/// How long an instance may stay silent before others take it for dead.
fn instance_timeout(settings: &Settings) -> Duration {
    Duration::from_millis(settings.instance_timeout_ms.max(1))
}

/// Heartbeats three times per instance timeout, at most every 5 s, so
/// that one late heartbeat never makes a live instance look dead.
fn heartbeat_interval(settings: &Settings) -> Duration {
    (instance_timeout(settings) / 3).clamp(Duration::from_millis(10), Duration::from_secs(5))
}
