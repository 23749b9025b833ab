//! BYOK on the data plane and at rest: the organization's own key pays the
//! provider when it has one (`x-tollgate-byok: true`, usage `byok: true`,
//! only the platform fee charged), else the platform's, else the provider
//! is skipped; keys are stored encrypted and bound to their organization;
//! a change reaches every replica within a second; `tollgate keys rotate`
//! keeps every credential usable.

use reqwest::Method;
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use sqlx::Row;
use std::time::{Duration, Instant};
use tollgate_tests::binary::{GatewayProcess, command, exit_within, free_port};
use tollgate_tests::byok::{BYOK_KEY, OTHER_BYOK_KEY, bearer};
use tollgate_tests::replica::Replica;
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{
    ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider, TestApp, TestDatabase, chat_body, client,
    expect_error, sse_data, test_master_key,
};

/// A catalog with a provider the platform has no key for.
const PRIVATE_CONFIG: &str = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
  private: { kind: openai, base_url: "{MOCK}" }
models:
  - { id: gpt-4o-mini, provider: mock, tier: 1, quality: 70, max_output_tokens: 1000,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60 } }
  - { id: private-model, provider: private, tier: 3, quality: 90, max_output_tokens: 1000,
      price: { input_per_mtok: 1, output_per_mtok: 2 } }
power_levels:
  eco: [gpt-4o-mini]
  balanced: [private-model, gpt-4o-mini]
  precision: [private-model]
"#;

fn header(response: &reqwest::Response, name: &str) -> String {
    response.headers()[name].to_str().unwrap().to_owned()
}

// ---- which key pays ----

#[tokio::test]
async fn organization_key_pays_and_with_a_zero_fee_the_balance_is_unchanged() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.add_credential(&org, "mock", BYOK_KEY).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-byok"), "true");
    assert_eq!(header(&response, "x-tollgate-cost"), "0");
    assert_eq!(
        app.last_authorization().as_deref(),
        Some(bearer(BYOK_KEY).as_str())
    );
    assert_eq!(app.balance(&org).await, 10_000_000);
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["byok"], true);
    assert_eq!(usage[0]["cost"], 0);
    assert!(usage[0]["list_cost_usd_micros"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn after_deactivation_the_platform_key_pays_again() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let credential = app.add_credential(&org, "mock", BYOK_KEY).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    app.switch_credential(credential["id"].as_str().unwrap(), false)
        .await;
    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-byok"), "false");
    assert_eq!(
        app.last_authorization().as_deref(),
        Some("Bearer sk-platform-key")
    );
    let charged: i64 = header(&response, "x-tollgate-cost").parse().unwrap();
    assert!(charged > 0);
    assert_eq!(app.balance(&org).await, 10_000_000 - charged);
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["byok"], false);
    assert_eq!(usage[1]["byok"], true);
}

#[tokio::test]
async fn after_deletion_the_platform_key_pays_again() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let credential = app.add_credential(&org, "mock", BYOK_KEY).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let id = credential["id"].as_str().unwrap();
    app.admin_delete(&format!("/api/v1/provider-credentials/{id}"))
        .await;
    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(header(&response, "x-tollgate-byok"), "false");
    assert_eq!(
        app.last_authorization().as_deref(),
        Some("Bearer sk-platform-key")
    );
}

#[tokio::test]
async fn streamed_calls_and_embeddings_use_the_organization_key_too() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.add_credential(&org, "mock", BYOK_KEY).await;
    let mut streamed = chat_body("gpt-4o-mini");
    streamed["stream"] = json!(true);

    let stream = app.chat(&key, &streamed).await;
    assert_eq!(header(&stream, "x-tollgate-byok"), "true");
    let events = sse_data(&stream.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let embedded = app
        .embeddings(
            &key,
            &json!({"model": "text-embedding-3-small", "input": "hello"}),
        )
        .await;

    assert_eq!(embedded.status(), 200);
    assert_eq!(header(&embedded, "x-tollgate-byok"), "true");
    for request in app.mock.requests() {
        assert_eq!(
            request.authorization.as_deref(),
            Some(bearer(BYOK_KEY).as_str())
        );
    }
    assert_eq!(app.balance(&org).await, 10_000_000);
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 2);
    assert!(usage.iter().all(|u| u["byok"] == true && u["cost"] == 0));
}

#[tokio::test]
async fn organization_with_its_own_key_needs_no_credits_at_a_zero_fee() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 0).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        402
    );

    app.add_credential(&org, "mock", BYOK_KEY).await;
    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-byok"), "true");
    assert_eq!(app.balance(&org).await, 0);
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 1);
    assert_eq!(usage[0]["byok"], true);
}

#[tokio::test]
async fn provider_without_a_platform_key_serves_only_organizations_with_their_own() {
    let app = TestApp::spawn_with_config(PRIVATE_CONFIG).await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let model_ids = |body: Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect()
    };

    // Without its own key: the provider is skipped, or the call is a 503.
    let listed = model_ids(app.models(&key).await.json().await.unwrap());
    assert!(!listed.contains(&"private-model".to_owned()), "{listed:?}");
    let error = expect_error(app.chat(&key, &chat_body("private-model")).await, 503).await;
    assert_eq!(error["code"], "no_provider_available");
    let mut auto = chat_body("auto");
    auto["power_level"] = json!("balanced");
    let fallback = app.chat(&key, &auto).await;
    assert_eq!(fallback.status(), 200);
    assert_eq!(header(&fallback, "x-tollgate-model"), "gpt-4o-mini");
    auto["power_level"] = json!("precision");
    expect_error(app.chat(&key, &auto).await, 503).await;

    // With it: the provider is used, with the organization's key.
    app.add_credential(&org, "private", BYOK_KEY).await;
    let listed = model_ids(app.models(&key).await.json().await.unwrap());
    assert!(listed.contains(&"private-model".to_owned()), "{listed:?}");
    auto["power_level"] = json!("balanced");
    let routed = app.chat(&key, &auto).await;
    assert_eq!(routed.status(), 200);
    assert_eq!(header(&routed, "x-tollgate-model"), "private-model");
    assert_eq!(header(&routed, "x-tollgate-provider"), "private");
    assert_eq!(header(&routed, "x-tollgate-byok"), "true");
    assert_eq!(
        app.last_authorization().as_deref(),
        Some(bearer(BYOK_KEY).as_str())
    );
    // Its key for `private` does not pay for `mock`.
    let platform = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(header(&platform, "x-tollgate-byok"), "false");
}

// ---- the platform fee ----

#[tokio::test]
async fn byok_fee_is_its_percentage_of_the_list_cost_rounded_up() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.byok_fee_percent = 7).await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let platform_call = app.chat(&key, &chat_body("big-model")).await;
    let list_cost: i64 = header(&platform_call, "x-tollgate-cost").parse().unwrap();
    app.add_credential(&org, "mock", BYOK_KEY).await;

    let byok_call = app.chat(&key, &chat_body("big-model")).await;

    assert_eq!(header(&byok_call, "x-tollgate-byok"), "true");
    // 5 prompt tokens at 15 USD/Mtok + 11 completion tokens at 75 USD/Mtok.
    assert_eq!(list_cost, 900);
    let fee: i64 = header(&byok_call, "x-tollgate-cost").parse().unwrap();
    assert_eq!(fee, 63); // 7 % of 900
    assert_eq!(app.balance(&org).await, 10_000_000 - 900 - 63);
    let usage = app.usage(&org).await;
    assert_eq!(usage[0]["byok"], true);
    assert_eq!(usage[0]["cost"], 63);
    assert_eq!(usage[0]["list_cost_usd_micros"], 900);
}

#[tokio::test]
async fn byok_fee_rounds_a_fraction_of_a_micro_dollar_up() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.byok_fee_percent = 1).await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.add_credential(&org, "mock", BYOK_KEY).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    // The list cost is 8 micro-dollars: 1 % of it, 0.08, rounds up to 1.
    assert_eq!(header(&response, "x-tollgate-cost"), "1");
    assert_eq!(app.balance(&org).await, 10_000_000 - 1);
    assert_eq!(app.usage(&org).await[0]["list_cost_usd_micros"], 8);
}

#[tokio::test]
async fn byok_fee_in_tokens_and_requests_modes_is_the_share_of_that_unit() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.byok_fee_percent = 10).await;
    let (tokens_org, tokens_key) = app.funded_org("tokens", 1_000).await;
    let (requests_org, requests_key) = app.funded_org("requests", 10).await;
    app.add_credential(&tokens_org, "mock", BYOK_KEY).await;
    app.add_credential(&requests_org, "mock", OTHER_BYOK_KEY)
        .await;

    let tokens_call = app.chat(&tokens_key, &chat_body("gpt-4o-mini")).await;
    let requests_call = app.chat(&requests_key, &chat_body("gpt-4o-mini")).await;

    // 16 tokens → 10 % is 1.6, rounded up to 2; 1 request → 0.1, up to 1.
    assert_eq!(header(&tokens_call, "x-tollgate-cost"), "2");
    assert_eq!(app.balance(&tokens_org).await, 998);
    assert_eq!(header(&requests_call, "x-tollgate-cost"), "1");
    assert_eq!(app.balance(&requests_org).await, 9);
}

#[tokio::test]
async fn byok_call_in_tokens_mode_with_a_zero_fee_keeps_the_balance() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("tokens", 1_000).await;
    app.add_credential(&org, "mock", BYOK_KEY).await;

    let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    assert_eq!(header(&response, "x-tollgate-cost"), "0");
    assert_eq!(app.balance(&org).await, 1_000);
    assert_eq!(app.usage(&org).await[0]["byok"], true);
}

// ---- encryption at rest ----

/// Every way a key could show in stored text or bytes.
fn encodings(key: &str) -> Vec<String> {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let mut out = vec![key.to_owned()];
    for engine in [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD] {
        out.push(engine.encode(key));
    }
    out.push(key.bytes().map(|b| format!("{b:02x}")).collect());
    out
}

/// What the database holds, as text to search: the SQLite files byte for
/// byte, or every row of the relevant PostgreSQL tables as JSON (`bytea` as hex).
async fn stored_text(app: &TestApp) -> String {
    if let Some(path) = app.database_url.strip_prefix("sqlite://") {
        let dir = std::path::Path::new(path).parent().unwrap();
        let mut bytes = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.to_string_lossy().contains("tollgate.db") {
                bytes.extend(std::fs::read(path).unwrap());
            }
        }
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let db = app.raw_db().await;
    let mut text = String::new();
    for table in [
        "provider_credentials",
        "provider_credential_audit",
        "organization_data_keys",
        "system_settings",
        "usage_records",
        "api_keys",
    ] {
        let rows = sqlx::query(&format!("SELECT row_to_json(t)::text AS j FROM {table} t"))
            .fetch_all(&db)
            .await
            .unwrap();
        for row in rows {
            text.push_str(&row.get::<String, _>("j"));
        }
    }
    db.close().await;
    text
}

#[tokio::test]
async fn database_holds_no_plaintext_key_and_no_base64_or_hex_of_it() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let created = app.add_credential(&org, "mock", BYOK_KEY).await;
    let other_org = app.create_org("usd").await;
    app.add_credential(&other_org, "mock", OTHER_BYOK_KEY).await;
    let id = created["id"].as_str().unwrap();
    app.send(
        Method::PUT,
        &format!("/api/v1/provider-credentials/{id}"),
        ADMIN_TOKEN,
        Some(&json!({"credential_name": "renamed-marker"})),
    )
    .await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let stored = stored_text(&app).await;

    assert!(stored.contains("renamed-marker"), "the scan sees the data");
    for secret in [BYOK_KEY, OTHER_BYOK_KEY] {
        for needle in encodings(secret) {
            assert!(!stored.contains(&needle), "the database holds {needle}");
        }
    }
}

#[tokio::test]
async fn ciphertext_swapped_between_organizations_fails_to_decrypt_and_is_never_sent() {
    let app = TestApp::spawn().await;
    let (a, a_key) = app.funded_org("usd", 10_000_000).await;
    let (b, b_key) = app.funded_org("usd", 10_000_000).await;
    let a_cred = app.add_credential(&a, "mock", BYOK_KEY).await;
    let b_cred = app.add_credential(&b, "mock", OTHER_BYOK_KEY).await;
    let db = app.raw_db().await;
    let sealed_of = |id: String| {
        let db = db.clone();
        async move {
            sqlx::query("SELECT encrypted_key FROM provider_credentials WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap()
                .get::<Vec<u8>, _>("encrypted_key")
        }
    };
    let a_id = a_cred["id"].as_str().unwrap().to_owned();
    let b_id = b_cred["id"].as_str().unwrap().to_owned();
    let (a_sealed, b_sealed) = (sealed_of(a_id.clone()).await, sealed_of(b_id.clone()).await);
    for (id, sealed) in [(&a_id, &b_sealed), (&b_id, &a_sealed)] {
        sqlx::query("UPDATE provider_credentials SET encrypted_key = $1 WHERE id = $2")
            .bind(sealed.as_slice())
            .bind(id.as_str())
            .execute(&db)
            .await
            .unwrap();
    }
    db.close().await;

    for (org, key) in [(&a, &a_key), (&b, &b_key)] {
        let error = expect_error(app.chat(key, &chat_body("gpt-4o-mini")).await, 503).await;
        assert!(!error.to_string().contains("sk-org"), "{error}");
        assert_eq!(app.balance(org).await, 10_000_000);
    }
    assert_eq!(app.mock.request_count(), 0, "no key was sent anywhere");
}

// ---- replicas ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivation_reaches_another_replica_within_one_second() {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let master_key = test_master_key();
    let a = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let b = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let http = client();
    let admin = |method: Method, url: String| http.request(method, url).bearer_auth(ADMIN_TOKEN);
    let org: Value = admin(Method::POST, a.url("/api/v1/organizations"))
        .json(&json!({"name": "Acme", "billing_mode": "usd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap();
    admin(
        Method::POST,
        a.url(&format!("/api/v1/organizations/{org}/credits/grants")),
    )
    .json(&json!({"amount": 10_000_000}))
    .send()
    .await
    .unwrap();
    let created: Value = admin(
        Method::POST,
        a.url(&format!("/api/v1/organizations/{org}/api-keys")),
    )
    .json(&json!({"name": "k"}))
    .send()
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    let credential: Value = admin(Method::POST, a.url("/api/v1/provider-credentials"))
        .json(&json!({"organization_id": org, "provider": "mock", "api_key": BYOK_KEY}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = credential["id"].as_str().unwrap();
    let chat_on_b = || async {
        let response = http
            .post(b.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat_body("gpt-4o-mini"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        mock.requests()
            .last()
            .unwrap()
            .authorization
            .clone()
            .unwrap()
    };
    // Replica B uses (and has cached) the organization's key.
    assert_eq!(chat_on_b().await, bearer(BYOK_KEY));

    let deactivated = admin(
        Method::PUT,
        a.url(&format!("/api/v1/provider-credentials/{id}/deactivate")),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(deactivated.status(), 200);
    let started = Instant::now();

    while chat_on_b().await != "Bearer sk-platform-key" {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still pays with the deactivated key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- the master key, through the binary ----

struct Gateway {
    dir: TempDir,
    db: TestDatabase,
    mock: MockProvider,
    config: String,
}

impl Gateway {
    async fn new() -> Gateway {
        let dir = TempDir::new();
        let db = TestDatabase::create(&dir.0).await;
        let mock = MockProvider::start().await;
        let config = dir.0.join("tollgate.yaml");
        std::fs::write(&config, DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url())).unwrap();
        Gateway {
            config: config.to_str().unwrap().to_owned(),
            dir,
            db,
            mock,
        }
    }

    fn envs<'a>(&'a self, master_key: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("DATABASE_URL", self.db.url.as_str()),
            ("TOLLGATE_MASTER_KEY", master_key),
            ("TOLLGATE_CONFIG", self.config.as_str()),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("RUST_LOG", "debug"),
        ]
    }

    fn rotate(&self, current: &str, new: &str) -> (std::process::ExitStatus, String) {
        let mut envs = self.envs(current);
        envs.push(("TOLLGATE_NEW_MASTER_KEY", new));
        exit_within(
            command(&self.dir.0, &envs).args(["keys", "rotate"]),
            Duration::from_secs(60),
        )
    }

    fn refused(&self, master_key: &str) -> (std::process::ExitStatus, String) {
        let listen = format!("127.0.0.1:{}", free_port());
        exit_within(
            command(&self.dir.0, &self.envs(master_key)).args(["serve", "--listen", &listen]),
            Duration::from_secs(60),
        )
    }
}

/// An HTTP client on a running gateway process.
struct Client<'a> {
    base: &'a str,
    http: reqwest::Client,
}

impl Client<'_> {
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    /// A funded organization with an API key and its own key for `mock`:
    /// `(org id, api key, credential id)`.
    async fn byok_org(&self, own_key: &str) -> (String, String, String) {
        let org: Value = self
            .send(
                Method::POST,
                "/api/v1/organizations",
                ADMIN_TOKEN,
                Some(json!({"name": "Acme", "billing_mode": "usd"})),
            )
            .await
            .json()
            .await
            .unwrap();
        let org = org["id"].as_str().unwrap().to_owned();
        self.send(
            Method::POST,
            &format!("/api/v1/organizations/{org}/credits/grants"),
            ADMIN_TOKEN,
            Some(json!({"amount": 10_000_000})),
        )
        .await;
        let key: Value = self
            .send(
                Method::POST,
                &format!("/api/v1/organizations/{org}/api-keys"),
                ADMIN_TOKEN,
                Some(json!({"name": "k"})),
            )
            .await
            .json()
            .await
            .unwrap();
        let credential = self
            .send(
                Method::POST,
                "/api/v1/provider-credentials",
                ADMIN_TOKEN,
                Some(json!({"organization_id": org, "provider": "mock", "api_key": own_key})),
            )
            .await;
        assert_eq!(credential.status(), 201);
        let credential: Value = credential.json().await.unwrap();
        (
            org,
            key["key"].as_str().unwrap().to_owned(),
            credential["id"].as_str().unwrap().to_owned(),
        )
    }

    async fn chat(&self, key: &str) -> reqwest::Response {
        self.send(
            Method::POST,
            "/v1/chat/completions",
            key,
            Some(chat_body("gpt-4o-mini")),
        )
        .await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_keeps_every_credential_usable_and_only_the_new_master_key_starts() {
    let gateway = Gateway::new().await;
    let old = test_master_key();
    let new = "a brand new master passphrase for the rotation test";
    let process = GatewayProcess::serve(&gateway.dir.0, &gateway.envs(old.expose_secret())).await;
    let client = Client {
        base: &process.base_url,
        http: client(),
    };
    let (_, a_key, _) = client.byok_org(BYOK_KEY).await;
    let (_, b_key, _) = client.byok_org(OTHER_BYOK_KEY).await;
    assert_eq!(client.chat(&a_key).await.status(), 200);
    assert!(process.terminate().success());

    let (status, output) = gateway.rotate(old.expose_secret(), new);

    assert!(status.success(), "{output}");
    assert!(
        output.contains("2 organization data key(s) re-wrapped"),
        "{output}"
    );
    assert!(
        !output.contains(old.expose_secret()) && !output.contains(new),
        "{output}"
    );
    // The old master key is refused from now on, with a clear message.
    let (status, log) = gateway.refused(old.expose_secret());
    assert!(!status.success());
    assert!(log.contains("not the master key"), "{log}");
    // The new one starts, and every credential still works.
    let restarted = GatewayProcess::serve(&gateway.dir.0, &gateway.envs(new)).await;
    let client = Client {
        base: &restarted.base_url,
        http: tollgate_tests::client(),
    };
    for (key, own) in [(&a_key, BYOK_KEY), (&b_key, OTHER_BYOK_KEY)] {
        let response = client.chat(key).await;
        assert_eq!(response.status(), 200);
        assert_eq!(header(&response, "x-tollgate-byok"), "true");
        assert_eq!(
            gateway
                .mock
                .requests()
                .last()
                .unwrap()
                .authorization
                .as_deref(),
            Some(bearer(own).as_str())
        );
    }
    // And new organizations get data keys under the new master key.
    let (_, c_key, _) = client.byok_org("sk-org-THIRD-key-0a1b2c3d").await;
    assert_eq!(client.chat(&c_key).await.status(), 200);
    assert!(restarted.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_gateway_keeps_serving_byok_calls_through_a_rotation() {
    let gateway = Gateway::new().await;
    let old = test_master_key();
    let new = test_master_key();
    let (process, log) =
        GatewayProcess::serve_capturing(&gateway.dir.0, &gateway.envs(old.expose_secret())).await;
    let client = Client {
        base: &process.base_url,
        http: client(),
    };
    let (_, key, credential) = client.byok_org(BYOK_KEY).await;
    assert_eq!(client.chat(&key).await.status(), 200);

    let (status, output) = gateway.rotate(old.expose_secret(), new.expose_secret());
    assert!(status.success(), "{output}");

    // Cached, and reloaded after a change: the running gateway still reads.
    assert_eq!(client.chat(&key).await.status(), 200);
    for action in ["deactivate", "activate"] {
        let response = client
            .send(
                Method::PUT,
                &format!("/api/v1/provider-credentials/{credential}/{action}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
    }
    let response = client.chat(&key).await;
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "x-tollgate-byok"), "true");
    assert_eq!(
        gateway
            .mock
            .requests()
            .last()
            .unwrap()
            .authorization
            .as_deref(),
        Some(bearer(BYOK_KEY).as_str())
    );
    // But it may not wrap a new data key under the old master key.
    let org: Value = client
        .send(
            Method::POST,
            "/api/v1/organizations",
            ADMIN_TOKEN,
            Some(json!({"name": "Late", "billing_mode": "usd"})),
        )
        .await
        .json()
        .await
        .unwrap();
    let refused = client
        .send(
            Method::POST,
            "/api/v1/provider-credentials",
            ADMIN_TOKEN,
            Some(json!({"organization_id": org["id"], "provider": "mock", "api_key": OTHER_BYOK_KEY})),
        )
        .await;
    let error = expect_error(refused, 503).await;
    assert_eq!(error["code"], "master_key_rotated");
    assert!(process.terminate().success());

    // At RUST_LOG=debug, no key of any kind was logged.
    let log = log.finish();
    assert!(log.contains("provider credential created"), "{log}");
    for (what, needle) in [
        ("an organization's provider key", BYOK_KEY),
        ("another organization's provider key", OTHER_BYOK_KEY),
        ("the old master key", old.expose_secret()),
        ("the new master key", new.expose_secret()),
    ] {
        assert!(!log.contains(needle), "the log contains {what}:\n{log}");
    }
}

#[tokio::test]
async fn keys_rotate_with_a_wrong_current_master_key_changes_nothing() {
    let gateway = Gateway::new().await;
    let right = test_master_key();
    let process = GatewayProcess::serve(&gateway.dir.0, &gateway.envs(right.expose_secret())).await;
    assert!(process.terminate().success());

    let (status, output) =
        gateway.rotate(test_master_key().expose_secret(), "whatever new passphrase");

    assert!(!status.success());
    assert!(output.contains("not the master key"), "{output}");
    let again = GatewayProcess::serve(&gateway.dir.0, &gateway.envs(right.expose_secret())).await;
    assert!(again.terminate().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_binary_the_organization_key_pays_until_it_is_deactivated() {
    let gateway = Gateway::new().await;
    let master = test_master_key();
    let process =
        GatewayProcess::serve(&gateway.dir.0, &gateway.envs(master.expose_secret())).await;
    let client = Client {
        base: &process.base_url,
        http: tollgate_tests::client(),
    };
    let (org, key, credential) = client.byok_org(BYOK_KEY).await;
    let balance = || async {
        let credits: Value = client
            .send(
                Method::GET,
                &format!("/api/v1/organizations/{org}/credits"),
                ADMIN_TOKEN,
                None,
            )
            .await
            .json()
            .await
            .unwrap();
        credits["balance"].as_i64().unwrap()
    };
    let last_authorization = || {
        gateway
            .mock
            .requests()
            .last()
            .unwrap()
            .authorization
            .clone()
            .unwrap()
    };

    let own = client.chat(&key).await;
    assert_eq!(own.status(), 200);
    assert_eq!(header(&own, "x-tollgate-byok"), "true");
    assert_eq!(last_authorization(), bearer(BYOK_KEY));
    assert_eq!(balance().await, 10_000_000);

    let deactivated = client
        .send(
            Method::PUT,
            &format!("/api/v1/provider-credentials/{credential}/deactivate"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    assert_eq!(deactivated.status(), 200);
    let platform = client.chat(&key).await;
    assert_eq!(platform.status(), 200);
    assert_eq!(header(&platform, "x-tollgate-byok"), "false");
    assert_eq!(last_authorization(), "Bearer sk-platform-key");
    let charged: i64 = header(&platform, "x-tollgate-cost").parse().unwrap();
    assert!(charged > 0);
    assert_eq!(balance().await, 10_000_000 - charged);

    let usage: Value = client
        .send(
            Method::GET,
            &format!("/api/v1/organizations/{org}/usage"),
            ADMIN_TOKEN,
            None,
        )
        .await
        .json()
        .await
        .unwrap();
    let records = usage["data"].as_array().unwrap();
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["byok"], false);
    assert_eq!(records[1]["byok"], true);
    assert_eq!(records[1]["cost"], 0);
    assert!(process.terminate().success());
}
