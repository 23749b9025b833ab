//! Start-up and shutdown: database, migrations, master key, catalog,
//! background tasks, and a graceful stop that settles every stream.

use crate::metrics::Metrics;
use crate::settings::{DEFAULT_DATABASE_URL, Environment, Settings};
use crate::state::{AppState, Inner};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use secrecy::ExposeSecret;
use sqlx::Row;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;
use tollgate_billing::{Billing, BillingOptions};
use tollgate_core::Db;
use tollgate_core::config::load_catalog;
use tollgate_credentials::{MasterKey, generate_salt, load_or_create_dev_key_file};
use tollgate_providers::{ClientOptions, ProviderClient};
use tollgate_tenants::Tenants;

/// A prepared gateway: migrated database, loaded catalog, background tasks running.
pub struct Gateway {
    pub state: AppState,
    background: Vec<JoinHandle<()>>,
}

/// Connects, migrates, checks the master key and loads the catalog.
pub async fn start(settings: &Settings) -> anyhow::Result<Gateway> {
    check_production(settings)?;
    let catalog = load_catalog(settings.config.as_deref()).context("loading the configuration")?;
    let max_connections = settings.db_max_connections.unwrap_or(
        match tollgate_core::db::backend_of(&settings.database_url)? {
            tollgate_core::Backend::Sqlite => 1,
            tollgate_core::Backend::Postgres => 16,
        },
    );
    let db = Db::connect(&settings.database_url, max_connections)
        .await
        .context("connecting to the database")?;
    db.migrate().await.context("applying migrations")?;
    // Not used on the request path yet (BYOK comes next), but checked now so
    // that a wrong key is refused at start, never discovered on a request.
    let _master_key = load_master_key(settings, &db).await?;

    // On SQLite (one node), leases left by an earlier run are returned here.
    let billing = Billing::start(
        db.clone(),
        BillingOptions {
            single_node: db.backend() == tollgate_core::Backend::Sqlite,
            lease_idle: Duration::from_millis(settings.lease_idle_ms),
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
    let state = AppState(Arc::new(Inner {
        db,
        tenants: tenants.clone(),
        billing: billing.clone(),
        catalog: Arc::new(catalog),
        providers,
        admin_token: settings
            .admin_token
            .clone()
            .filter(|t| !t.expose_secret().is_empty()),
        metrics: Metrics::new(),
        streams: TaskTracker::new(),
        max_body_bytes: settings.max_body_bytes,
    }));
    let background = vec![
        tokio::spawn(tenants.watch_key_changes(Duration::from_millis(500))),
        tokio::spawn(billing.maintain(Duration::from_secs(5))),
    ];
    Ok(Gateway { state, background })
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
        axum::serve(listener, crate::app(state.clone()))
            .with_graceful_shutdown(shutdown)
            .await
            .context("serving HTTP")?;
        state.streams.close();
        state.streams.wait().await;
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

/// Reads a `system_settings` value, or stores `default` first if there is none
/// (race-free across replicas starting together).
async fn setting_or_init(db: &Db, name: &str, default: String) -> anyhow::Result<String> {
    sqlx::query(
        "INSERT INTO system_settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(&default)
    .execute(db.pool())
    .await?;
    let row = sqlx::query("SELECT value FROM system_settings WHERE name = $1")
        .bind(name)
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get("value")?)
}

async fn load_master_key(settings: &Settings, db: &Db) -> anyhow::Result<MasterKey> {
    let key = match &settings.master_key {
        Some(value) if MasterKey::is_raw_key_setting(value.expose_secret()) => {
            MasterKey::from_setting(value.expose_secret(), &[])?
        }
        Some(passphrase) => {
            let salt = setting_or_init(db, "master_key_salt", B64.encode(generate_salt())).await?;
            let salt = B64
                .decode(salt)
                .context("stored master_key_salt is not base64")?;
            MasterKey::from_setting(passphrase.expose_secret(), &salt)?
        }
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
    let check = setting_or_init(db, "master_key_check", B64.encode(key.key_check())).await?;
    let check = B64
        .decode(check)
        .context("stored master_key_check is not base64")?;
    key.verify_key_check(&check).map_err(|_| {
        anyhow::anyhow!(
            "TOLLGATE_MASTER_KEY is not the master key this database was set up with; refusing to start \
             (a wrong key would make every stored provider key unreadable)"
        )
    })?;
    Ok(key)
}
