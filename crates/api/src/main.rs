//! The `tollgate` binary: parses the command line and starts things.

use clap::{Parser, Subcommand};
use secrecy::SecretString;
use tollgate_api::Settings;
use tollgate_api::observe::settings::LogFormat;
use tracing_subscriber::EnvFilter;

// mimalloc spends far fewer instructions per request than glibc's malloc,
// above all on memory freed by another thread than the one that allocated
// it (tokio's work stealing, SQLite's worker thread): see scripts/profile.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: a multi-tenant LLM gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    settings: Settings,
}

#[derive(Subcommand)]
enum Command {
    /// Migrate the database, then serve HTTP until SIGINT or SIGTERM.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Print the OpenAPI 3.1 document (what `GET /openapi.json` serves) and exit.
    Openapi,
    /// Manage the master key that BYOK provider keys are encrypted under.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every organization's data key under a new master key, in one
    /// transaction, and make it the database's master key. Needs the current
    /// key (TOLLGATE_MASTER_KEY). Running gateways keep working; restart each
    /// with the new TOLLGATE_MASTER_KEY (a start with the old one is refused).
    Rotate {
        /// The new master key: 32 bytes as base64, or a passphrase. Prefer
        /// the environment variable: a flag shows in the process list.
        #[arg(long, env = "TOLLGATE_NEW_MASTER_KEY", hide_env_values = true)]
        new_master_key: SecretString,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    match cli.settings.observability.log_format {
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_current_span(false)
            .with_env_filter(filter)
            .init(),
        LogFormat::Text => tracing_subscriber::fmt()
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .with_env_filter(filter)
            .init(),
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("tollgate: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Openapi => {
            use std::io::Write;
            // A reader that stops early (`tollgate openapi | head`) is not an error.
            match std::io::stdout().write_all(tollgate_api::openapi::document().as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Migrate => {
            let db = tollgate_core::Db::connect(&cli.settings.database_url, 2).await?;
            db.migrate().await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { new_master_key },
        } => {
            let rotation = tollgate_api::rotate_master_key(&cli.settings, &new_master_key).await?;
            tracing::info!(
                data_keys = rotation.data_keys,
                master_key_version = rotation.version,
                "master key rotated"
            );
            println!(
                "master key rotated: {} organization data key(s) re-wrapped (master key generation {}). \
                 Restart every gateway with the new TOLLGATE_MASTER_KEY.",
                rotation.data_keys, rotation.version
            );
            Ok(())
        }
        Command::Serve => {
            let gateway = tollgate_api::start(&cli.settings).await?;
            let listener = tokio::net::TcpListener::bind(cli.settings.listen).await?;
            tracing::info!(listen = %listener.local_addr()?, "tollgate serving");
            gateway.serve(listener, shutdown_signal()).await
        }
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing open requests and streams");
}
