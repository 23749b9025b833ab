//! Helpers for the BYOK tests: provider credentials through the management
//! API, organization admin keys, and the database rows behind them.

use crate::{ADMIN_TOKEN, TestApp};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::AnyPool;

/// An organization's own key for the mock provider (not the platform's
/// `sk-platform-key`).
pub const BYOK_KEY: &str = "sk-org-OWN-key-7c1e9a4b2d";
/// Another organization's own key.
pub const OTHER_BYOK_KEY: &str = "sk-org-OTHER-key-5f0d3b8e6a";

/// The `Authorization` header the mock provider receives for `key`.
pub fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

impl TestApp {
    /// `method path` with `Authorization: Bearer <token>` and an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, self.url(path))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(body);
        }
        request.send().await.unwrap()
    }

    /// An organization API key flagged admin: `(key id, key)`.
    pub async fn create_admin_key(&self, org_id: &str) -> (String, String) {
        let response = self
            .create_key_with(org_id, &json!({"name": "org admin", "admin": true}))
            .await;
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["admin"], true);
        (
            body["id"].as_str().unwrap().to_owned(),
            body["key"].as_str().unwrap().to_owned(),
        )
    }

    /// `POST /api/v1/provider-credentials` as `token`, answered as is.
    pub async fn create_credential_as(&self, token: &str, body: &Value) -> reqwest::Response {
        self.send(
            Method::POST,
            "/api/v1/provider-credentials",
            token,
            Some(body),
        )
        .await
    }

    /// Adds an active credential for `provider` as the platform admin and
    /// returns it.
    pub async fn add_credential(&self, org_id: &str, provider: &str, api_key: &str) -> Value {
        let response = self
            .create_credential_as(
                ADMIN_TOKEN,
                &json!({
                    "organization_id": org_id,
                    "provider": provider,
                    "api_key": api_key,
                    "credential_name": "main",
                }),
            )
            .await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// `PUT /api/v1/provider-credentials/{id}/{activate|deactivate}` as the
    /// platform admin, which must succeed.
    pub async fn switch_credential(&self, id: &str, active: bool) -> Value {
        let action = if active { "activate" } else { "deactivate" };
        let response = self
            .send(
                Method::PUT,
                &format!("/api/v1/provider-credentials/{id}/{action}"),
                ADMIN_TOKEN,
                None,
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// The `Authorization` header of the mock's last request.
    pub fn last_authorization(&self) -> Option<String> {
        self.mock.requests().last()?.authorization.clone()
    }

    /// A pool on the test database, for reading and altering rows directly.
    pub async fn raw_db(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(1)
            .connect(&self.database_url)
            .await
            .unwrap()
    }
}
