//! Management users in tests: a gateway with sign-in on, users created
//! through the API with one known password, and their JWTs.

use crate::{DEFAULT_CONFIG, TestApp};
use secrecy::SecretString;
use serde_json::{Value, json};

/// `TOLLGATE_JWT_SECRET` of [`TestApp::spawn_with_sign_in`].
pub const JWT_SECRET: &str = "test-jwt-secret-of-at-least-32-bytes!!";
/// The password of every user made by [`TestApp::create_user`].
pub const PASSWORD: &str = "correct horse battery staple";

impl TestApp {
    /// A gateway with [`DEFAULT_CONFIG`] and [`JWT_SECRET`], so users can
    /// sign in.
    pub async fn spawn_with_sign_in() -> TestApp {
        TestApp::spawn_with(DEFAULT_CONFIG, |s| {
            s.jwt_secret = Some(SecretString::from(JWT_SECRET));
        })
        .await
    }

    /// Creates a user with [`PASSWORD`] as the platform admin, in `org` when
    /// given; the created user.
    pub async fn create_user(&self, email: &str, role: &str, org: Option<&str>) -> Value {
        let mut body = json!({"email": email, "password": PASSWORD, "role": role});
        if let Some(org) = org {
            body["organization_id"] = json!(org);
        }
        let response = self.admin_post("/api/v1/users", &body).await;
        assert_eq!(response.status(), 201);
        response.json().await.unwrap()
    }

    /// `POST /api/v1/auth/login`, answered as is.
    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/login"))
            .json(&json!({"email": email, "password": password}))
            .send()
            .await
            .unwrap()
    }

    /// The JWT of a user made by [`TestApp::create_user`].
    pub async fn token_of(&self, email: &str) -> String {
        let response = self.login(email, PASSWORD).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }
}

/// The JWTs of the role tables' users (see [`TestApp::role_tokens`]).
pub struct RoleTokens {
    pub platform: String,
    pub admin_of_a: String,
    pub member_of_a: String,
    pub admin_of_b: String,
}

impl TestApp {
    /// Creates and signs in a platform admin, the org_admin and the
    /// org_member of organization `a`, and the org_admin of `b`.
    pub async fn role_tokens(&self, a: &str, b: &str) -> RoleTokens {
        let users = [
            ("platform@example.com", "platform_admin", None),
            ("admin-a@example.com", "org_admin", Some(a)),
            ("member-a@example.com", "org_member", Some(a)),
            ("admin-b@example.com", "org_admin", Some(b)),
        ];
        for (email, role, org) in users {
            self.create_user(email, role, org).await;
        }
        RoleTokens {
            platform: self.token_of("platform@example.com").await,
            admin_of_a: self.token_of("admin-a@example.com").await,
            member_of_a: self.token_of("member-a@example.com").await,
            admin_of_b: self.token_of("admin-b@example.com").await,
        }
    }
}
