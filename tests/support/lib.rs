//! Test support for the black-box tests: a [`TestApp`] runs the real router
//! on a real socket (port 0) against the project's mock provider, on a fresh
//! database per test, SQLite or PostgreSQL as `TOLLGATE_TEST_DATABASE` says
//! (`sqlite`, the default, or `postgres`, with `TOLLGATE_TEST_POSTGRES_URL`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod binary;
pub mod byok;
pub mod chaos;
pub mod metrics;
pub mod replica;
pub mod users;

pub use tollgate_core::Backend;
pub use tollgate_core::testing::{TestDatabase, test_backend};
pub use tollgate_mock_provider::{Fault, MockProvider};

use secrecy::SecretString;
use serde_json::{Value, json};
use std::net::SocketAddr;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token";

/// The default test catalog: one OpenAI-kind provider (the mock) with three
/// chat models and an embedding model. `{MOCK}` is the mock's base URL.
pub const DEFAULT_CONFIG: &str = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
models:
  - { id: gpt-4o-mini, provider: mock, tier: 1, quality: 70, max_output_tokens: 1000,
      price: { input_per_mtok: 0.15, output_per_mtok: 0.60, cached_input_per_mtok: 0.075 } }
  - { id: big-model, provider: mock, upstream: big-model-2025, tier: 4, quality: 95, max_output_tokens: 1000,
      price: { input_per_mtok: 15, output_per_mtok: 75 } }
  - { id: cheap-model, provider: mock, tier: 0, quality: 40, max_output_tokens: 1000,
      price: { input_per_mtok: 0.05, output_per_mtok: 0.10 } }
  - { id: text-embedding-3-small, provider: mock, mode: embedding, price: { input_per_mtok: 0.02 } }
power_levels:
  eco: [cheap-model, gpt-4o-mini]
  balanced: [gpt-4o-mini, big-model]
  precision: [big-model, gpt-4o-mini]
"#;

/// A running gateway, its mock provider and its database.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base_url: String,
    pub mock: MockProvider,
    pub client: reqwest::Client,
    pub database_url: String,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<anyhow_free::Result>>,
    _db: TestDatabase,
    _dir: tempdir::TempDir,
}

/// A stand-in for `anyhow::Result<()>` without the dependency.
mod anyhow_free {
    pub type Result = std::result::Result<(), String>;
}

pub mod tempdir {
    /// A temporary directory removed on drop.
    pub struct TempDir(pub std::path::PathBuf);

    impl TempDir {
        pub fn new() -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("tollgate-test-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Default for TempDir {
        fn default() -> TempDir {
            TempDir::new()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A master key for tests, so no dev key file is written.
pub fn test_master_key() -> SecretString {
    tollgate_credentials::MasterKey::generate().to_base64()
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().build().unwrap()
}

impl TestApp {
    /// A gateway with [`DEFAULT_CONFIG`].
    pub async fn spawn() -> TestApp {
        Self::spawn_with_config(DEFAULT_CONFIG).await
    }

    /// A gateway with the given YAML catalog (`{MOCK}` → the mock's OpenAI
    /// base URL, `{MOCK_ROOT}` → its root, for Anthropic and Gemini kinds).
    pub async fn spawn_with_config(config: &str) -> TestApp {
        Self::spawn_with(config, |_| {}).await
    }

    /// A gateway with the given YAML catalog and settings changed by `tweak`
    /// after the test defaults are set.
    pub async fn spawn_with(
        config: &str,
        tweak: impl FnOnce(&mut tollgate_api::Settings),
    ) -> TestApp {
        let mock = MockProvider::start().await;
        let dir = tempdir::TempDir::new();
        let db = TestDatabase::create(&dir.0).await;
        let config_path = dir.0.join("tollgate.yaml");
        let config = config
            .replace("{MOCK_ROOT}", &format!("http://{}", mock.addr()))
            .replace("{MOCK}", &mock.base_url());
        std::fs::write(&config_path, config).unwrap();
        let mut settings = tollgate_api::Settings::for_database(&db.url);
        settings.config = Some(config_path);
        settings.admin_token = Some(SecretString::from(ADMIN_TOKEN));
        settings.master_key = Some(test_master_key());
        settings.max_body_bytes = 1024 * 1024;
        // Leases go back to the balance as soon as the last call settles, so
        // tests can read `reserved` right after a call.
        settings.lease_idle_ms = 0;
        settings.data_dir = Some(dir.0.clone());
        tweak(&mut settings);
        let gateway = tollgate_api::start(&settings)
            .await
            .expect("gateway starts");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            gateway
                .serve(listener, async {
                    let _ = rx.await;
                })
                .await
                .map_err(|e| format!("{e:#}"))
        });
        TestApp {
            addr,
            base_url: format!("http://{addr}"),
            mock,
            client: client(),
            database_url: db.url.clone(),
            shutdown: Some(tx),
            server: Some(server),
            _db: db,
            _dir: dir,
        }
    }

    /// Stops the gateway gracefully and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// This gateway's `/metrics`, classic text format.
    pub async fn metrics(&self) -> String {
        metrics::scrape(&self.client, &self.base_url).await
    }

    // ---- management plane ----

    /// A request to the management API, with the admin token.
    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.url(path))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn admin_post(&self, path: &str, body: &Value) -> reqwest::Response {
        let request = self.admin(reqwest::Method::POST, path).json(body);
        request.send().await.unwrap()
    }

    pub async fn admin_get(&self, path: &str) -> reqwest::Response {
        let request = self.admin(reqwest::Method::GET, path);
        request.send().await.unwrap()
    }

    pub async fn admin_patch(&self, path: &str, body: &Value) -> reqwest::Response {
        let request = self.admin(reqwest::Method::PATCH, path).json(body);
        request.send().await.unwrap()
    }

    pub async fn admin_delete(&self, path: &str) -> reqwest::Response {
        let request = self.admin(reqwest::Method::DELETE, path);
        request.send().await.unwrap()
    }

    /// Creates an organization and returns its id.
    pub async fn create_org(&self, billing_mode: &str) -> String {
        let response = self
            .admin_post(
                "/api/v1/organizations",
                &json!({"name": "Acme", "billing_mode": billing_mode}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        body["id"].as_str().unwrap().to_owned()
    }

    /// Creates an API key and returns `(key id, key)`.
    pub async fn create_key(&self, org_id: &str) -> (String, String) {
        let response = self
            .admin_post(
                &format!("/api/v1/organizations/{org_id}/api-keys"),
                &json!({"name": "test key"}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn grant(&self, org_id: &str, amount: i64) -> Value {
        let response = self
            .admin_post(
                &format!("/api/v1/organizations/{org_id}/credits/grants"),
                &json!({"amount": amount}),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// An organization with `credits` granted and a key: `(org id, key)`.
    pub async fn funded_org(&self, billing_mode: &str, credits: i64) -> (String, String) {
        let org = self.create_org(billing_mode).await;
        if credits > 0 {
            self.grant(&org, credits).await;
        }
        let (_, key) = self.create_key(&org).await;
        (org, key)
    }

    pub async fn credits(&self, org_id: &str) -> Value {
        let response = self
            .admin_get(&format!("/api/v1/organizations/{org_id}/credits"))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    pub async fn balance(&self, org_id: &str) -> i64 {
        self.credits(org_id).await["balance"].as_i64().unwrap()
    }

    pub async fn usage(&self, org_id: &str) -> Vec<Value> {
        let response = self
            .admin_get(&format!("/api/v1/organizations/{org_id}/usage?limit=1000"))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["data"].as_array().unwrap().clone()
    }

    pub async fn transactions(&self, org_id: &str) -> Vec<Value> {
        let response = self
            .admin_get(&format!(
                "/api/v1/organizations/{org_id}/credits/transactions?limit=1000"
            ))
            .await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["data"].as_array().unwrap().clone()
    }

    // ---- data plane ----

    pub async fn chat(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A small chat request for `model`.
pub fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The mock's usage for [`chat_body`]: "Say hello" is 2 words + 3.
pub const CHAT_PROMPT_TOKENS: i64 = 5;
/// The mock's default reply has 11 words.
pub const CHAT_COMPLETION_TOKENS: i64 = 11;

/// Parses an SSE body into its `data:` payloads.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            event
                .lines()
                .find_map(|line| {
                    line.strip_prefix("data: ")
                        .or_else(|| line.strip_prefix("data:"))
                })
                .map(|d| d.trim().to_owned())
        })
        .collect()
}

// ---- helpers added for the management-plane and operations tests ----

impl TestApp {
    /// `GET path` with `Authorization: Bearer <key>` (any key or token).
    pub async fn get_with_key(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// `GET /v1/models` with an organization API key.
    pub async fn models(&self, key: &str) -> reqwest::Response {
        self.get_with_key(key, "/v1/models").await
    }

    /// `POST /v1/embeddings` with an organization API key.
    pub async fn embeddings(&self, key: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.url("/v1/embeddings"))
            .bearer_auth(key)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// `POST …/api-keys` with this body, answered as is.
    pub async fn create_key_with(&self, org_id: &str, body: &Value) -> reqwest::Response {
        self.admin_post(&format!("/api/v1/organizations/{org_id}/api-keys"), body)
            .await
    }

    /// A key of `org_id` with a budget of `amount` per `period`:
    /// `(key id, key)`.
    pub async fn budgeted_key(&self, org_id: &str, amount: i64, period: &str) -> (String, String) {
        let response = self
            .create_key_with(
                org_id,
                &json!({"name": "budgeted", "budget": {"amount": amount, "period": period}}),
            )
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST …/credits/grants` with this body, answered as is.
    pub async fn grant_with(&self, org_id: &str, body: &Value) -> reqwest::Response {
        self.admin_post(
            &format!("/api/v1/organizations/{org_id}/credits/grants"),
            body,
        )
        .await
    }
}

/// Asserts that `response` has this status and an error body in the
/// contract's shape, `{"error": {"message", "type", "code"}}` (all strings),
/// and returns the inner `error` object.
pub async fn expect_error(response: reqwest::Response, status: u16) -> Value {
    let (actual, url) = (response.status(), response.url().clone());
    let text = response.text().await.unwrap();
    assert_eq!(actual, status, "status of {url}, whose body is {text}");
    let body: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("a {status} whose body is not JSON ({e}): {text:?}"));
    let error = &body["error"];
    for field in ["message", "type", "code"] {
        assert!(
            error[field].is_string(),
            "error.{field} is missing or not a string: {body}"
        );
    }
    error.clone()
}

/// The error message of an [`expect_error`] object.
pub fn message_of(error: &Value) -> &str {
    error["message"].as_str().unwrap()
}

// ---- helpers for tests that drive several gateways by URL ----

/// Through the gateway at `base_url` (as the platform admin): an
/// organization of `billing_mode` granted `credits`, and a key created with
/// `key_body`. Returns the key.
pub async fn org_key_at(
    http: &reqwest::Client,
    base_url: &str,
    billing_mode: &str,
    credits: i64,
    key_body: Value,
) -> String {
    let post = |path: String, body: Value| {
        http.post(format!("{base_url}{path}"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
    };
    let org: Value = post(
        "/api/v1/organizations".to_owned(),
        json!({"name": "Acme", "billing_mode": billing_mode}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let org = org["id"].as_str().unwrap();
    let granted = post(
        format!("/api/v1/organizations/{org}/credits/grants"),
        json!({"amount": credits}),
    )
    .await
    .unwrap();
    assert_eq!(granted.status(), 201);
    let created: Value = post(format!("/api/v1/organizations/{org}/api-keys"), key_body)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    created["key"].as_str().unwrap().to_owned()
}

/// `n` chat calls for `gpt-4o-mini` at once, spread in turn over the
/// gateways at `base_urls`: each answer's status and whether it carries
/// `Retry-After`.
pub async fn chat_at_once(
    http: &reqwest::Client,
    base_urls: &[&str],
    key: &str,
    n: usize,
) -> Vec<(u16, bool)> {
    let calls = (0..n).map(|i| {
        let url = base_urls[i % base_urls.len()];
        async move {
            let response = http
                .post(format!("{url}/v1/chat/completions"))
                .bearer_auth(key)
                .json(&chat_body("gpt-4o-mini"))
                .send()
                .await
                .unwrap();
            (
                response.status().as_u16(),
                response.headers().contains_key("retry-after"),
            )
        }
    });
    futures::future::join_all(calls).await
}
