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

/// The environment variables the binary reads besides the settings above
/// (each of which also names its own variable).
const OTHER_ENVIRONMENT: &str = "\
Other environment variables:
  OPENAI_API_KEY, ANTHROPIC_API_KEY, GEMINI_API_KEY, DEEPSEEK_API_KEY,
  GROQ_API_KEY, MISTRAL_API_KEY, TOGETHER_API_KEY, FIREWORKS_API_KEY,
  OPENROUTER_API_KEY, DEEPINFRA_API_KEY, XAI_API_KEY
      Platform keys of the built-in catalog's providers (without
      TOLLGATE_CONFIG). Unset: only organizations with their own key (BYOK)
      can use that provider.
  ${NAME} in TOLLGATE_CONFIG
      Any variable a configuration file names, e.g. its providers' keys.
  TOLLGATE_NEW_MASTER_KEY
      The new master key of `tollgate keys rotate` (see its --help).
  RUST_LOG
      Tracing filter (default: info). Logs never hold a key or a prompt.
  NO_COLOR
      Set (non-empty): no ANSI colours in the logs, even on a terminal.
  HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY (or lowercase)
      Proxy of the calls to providers and to the OTLP collector (outbound
      webhooks never use a proxy).
  SSL_CERT_FILE, SSL_CERT_DIR
      CA certificates trusted for those calls instead of the system's.
  PGHOST, PGPORT, PGUSER, PGPASSWORD, PGPASSFILE, PGDATABASE, PGSSLMODE,
  PGSSLROOTCERT, PGSSLCERT, PGSSLKEY, PGAPPNAME, PGOPTIONS
      PostgreSQL: what a postgres:// DATABASE_URL leaves out, as libpq.";

#[derive(Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Tollgate: a multi-tenant LLM gateway",
    after_help = OTHER_ENVIRONMENT
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
    #[command(after_help = OTHER_ENVIRONMENT)]
    Serve,
    /// Apply the database migrations and exit (a missing PostgreSQL
    /// database is created when the user may create databases).
    #[command(after_help = OTHER_ENVIRONMENT)]
    Migrate,
    /// Print the OpenAPI 3.1 document (what `GET /openapi.json` serves) and exit.
    Openapi,
    /// Manage the master key that BYOK provider keys are encrypted under.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Convert another gateway's configuration into a Tollgate configuration file.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Subcommand)]
enum ImportSource {
    /// Read a LiteLLM proxy config.yaml and write the equivalent Tollgate
    /// configuration (models, deployments, fallbacks; router settings as
    /// settings in its first comment). What cannot be mapped is listed on
    /// standard error. No key value is ever written: `os.environ/NAME`
    /// becomes `${NAME}`, and a literal key a variable to set.
    Litellm {
        /// The LiteLLM config.yaml.
        path: std::path::PathBuf,
        /// Where to write the Tollgate configuration (default: standard output).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Re-wrap every organization's data key under a new master key, in one
    /// transaction, and make it the database's master key. Needs the current
    /// key (TOLLGATE_MASTER_KEY). Running gateways keep working; restart each
    /// with the new TOLLGATE_MASTER_KEY (a start with the old one is refused).
    #[command(after_help = OTHER_ENVIRONMENT)]
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
            .with_ansi(
                std::io::IsTerminal::is_terminal(&std::io::stdout())
                    && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            )
            .with_env_filter(filter)
            .init(),
    }
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // Once, on standard error: a log line as well would say it twice.
            eprintln!("tollgate: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes, leaving out a cause whose text an outer
/// message already quotes (sqlx errors repeat their source).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let cause = cause.to_string();
        if text.contains(&cause) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&cause);
    }
    text
}

fn import_litellm(path: &std::path::Path, output: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let conversion = tollgate_import::convert(&text)?;
    for note in &conversion.notes {
        eprintln!("import: {note}");
    }
    for (name, value) in &conversion.settings {
        eprintln!("import: setting for `tollgate serve`: {name}={value}");
    }
    match output {
        Some(file) => std::fs::write(file, &conversion.yaml)
            .with_context(|| format!("cannot write {}", file.display()))?,
        None => {
            use std::io::Write;
            std::io::stdout().write_all(conversion.yaml.as_bytes())?;
        }
    }
    Ok(())
}

async fn run(mut cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Import {
            source: ImportSource::Litellm { path, output },
        } => import_litellm(&path, output.as_deref()),
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
            // Kept alive until the gateway has stopped.
            let _demo = tollgate_api::demo::start(&mut cli.settings).await?;
            let gateway = tollgate_api::start(&cli.settings).await?;
            let listener = tokio::net::TcpListener::bind(cli.settings.listen).await?;
            tracing::info!(listen = %listener.local_addr()?, "tollgate serving");
            gateway
                .serve(listener, tollgate_api::server::shutdown_signal())
                .await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn help_names_every_key_variable_of_the_built_in_catalog() {
        let catalog = include_str!("../../core/src/builtin_catalog.yaml");
        for var in catalog
            .split("${")
            .skip(1)
            .filter_map(|s| s.split('}').next())
        {
            assert!(
                OTHER_ENVIRONMENT.contains(var),
                "{var} is missing from --help"
            );
        }
    }

    /// The long help of `tollgate ARGS… --help`.
    fn long_help(path: &[&str]) -> String {
        use clap::CommandFactory;
        let mut command = Cli::command();
        command.build();
        let mut command = &mut command;
        for name in path {
            command = command
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        command.render_long_help().to_string()
    }

    #[test]
    fn the_help_of_every_command_that_reads_the_environment_lists_the_other_variables() {
        // Read by the binary, not by its settings: the catalog's keys, the
        // log filter, and what reqwest (proxies, CA certificates) and sqlx
        // (libpq's PG* defaults) take from the environment.
        let others = [
            "OPENAI_API_KEY",
            "TOLLGATE_NEW_MASTER_KEY",
            "RUST_LOG",
            "NO_COLOR",
            "HTTPS_PROXY",
            "NO_PROXY",
            "SSL_CERT_FILE",
            "PGPASSWORD",
            "PGSSLMODE",
        ];
        for path in [&[][..], &["serve"], &["migrate"], &["keys", "rotate"]] {
            let help = long_help(path);
            for name in others {
                assert!(
                    help.contains(name),
                    "`tollgate {} --help` does not name {name}",
                    path.join(" ")
                );
            }
            // The settings name their own variables.
            for name in ["TOLLGATE_MASTER_KEY", "DATABASE_URL", "REDIS_URL"] {
                assert!(help.contains(name), "{path:?}: {name}");
            }
        }
    }

    #[test]
    fn an_error_quoting_its_cause_says_it_once() {
        let inner = anyhow::anyhow!("database \"x\" does not exist");
        let outer = inner.context("database error: database \"x\" does not exist");
        assert_eq!(
            error_text(&outer),
            "database error: database \"x\" does not exist"
        );
    }
}
