//! The real `tollgate` binary (contract section 1): `--help`, `serve` and
//! `migrate`, start-up checks, the development master key file and signals.
//! Each test runs the binary in a temporary directory of its own.
//!
//! Tests about SQLite itself (the default `tollgate.db`, the key file beside
//! it, `migrate` on a fresh `sqlite://` path) always use SQLite; the others
//! use the suite's backend (`TOLLGATE_TEST_DATABASE`).

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tollgate_tests::binary::{GatewayProcess, command, exit_within, free_port};
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{
    ADMIN_TOKEN, DEFAULT_CONFIG, Fault, MockProvider, TestDatabase, chat_body, client,
    test_master_key,
};

/// How long a start that must fail may take before the test gives up.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Every setting of contract section 1, as an environment variable.
const SETTINGS: [&str; 10] = [
    "TOLLGATE_LISTEN",
    "DATABASE_URL",
    "TOLLGATE_CONFIG",
    "TOLLGATE_ADMIN_TOKEN",
    "TOLLGATE_MASTER_KEY",
    "TOLLGATE_ENV",
    "REDIS_URL",
    "TOLLGATE_JWT_SECRET",
    "STRIPE_WEBHOOK_SECRET",
    "LAGO_WEBHOOK_SECRET",
];

/// `tollgate --help` with these environment variables: (exit status, output).
fn help(dir: &Path, envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let output = command(dir, envs)
        .arg("--help")
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status, text)
}

/// `tollgate serve` on a free port, run until it exits (it should refuse).
fn refused_serve(dir: &Path, envs: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    exit_within(
        command(dir, envs).args(["serve", "--listen", &listen]),
        REFUSAL_TIMEOUT,
    )
}

fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The names of the tables in a SQLite file.
async fn sqlite_tables(path: &Path) -> Vec<String> {
    use sqlx::Row;
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&format!("sqlite://{}?mode=ro", path.display()))
        .await
        .unwrap();
    let rows = sqlx::query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .fetch_all(&pool)
        .await
        .unwrap();
    pool.close().await;
    rows.iter().map(|r| r.get::<String, _>("name")).collect()
}

#[test]
fn help_lists_every_command_and_setting() {
    let dir = TempDir::new();

    let (status, text) = help(&dir.0, &[]);

    assert!(status.success(), "{text}");
    for word in ["serve", "migrate"].iter().chain(SETTINGS.iter()) {
        assert!(
            text.contains(word),
            "`--help` does not mention {word}:\n{text}"
        );
    }
}

#[test]
fn help_prints_no_secret_setting_from_the_environment() {
    let dir = TempDir::new();
    let secrets = [
        ("TOLLGATE_ADMIN_TOKEN", "admin-SECRET-4f1c"),
        ("TOLLGATE_MASTER_KEY", "master-SECRET-9a2e"),
        ("TOLLGATE_JWT_SECRET", "jwt-SECRET-77b0"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_stripe-SECRET-31d5"),
        ("LAGO_WEBHOOK_SECRET", "lago-SECRET-c6e8"),
    ];

    let (status, text) = help(&dir.0, &secrets);

    assert!(status.success(), "{text}");
    for (name, value) in secrets {
        assert!(!text.contains(value), "`--help` prints {name}:\n{text}");
    }
}

#[test]
fn help_prints_no_password_from_the_database_or_redis_url() {
    let dir = TempDir::new();
    let envs = [
        (
            "DATABASE_URL",
            "postgres://tollgate:db-PASSWORD-5e1f@db.internal/tollgate",
        ),
        (
            "REDIS_URL",
            "redis://:redis-PASSWORD-0b9c@cache.internal:6379",
        ),
    ];

    let (status, text) = help(&dir.0, &envs);

    assert!(status.success(), "{text}");
    assert!(!text.contains("db-PASSWORD-5e1f"), "{text}");
    assert!(!text.contains("redis-PASSWORD-0b9c"), "{text}");
}

#[tokio::test]
async fn serve_without_settings_creates_the_database_and_a_private_master_key_file() {
    let dir = TempDir::new();

    let (gateway, log) = GatewayProcess::serve_capturing(&dir.0, &[]).await;

    assert!(dir.0.join("tollgate.db").is_file(), "no tollgate.db");
    let key_file = dir.0.join("tollgate.master.key");
    assert!(key_file.is_file(), "no tollgate.master.key");
    assert_eq!(mode_of(&key_file), 0o600);
    let ready = client()
        .get(format!("{}/ready", gateway.base_url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    assert!(gateway.terminate().success());
    let log = log.finish();
    assert!(
        log.contains("TOLLGATE_MASTER_KEY"),
        "a warning tells the operator to set TOLLGATE_MASTER_KEY:\n{log}"
    );
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(
        !log.contains(key.trim()),
        "the log shows the master key:\n{log}"
    );
}

#[tokio::test]
async fn second_start_reuses_the_master_key_file() {
    let dir = TempDir::new();
    let key_file = dir.0.join("tollgate.master.key");
    let first = GatewayProcess::serve(&dir.0, &[]).await;
    let original = std::fs::read(&key_file).unwrap();
    assert!(first.terminate().success());

    let second = GatewayProcess::serve(&dir.0, &[]).await;

    assert_eq!(std::fs::read(&key_file).unwrap(), original);
    assert_eq!(mode_of(&key_file), 0o600);
    assert!(second.terminate().success());
}

#[tokio::test]
async fn migrate_creates_the_tables_on_a_fresh_sqlite_path_and_exits_0() {
    let dir = TempDir::new();
    let db = dir.0.join("fresh.db");
    let url = format!("sqlite://{}", db.display());

    let (status, log) = exit_within(
        command(&dir.0, &[("DATABASE_URL", &url)]).arg("migrate"),
        REFUSAL_TIMEOUT,
    );

    assert!(status.success(), "{log}");
    let tables = sqlite_tables(&db).await;
    for table in [
        "organizations",
        "api_keys",
        "credit_accounts",
        "ledger_entries",
        "usage_records",
    ] {
        assert!(tables.iter().any(|t| t == table), "no {table}: {tables:?}");
    }
}

/// The PostgreSQL server the suite uses: its admin URL, and the URL of
/// database `name` on it as `user` (with `password`) or as the admin.
struct PostgresServer {
    admin: String,
}

impl PostgresServer {
    /// `None` (the test is skipped) when the suite runs on SQLite.
    fn for_test(test: &str) -> Option<PostgresServer> {
        if tollgate_tests::test_backend() == tollgate_tests::Backend::Sqlite {
            eprintln!("{test}: skipped on SQLite (run with TOLLGATE_TEST_DATABASE=postgres)");
            return None;
        }
        sqlx::any::install_default_drivers();
        Some(PostgresServer {
            admin: std::env::var("TOLLGATE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned()),
        })
    }

    fn url(&self, user: Option<(&str, &str)>, name: &str) -> String {
        let (scheme, rest) = self.admin.split_once("://").unwrap();
        let (authority, _) = rest.split_once('/').unwrap_or((rest, ""));
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        match user {
            Some((user, password)) => format!("{scheme}://{user}:{password}@{host}/{name}"),
            None => format!("{scheme}://{authority}/{name}"),
        }
    }

    async fn execute(&self, statement: &str) {
        use sqlx::Executor;
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin)
            .await
            .unwrap();
        pool.execute(statement).await.unwrap();
        pool.close().await;
    }

    async fn database_exists(&self, name: &str) -> bool {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.admin)
            .await
            .unwrap();
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count == 1
    }
}

#[tokio::test]
async fn migrate_creates_a_missing_postgresql_database_and_its_tables() {
    let Some(server) = PostgresServer::for_test("migrate_creates_a_missing_postgresql_database")
    else {
        return;
    };
    let name = format!("tollgate_missing_{}", uuid::Uuid::new_v4().simple());
    let url = server.url(None, &name);
    let dir = TempDir::new();

    let (status, log) = exit_within(
        command(&dir.0, &[("DATABASE_URL", &url)]).arg("migrate"),
        REFUSAL_TIMEOUT,
    );

    let created = server.database_exists(&name).await;
    let tables = if created {
        let pool = sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        server
            .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await;
        tables
    } else {
        Vec::new()
    };
    assert!(status.success(), "{log}");
    assert!(created, "the database was not created: {log}");
    for table in [
        "organizations",
        "api_keys",
        "credit_accounts",
        "usage_records",
    ] {
        assert!(tables.iter().any(|t| t == table), "no {table}: {tables:?}");
    }
}

#[tokio::test]
async fn migrate_on_a_missing_database_it_may_not_create_says_once_what_to_run() {
    let Some(server) = PostgresServer::for_test("migrate_on_a_missing_database_it_may_not_create")
    else {
        return;
    };
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (role, password) = (format!("tollgate_nocreate_{id}"), "nocreate-pw");
    let name = format!("tollgate_missing_{id}");
    // A user that may log in but not create databases.
    server
        .execute(&format!(
            "CREATE ROLE {role} LOGIN NOCREATEDB PASSWORD '{password}'"
        ))
        .await;
    let url = server.url(Some((&role, password)), &name);
    let dir = TempDir::new();

    let (status, log) = exit_within(
        command(&dir.0, &[("DATABASE_URL", &url)]).arg("migrate"),
        REFUSAL_TIMEOUT,
    );

    let created = server.database_exists(&name).await;
    server
        .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await;
    server.execute(&format!("DROP ROLE IF EXISTS {role}")).await;
    assert!(!status.success(), "{log}");
    assert!(!created);
    // What to run, said once: not repeated by the error's causes or a log line.
    assert_eq!(log.matches(&format!("createdb {name}")).count(), 1, "{log}");
    assert_eq!(log.matches("does not exist").count(), 1, "{log}");
    assert!(
        log.contains("permission denied to create database"),
        "{log}"
    );
    assert!(
        !log.contains(password),
        "the password is never printed: {log}"
    );
}

#[test]
fn migrate_twice_is_harmless() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("twice.db").display());
    let migrate = || {
        exit_within(
            command(&dir.0, &[("DATABASE_URL", &url)]).arg("migrate"),
            REFUSAL_TIMEOUT,
        )
    };
    let (first, log) = migrate();
    assert!(first.success(), "{log}");

    let (second, log) = migrate();

    assert!(second.success(), "{log}");
}

#[test]
fn production_without_a_master_key_refuses_to_start_naming_it() {
    let dir = TempDir::new();
    let url = format!("sqlite://{}", dir.0.join("prod.db").display());

    let (status, log) = refused_serve(
        &dir.0,
        &[("TOLLGATE_ENV", "production"), ("DATABASE_URL", &url)],
    );

    assert!(!status.success());
    assert!(log.contains("TOLLGATE_MASTER_KEY"), "{log}");
    assert!(
        !dir.0.join("tollgate.master.key").exists(),
        "production never writes a development key file"
    );
}

#[test]
fn production_with_the_default_database_refuses_to_start_naming_database_url() {
    let dir = TempDir::new();
    let key = test_master_key();

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("TOLLGATE_ENV", "production"),
            ("TOLLGATE_MASTER_KEY", key.expose_secret()),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("DATABASE_URL"), "{log}");
}

#[tokio::test]
async fn wrong_master_key_is_refused_at_start() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let right = test_master_key();
    let wrong = test_master_key();
    let first = GatewayProcess::serve(
        &dir.0,
        &[
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", right.expose_secret()),
        ],
    )
    .await;
    assert!(first.terminate().success());

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", wrong.expose_secret()),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("TOLLGATE_MASTER_KEY"), "{log}");
    assert!(log.contains("not the master key"), "{log}");
    assert!(!log.contains(wrong.expose_secret()), "{log}");
    assert!(!log.contains(right.expose_secret()), "{log}");
}

#[tokio::test]
async fn same_passphrase_starts_again_on_its_database() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let envs = [
        ("DATABASE_URL", db.url.as_str()),
        ("TOLLGATE_MASTER_KEY", "correct horse battery staple"),
    ];
    let first = GatewayProcess::serve(&dir.0, &envs).await;
    assert!(first.terminate().success());

    let again = GatewayProcess::serve(&dir.0, &envs).await;

    assert!(again.terminate().success());
}

#[tokio::test]
async fn another_passphrase_is_refused_at_start() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let first = GatewayProcess::serve(
        &dir.0,
        &[
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", "correct horse battery staple"),
        ],
    )
    .await;
    assert!(first.terminate().success());

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", "incorrect horse battery staple"),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("TOLLGATE_MASTER_KEY"), "{log}");
    assert!(
        !log.contains("horse battery"),
        "the log shows a passphrase:\n{log}"
    );
}

#[tokio::test]
async fn sigterm_stops_the_gateway_with_exit_status_0() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let key = test_master_key();
    let gateway = GatewayProcess::serve(
        &dir.0,
        &[
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", key.expose_secret()),
        ],
    )
    .await;

    let status = gateway.terminate();

    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_call_finish_and_bills_it() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let config = dir.0.join("tollgate.yaml");
    std::fs::write(&config, DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url())).unwrap();
    let key = test_master_key();
    let envs = [
        ("DATABASE_URL", db.url.as_str()),
        ("TOLLGATE_MASTER_KEY", key.expose_secret()),
        ("TOLLGATE_CONFIG", config.to_str().unwrap()),
        ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
    ];
    let gateway = GatewayProcess::serve(&dir.0, &envs).await;
    let http = client();
    let admin_post = |path: String, body: Value| {
        http.post(format!("{}{path}", gateway.base_url))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let org: Value = admin_post(
        "/api/v1/organizations".into(),
        json!({"name": "Acme", "billing_mode": "requests"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let org = org["id"].as_str().unwrap().to_owned();
    admin_post(
        format!("/api/v1/organizations/{org}/credits/grants"),
        json!({"amount": 10}),
    )
    .await
    .unwrap();
    let created: Value = admin_post(
        format!("/api/v1/organizations/{org}/api-keys"),
        json!({"name": "k"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let api_key = created["key"].as_str().unwrap().to_owned();
    mock.push_fault(Fault::Latency(Duration::from_millis(800)));
    let in_flight = tokio::spawn({
        let http = http.clone();
        let url = format!("{}/v1/chat/completions", gateway.base_url);
        async move {
            let response = http
                .post(url)
                .bearer_auth(api_key)
                .json(&chat_body("gpt-4o-mini"))
                .send()
                .await
                .unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    });
    while mock.request_count() == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let status = tokio::task::spawn_blocking(move || gateway.terminate())
        .await
        .unwrap();

    let (call_status, body) = in_flight.await.unwrap();
    assert_eq!(call_status, 200, "{body}");
    assert!(body.contains("mock model"), "{body}");
    assert!(status.success(), "{status:?}");
    // The call was billed before the process exited.
    let restarted = GatewayProcess::serve(&dir.0, &envs).await;
    let credits: Value = http
        .get(format!(
            "{}/api/v1/organizations/{org}/credits",
            restarted.base_url
        ))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(credits["balance"], 9);
    assert_eq!(credits["reserved"], 0);
    assert!(restarted.terminate().success());
}

#[test]
fn config_with_an_unknown_provider_is_refused_naming_the_field() {
    let dir = TempDir::new();
    let config = dir.0.join("bad.yaml");
    std::fs::write(
        &config,
        r#"
providers:
  openai: { base_url: "http://127.0.0.1:9/v1" }
models:
  - { id: gpt-4o-mini, provider: nowhere, price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
power_levels:
  eco: [gpt-4o-mini]
  balanced: [gpt-4o-mini]
  precision: [gpt-4o-mini]
"#,
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.0.join("t.db").display());

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("TOLLGATE_CONFIG", config.to_str().unwrap()),
            ("DATABASE_URL", &url),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("models[0].provider"), "{log}");
}

#[test]
fn config_with_a_bad_value_is_refused_naming_the_field() {
    let dir = TempDir::new();
    let config = dir.0.join("bad.yaml");
    std::fs::write(
        &config,
        r#"
providers:
  openai: { base_url: "http://127.0.0.1:9/v1" }
models:
  - { id: gpt-4o-mini, provider: openai, price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
  - { id: other, provider: openai, tier: "high", price: { input_per_mtok: 1, output_per_mtok: 2 } }
power_levels:
  eco: [gpt-4o-mini]
  balanced: [gpt-4o-mini]
  precision: [gpt-4o-mini]
"#,
    )
    .unwrap();
    let url = format!("sqlite://{}", dir.0.join("t.db").display());

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("TOLLGATE_CONFIG", config.to_str().unwrap()),
            ("DATABASE_URL", &url),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("models[1].tier"), "{log}");
}

#[test]
fn missing_config_file_is_refused_naming_it() {
    let dir = TempDir::new();
    let missing = dir.0.join("absent.yaml");
    let url = format!("sqlite://{}", dir.0.join("t.db").display());

    let (status, log) = refused_serve(
        &dir.0,
        &[
            ("TOLLGATE_CONFIG", missing.to_str().unwrap()),
            ("DATABASE_URL", &url),
        ],
    );

    assert!(!status.success());
    assert!(log.contains("absent.yaml"), "{log}");
}
