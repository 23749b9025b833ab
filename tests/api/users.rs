//! Management users: creation, sign-in (JWT), brute-force protection, and
//! JWTs that must be refused. The role each operation needs is
//! table-driven, over the whole OpenAPI document, in `roles.rs`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use tollgate_tests::users::{JWT_SECRET, PASSWORD};
use tollgate_tests::{TestApp, expect_error};

async fn refresh(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .post(app.url("/api/v1/auth/refresh"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn a_user_signs_in_and_gets_a_bearer_token() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let user = app
        .create_user("Ada@Example.com", "org_admin", Some(&org))
        .await;
    assert_eq!(user["email"], "ada@example.com");
    assert_eq!(user["role"], "org_admin");
    assert_eq!(user["organization_id"], org.as_str());
    assert!(user.get("password").is_none() && user.get("password_hash").is_none());

    let response = app.login("ada@example.com", PASSWORD).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let token = body["access_token"].as_str().unwrap();
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["org"], org.as_str());
    assert_eq!(claims["role"], "org_admin");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    let response = app
        .client
        .get(app.url(&format!("/api/v1/organizations/{org}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_wrong_password_or_unknown_email_is_401_alike() {
    let app = TestApp::spawn_with_sign_in().await;
    app.create_user("ada@example.com", "platform_admin", None)
        .await;

    let wrong = expect_error(app.login("ada@example.com", "not the password").await, 401).await;
    let unknown = expect_error(app.login("bob@example.com", PASSWORD).await, 401).await;

    assert_eq!(wrong, unknown);
}

#[tokio::test]
async fn repeated_failures_make_sign_in_wait() {
    let app = TestApp::spawn_with_sign_in().await;
    app.create_user("ada@example.com", "platform_admin", None)
        .await;

    for _ in 0..5 {
        expect_error(app.login("ada@example.com", "guess").await, 401).await;
    }
    let response = app.login("ada@example.com", PASSWORD).await;
    assert_eq!(response.headers()["retry-after"], "1");
    let error = expect_error(response, 429).await;
    assert_eq!(error["code"], "too_many_sign_ins");
    // Another email is not affected.
    app.create_user("bob@example.com", "platform_admin", None)
        .await;
    assert_eq!(app.login("bob@example.com", PASSWORD).await.status(), 200);

    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
    // A success starts the count over.
    expect_error(app.login("ada@example.com", "guess").await, 401).await;
    assert_eq!(app.login("ada@example.com", PASSWORD).await.status(), 200);
}

#[tokio::test]
async fn invalid_users_are_refused() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_user("ada@example.com", "org_member", Some(&org))
        .await;
    let cases = [
        (
            json!({"email": "ADA@example.com", "password": PASSWORD, "role": "org_member", "organization_id": org}),
            409,
        ),
        (
            json!({"email": "bob@example.com", "password": "short", "role": "org_member", "organization_id": org}),
            400,
        ),
        (
            json!({"email": "not-an-email", "password": PASSWORD, "role": "platform_admin"}),
            400,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "role": "org_member"}),
            400,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "role": "platform_admin", "organization_id": org}),
            400,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "role": "owner", "organization_id": org}),
            400,
        ),
        (
            json!({"email": "bob@example.com", "password": PASSWORD, "role": "org_member", "organization_id": "org_missing"}),
            404,
        ),
    ];
    for (body, status) in cases {
        let response = app.admin_post("/api/v1/users", &body).await;
        expect_error(response, status).await;
    }
}

#[tokio::test]
async fn a_valid_token_can_be_refreshed() {
    let app = TestApp::spawn_with_sign_in().await;
    app.create_user("ada@example.com", "platform_admin", None)
        .await;
    let token = app.token_of("ada@example.com").await;

    let response = refresh(&app, &token).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
}

// ------------------------------------------------------------ refused JWTs

fn claims(sub: &str, org: Option<&str>, role: &str) -> Value {
    json!({"sub": sub, "org": org, "role": role, "iat": now(), "exp": now() + 600})
}

fn sign(claims: &Value, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn forged_expired_and_tampered_tokens_are_refused() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let other = app.create_org("usd").await;
    let path = format!("/api/v1/organizations/{org}");
    let get = |token: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };
    // The control: a well-made token of a member of `org` works.
    let user = app
        .create_user("member@example.com", "org_member", Some(&org))
        .await;
    let user_id = user["id"].as_str().unwrap();
    let member = claims(user_id, Some(&org), "org_member");
    assert_eq!(
        get(sign(&member, Algorithm::HS256, JWT_SECRET))
            .await
            .status(),
        200
    );

    let mut expired = member.clone();
    expired["iat"] = json!(now() - 7200);
    expired["exp"] = json!(now() - 3600);
    let wrong_signature = sign(
        &member,
        Algorithm::HS256,
        "another-secret-of-at-least-32-bytes!!",
    );
    let header_none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(member.to_string());
    let alg_none = format!("{header_none}.{payload}.");
    let valid = sign(&member, Algorithm::HS256, JWT_SECRET);
    let signature = valid.rsplit('.').next().unwrap();
    let header = valid.split('.').next().unwrap();
    let elevated = claims(user_id, None, "platform_admin");
    let tampered = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(elevated.to_string())
    );
    let moved = claims(user_id, Some(&other), "org_member");
    let tampered_org = format!(
        "{header}.{}.{signature}",
        URL_SAFE_NO_PAD.encode(moved.to_string())
    );
    let mut no_exp = member.clone();
    no_exp.as_object_mut().unwrap().remove("exp");
    let mut no_sub = member.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let mut no_iat = member.clone();
    no_iat.as_object_mut().unwrap().remove("iat");
    // Algorithm confusion: an asymmetric algorithm named in the header,
    // "signed" with HMAC over our secret (as a verifier that trusts the
    // header and uses the secret as the public key would accept).
    let confused = |alg: &str| {
        let header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#));
        let message = format!("{header}.{payload}");
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
            Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{signature}")
    };
    let unknown_role = claims(user_id, Some(&org), "owner");
    let org_role_without_org = claims(user_id, None, "org_admin");

    let refused = [
        ("expired", sign(&expired, Algorithm::HS256, JWT_SECRET)),
        ("wrong signature", wrong_signature),
        ("alg none", alg_none),
        ("HS512", sign(&member, Algorithm::HS512, JWT_SECRET)),
        ("HS384", sign(&member, Algorithm::HS384, JWT_SECRET)),
        ("RS256 header", confused("RS256")),
        ("ES256 header", confused("ES256")),
        ("alg None", confused("None")),
        ("tampered role", tampered),
        ("tampered org", tampered_org),
        ("no exp", sign(&no_exp, Algorithm::HS256, JWT_SECRET)),
        ("no sub", sign(&no_sub, Algorithm::HS256, JWT_SECRET)),
        ("no iat", sign(&no_iat, Algorithm::HS256, JWT_SECRET)),
        (
            "unknown role",
            sign(&unknown_role, Algorithm::HS256, JWT_SECRET),
        ),
        (
            "org role without org",
            sign(&org_role_without_org, Algorithm::HS256, JWT_SECRET),
        ),
        ("garbage", "a.b.c".to_owned()),
    ];
    for (what, token) in refused {
        let response = get(token).await;
        assert_eq!(response.status(), 401, "{what}");
        expect_error(response, 401).await;
    }
}

// ------------------------------------- tokens of removed or changed users

/// A gateway with an organization and its signed-in org_admin:
/// `(app, org id, user id, the user's token)`.
async fn signed_in_org_admin() -> (TestApp, String, String, String) {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let user = app
        .create_user("admin@example.com", "org_admin", Some(&org))
        .await;
    let token = app.token_of("admin@example.com").await;
    let user_id = user["id"].as_str().unwrap().to_owned();
    (app, org, user_id, token)
}

#[tokio::test]
async fn a_removed_members_token_stops_at_once() {
    let (app, org, user_id, token) = signed_in_org_admin().await;
    let org_path = format!("/api/v1/organizations/{org}");
    let credentials = format!("/api/v1/provider-credentials?organization_id={org}");
    assert_eq!(app.get_with_key(&token, &org_path).await.status(), 200);
    assert_eq!(app.get_with_key(&token, &credentials).await.status(), 200);

    let removed = app
        .admin_delete(&format!("{org_path}/members/{user_id}"))
        .await;

    assert!(removed.status().is_success(), "{}", removed.status());
    expect_error(app.get_with_key(&token, &org_path).await, 401).await;
    expect_error(app.get_with_key(&token, &credentials).await, 401).await;
    expect_error(app.get_with_key(&token, "/api/v1/organizations").await, 401).await;
}

#[tokio::test]
async fn a_deleted_organizations_admin_token_stops_at_once() {
    let (app, org, _, token) = signed_in_org_admin().await;
    assert_eq!(
        app.get_with_key(&token, "/api/v1/organizations")
            .await
            .status(),
        200
    );

    let deleted = app
        .admin_delete(&format!("/api/v1/organizations/{org}"))
        .await;

    assert_eq!(deleted.status(), 200);
    // The list is open to every signed-in user: only the token can fail it.
    expect_error(app.get_with_key(&token, "/api/v1/organizations").await, 401).await;
    expect_error(
        app.get_with_key(&token, &format!("/api/v1/organizations/{org}"))
            .await,
        401,
    )
    .await;
    expect_error(refresh(&app, &token).await, 401).await;
}

#[tokio::test]
async fn a_changed_role_is_honoured_at_once() {
    let (app, org, user_id, old_token) = signed_in_org_admin().await;
    let keys = format!("/api/v1/organizations/{org}/api-keys");
    let create_key = |token: String| {
        let request = app
            .client
            .post(app.url(&keys))
            .bearer_auth(token)
            .json(&json!({"name": "k"}));
        async move { request.send().await.unwrap() }
    };
    assert_eq!(create_key(old_token.clone()).await.status(), 201);

    // No endpoint changes a role yet: an operator does it in the database.
    sqlx::query("UPDATE users SET role = $1 WHERE id = $2")
        .bind("org_member")
        .bind(&user_id)
        .execute(&app.raw_db().await)
        .await
        .unwrap();

    expect_error(create_key(old_token).await, 401).await;
    let new_token = app.token_of("admin@example.com").await;
    expect_error(create_key(new_token.clone()).await, 403).await;
    assert_eq!(app.get_with_key(&new_token, &keys).await.status(), 200);
}

#[tokio::test]
async fn an_org_admin_cannot_touch_another_organizations_credentials() {
    let app = TestApp::spawn_with_sign_in().await;
    let a = app.create_org("usd").await;
    let b = app.create_org("usd").await;
    app.create_user("admin-b@example.com", "org_admin", Some(&b))
        .await;
    let token = app.token_of("admin-b@example.com").await;
    let created = app
        .admin_post(
            "/api/v1/provider-credentials",
            &json!({"organization_id": a, "provider": "mock", "api_key": "sk-of-a-1234"}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let id = created.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app
        .client
        .get(app.url(&format!("/api/v1/provider-credentials/{id}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 404).await;
    let response = app
        .client
        .post(app.url("/api/v1/provider-credentials"))
        .bearer_auth(&token)
        .json(&json!({"organization_id": a, "provider": "mock", "api_key": "sk-x-1234"}))
        .send()
        .await
        .unwrap();
    expect_error(response, 403).await;
}

#[tokio::test]
async fn the_platform_admin_pages_through_every_user_newest_first() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    let gone = app.create_org("usd").await;
    let mut ids = Vec::new();
    for (email, role, org) in [
        ("ops@example.com", "platform_admin", None),
        ("ada@example.com", "org_admin", Some(org.as_str())),
        ("bob@example.com", "org_member", Some(org.as_str())),
    ] {
        let user = app.create_user(email, role, org).await;
        ids.push(user["id"].as_str().unwrap().to_owned());
    }
    app.create_user("old@example.com", "org_admin", Some(&gone))
        .await;
    let deleted = app
        .admin_delete(&format!("/api/v1/organizations/{gone}"))
        .await;
    assert_eq!(deleted.status(), 200);

    let first: Value = app
        .admin_get("/api/v1/users?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let cursor = first["next_cursor"].as_str().unwrap();
    let second: Value = app
        .admin_get(&format!("/api/v1/users?limit=2&before={cursor}"))
        .await
        .json()
        .await
        .unwrap();

    let listed: Vec<&str> = first["data"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["data"].as_array().unwrap())
        .map(|u| u["id"].as_str().unwrap())
        .collect();
    ids.reverse();
    assert_eq!(
        listed, ids,
        "newest first, the deleted organization's user gone"
    );
    assert_eq!(first["has_more"], true);
    assert_eq!(second["has_more"], false);
    assert!(!second.to_string().contains("password"));
    let token = app.token_of("ada@example.com").await;
    let response = app
        .client
        .get(app.url("/api/v1/users"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    expect_error(response, 403).await;
}
