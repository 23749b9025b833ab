//! Who may call what, over every operation of the OpenAPI document: the
//! document is read at test time, so an operation added to it is covered
//! at once, and one without a row in [`TABLE`] fails the test until the
//! row says who may call it.
//!
//! Each operation is called by every kind of caller: the admin token, a
//! `platform_admin` user, the `org_admin` and the `org_member` of
//! organization A, the `org_admin` of organization B, a plain and an admin
//! API key of A, and no credential at all. A caller the row refuses must get
//! exactly its 401 or 403 (or 404, where another organization's resource is
//! hidden as missing); a caller the row allows must get neither, and no 5xx.

use secrecy::SecretString;
use serde_json::{Value, json};
use tollgate_tests::users::{JWT_SECRET, PASSWORD};
use tollgate_tests::{ADMIN_TOKEN, DEFAULT_CONFIG, TestApp};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    AdminToken,
    PlatformUser,
    AdminOfA,
    MemberOfA,
    AdminOfB,
    KeyOfA,
    AdminKeyOfA,
    Anonymous,
}

const CALLERS: [Caller; 8] = [
    Caller::AdminToken,
    Caller::PlatformUser,
    Caller::AdminOfA,
    Caller::MemberOfA,
    Caller::AdminOfB,
    Caller::KeyOfA,
    Caller::AdminKeyOfA,
    Caller::Anonymous,
];

/// Who may call an operation. Path parameters always name organization A
/// and its resources.
#[derive(Clone, Copy, Debug)]
enum Access {
    /// No credential needed.
    Public,
    /// An API key of the organization (the data plane); a management
    /// credential is not an API key: 401.
    ApiKey,
    /// Any management caller: the admin token or any user.
    AnyManager,
    /// The admin token or a `platform_admin` user.
    Platform,
    /// A platform admin or an `org_admin` of A.
    OrgAdmin,
    /// A platform admin or any user of A.
    OrgReader,
    /// Provider credentials: a platform admin, an `org_admin` of A or an
    /// admin API key of A; another organization's admin gets 403.
    CredentialManager,
    /// One provider credential of A: as [`Access::CredentialManager`], but
    /// another organization's admin gets 404, as for a credential that does
    /// not exist.
    CredentialOfA,
    /// A user's JWT (the admin token is not one: 400).
    SignedInUser,
    /// An inbound billing webhook: only its signature counts, so every
    /// caller's unsigned request is a 401, bearer token or not.
    SignedWebhook,
}

/// What a caller must get.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Outcome {
    /// Neither 401 nor 403, and no 5xx.
    Allowed,
    Status(u16),
}

impl Access {
    fn outcome(self, caller: Caller) -> Outcome {
        use Caller::*;
        use Outcome::{Allowed, Status};
        let is_key = matches!(caller, KeyOfA | AdminKeyOfA);
        let is_user = matches!(caller, PlatformUser | AdminOfA | MemberOfA | AdminOfB);
        match self {
            Access::Public => Allowed,
            Access::SignedWebhook => Status(401),
            Access::ApiKey if is_key => Allowed,
            Access::ApiKey => Status(401),
            _ if caller == Anonymous => Status(401),
            Access::CredentialManager | Access::CredentialOfA => match caller {
                AdminToken | PlatformUser | AdminOfA | AdminKeyOfA => Allowed,
                AdminOfB if matches!(self, Access::CredentialOfA) => Status(404),
                _ => Status(403),
            },
            // The rest is the management plane, which takes no API key.
            _ if is_key => Status(401),
            Access::AnyManager => Allowed,
            Access::SignedInUser if is_user => Allowed,
            Access::SignedInUser => Status(400),
            _ if matches!(caller, AdminToken | PlatformUser) => Allowed,
            Access::OrgAdmin if caller == AdminOfA => Allowed,
            Access::OrgReader if matches!(caller, AdminOfA | MemberOfA) => Allowed,
            _ => Status(403),
        }
    }
}

/// A request body for an operation, when the document's example is not one
/// that every allowed caller can send.
type Body = Option<fn(&World) -> Value>;

/// Every operation of the document: `(method, path, access, body)`.
const TABLE: &[(&str, &str, Access, Body)] = &[
    ("POST", "/v1/chat/completions", Access::ApiKey, None),
    ("POST", "/v1/embeddings", Access::ApiKey, None),
    ("GET", "/v1/models", Access::ApiKey, None),
    (
        "POST",
        "/v1/messages",
        Access::ApiKey,
        Some(
            |_| json!({"model": "gpt-4o-mini", "max_tokens": 16, "messages": [{"role": "user", "content": "Hi"}]}),
        ),
    ),
    (
        "POST",
        "/v1/messages/count_tokens",
        Access::ApiKey,
        Some(|_| json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hi"}]})),
    ),
    ("POST", "/v1/responses", Access::ApiKey, None),
    ("GET", "/v1/responses/{id}", Access::ApiKey, None),
    ("DELETE", "/v1/responses/{id}", Access::ApiKey, None),
    (
        "GET",
        "/v1/responses/{id}/input_items",
        Access::ApiKey,
        None,
    ),
    ("GET", "/v1/models/{model}", Access::ApiKey, None),
    (
        "POST",
        "/v1beta/models/{model_method}",
        Access::ApiKey,
        Some(|_| json!({"contents": [{"parts": [{"text": "Hi"}]}]})),
    ),
    ("GET", "/v1beta/models", Access::ApiKey, None),
    ("POST", "/api/v1/organizations", Access::Platform, None),
    ("GET", "/api/v1/organizations", Access::AnyManager, None),
    (
        "GET",
        "/api/v1/organizations/{org_id}",
        Access::OrgReader,
        None,
    ),
    (
        "PATCH",
        "/api/v1/organizations/{org_id}",
        Access::OrgAdmin,
        // The document's example also sets platform-only fields (markup).
        Some(|_| json!({"name": "Renamed", "default_power_level": "eco"})),
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/suspend",
        Access::Platform,
        None,
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/resume",
        Access::Platform,
        None,
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/api-keys",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/api-keys",
        Access::OrgReader,
        None,
    ),
    (
        "PATCH",
        "/api/v1/organizations/{org_id}/api-keys/{key_id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "DELETE",
        "/api/v1/organizations/{org_id}/api-keys/{key_id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/credits",
        Access::OrgAdmin,
        None,
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/credits/grants",
        Access::Platform,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/credits/transactions",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/usage",
        Access::OrgReader,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/requests",
        Access::OrgReader,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/requests/{request_id}",
        Access::OrgReader,
        None,
    ),
    (
        "POST",
        "/api/v1/provider-credentials",
        Access::CredentialManager,
        Some(
            |w| json!({"organization_id": w.a, "provider": "mock", "api_key": "sk-role-test-1234", "active": false}),
        ),
    ),
    (
        "GET",
        "/api/v1/provider-credentials",
        Access::CredentialManager,
        None,
    ),
    (
        "GET",
        "/api/v1/provider-credentials/active",
        Access::CredentialManager,
        None,
    ),
    (
        "GET",
        "/api/v1/provider-credentials/audit",
        Access::CredentialManager,
        None,
    ),
    (
        "GET",
        "/api/v1/provider-credentials/{id}",
        Access::CredentialOfA,
        None,
    ),
    (
        "PUT",
        "/api/v1/provider-credentials/{id}",
        Access::CredentialOfA,
        None,
    ),
    (
        "DELETE",
        "/api/v1/provider-credentials/{id}",
        Access::CredentialOfA,
        None,
    ),
    (
        "PUT",
        "/api/v1/provider-credentials/{id}/activate",
        Access::CredentialOfA,
        None,
    ),
    (
        "PUT",
        "/api/v1/provider-credentials/{id}/deactivate",
        Access::CredentialOfA,
        None,
    ),
    (
        "DELETE",
        "/api/v1/organizations/{org_id}",
        Access::Platform,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/usage/summary",
        Access::OrgReader,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/usage/export",
        Access::OrgReader,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/members",
        Access::OrgAdmin,
        None,
    ),
    (
        "DELETE",
        "/api/v1/organizations/{org_id}/members/{user_id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/invitations",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/invitations",
        Access::OrgAdmin,
        None,
    ),
    (
        "DELETE",
        "/api/v1/organizations/{org_id}/invitations/{invitation_id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "POST",
        "/api/v1/auth/accept-invitation",
        Access::Public,
        None,
    ),
    (
        "POST",
        "/api/v1/billing/webhooks/stripe",
        Access::SignedWebhook,
        None,
    ),
    (
        "POST",
        "/api/v1/billing/webhooks/lago",
        Access::SignedWebhook,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/webhooks",
        Access::OrgAdmin,
        None,
    ),
    (
        "POST",
        "/api/v1/organizations/{org_id}/webhooks",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/webhooks/{id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "DELETE",
        "/api/v1/organizations/{org_id}/webhooks/{id}",
        Access::OrgAdmin,
        None,
    ),
    (
        "GET",
        "/api/v1/organizations/{org_id}/webhooks/{id}/deliveries",
        Access::OrgAdmin,
        None,
    ),
    ("GET", "/api/v1/users", Access::Platform, None),
    ("POST", "/api/v1/users", Access::OrgAdmin, None),
    (
        "POST",
        "/api/v1/auth/login",
        Access::Public,
        Some(|w| json!({"email": w.member_email, "password": PASSWORD})),
    ),
    ("POST", "/api/v1/auth/refresh", Access::SignedInUser, None),
    ("GET", "/api/v1/models", Access::AnyManager, None),
    ("POST", "/api/v1/models", Access::Platform, None),
    ("PATCH", "/api/v1/models/{id}", Access::Platform, None),
    ("DELETE", "/api/v1/models/{id}", Access::Platform, None),
    ("GET", "/api/v1/routing/health", Access::Platform, None),
    ("GET", "/health", Access::Public, None),
    ("GET", "/ready", Access::Public, None),
    ("GET", "/metrics", Access::Public, None),
    ("GET", "/openapi.json", Access::Public, None),
    ("GET", "/docs", Access::Public, None),
];

/// Organization A (with credits, users and keys) and organization B (with
/// its admin), fresh for each operation so that one operation's effect
/// (a suspension, a revoked key) cannot change another's answer.
struct World {
    a: String,
    member_email: String,
    tokens: Vec<(Caller, Option<String>)>,
}

impl World {
    async fn new(app: &TestApp, platform_token: &str, n: usize) -> World {
        let a = app.create_org("usd").await;
        let b = app.create_org("usd").await;
        app.grant(&a, 1_000_000).await;
        let admin_a = format!("admin-a-{n}@example.com");
        let member_a = format!("member-a-{n}@example.com");
        let admin_b = format!("admin-b-{n}@example.com");
        app.create_user(&admin_a, "org_admin", Some(&a)).await;
        app.create_user(&member_a, "org_member", Some(&a)).await;
        app.create_user(&admin_b, "org_admin", Some(&b)).await;
        let (_, key) = app.create_key(&a).await;
        let admin_key = app
            .create_key_with(&a, &json!({"name": "admin", "admin": true}))
            .await
            .json::<Value>()
            .await
            .unwrap()["key"]
            .as_str()
            .unwrap()
            .to_owned();
        let tokens = vec![
            (Caller::AdminToken, Some(ADMIN_TOKEN.to_owned())),
            (Caller::PlatformUser, Some(platform_token.to_owned())),
            (Caller::AdminOfA, Some(app.token_of(&admin_a).await)),
            (Caller::MemberOfA, Some(app.token_of(&member_a).await)),
            (Caller::AdminOfB, Some(app.token_of(&admin_b).await)),
            (Caller::KeyOfA, Some(key)),
            (Caller::AdminKeyOfA, Some(admin_key)),
            (Caller::Anonymous, None),
        ];
        World {
            a,
            member_email: member_a,
            tokens,
        }
    }

    fn token(&self, caller: Caller) -> Option<&str> {
        self.tokens
            .iter()
            .find(|(c, _)| *c == caller)
            .and_then(|(_, t)| t.as_deref())
    }

    /// The value of a path parameter: organization A, or a fresh resource
    /// of A (a fresh one per call, so that a removal by one caller leaves
    /// the next caller something to act on). A parameter this does not
    /// know gets an id that exists nowhere: allowed callers then get 404.
    async fn path_value(&self, app: &TestApp, path: &str, name: &str) -> String {
        match name {
            "org_id" => self.a.clone(),
            "key_id" => app.create_key(&self.a).await.0,
            "id" if path.starts_with("/api/v1/provider-credentials/") => {
                let response = app
                    .admin_post(
                        "/api/v1/provider-credentials",
                        &json!({"organization_id": self.a, "provider": "mock", "api_key": "sk-role-test-1234", "active": false}),
                    )
                    .await;
                assert_eq!(response.status(), 201);
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            "id" if path.starts_with("/api/v1/models/") => {
                let id = format!("role-model-{}", uuid::Uuid::new_v4().simple());
                let response = app
                    .admin_post("/api/v1/models", &json!({"id": id, "provider": "mock"}))
                    .await;
                assert_eq!(response.status(), 201);
                id
            }
            "user_id" => {
                let email = format!("removable-{}@example.com", uuid::Uuid::new_v4().simple());
                app.create_user(&email, "org_member", Some(&self.a)).await["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            "invitation_id" => {
                let email = format!("invited-{}@example.com", uuid::Uuid::new_v4().simple());
                let response = app
                    .admin_post(
                        &format!("/api/v1/organizations/{}/invitations", self.a),
                        &json!({"email": email, "role": "org_member"}),
                    )
                    .await;
                assert_eq!(response.status(), 201);
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            "id" if path.starts_with("/api/v1/organizations/{org_id}/webhooks/") => {
                let response = app
                    .admin_post(
                        &format!("/api/v1/organizations/{}/webhooks", self.a),
                        &json!({"url": "https://example.com/hook", "events": ["credits.granted"]}),
                    )
                    .await;
                assert_eq!(response.status(), 201);
                response.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            }
            other => format!("{other}_missing"),
        }
    }
}

/// The document's example of a JSON request body, pointed at organization
/// A, with a fresh email (emails are unique) and the test catalog's provider.
fn example_body(doc: &Value, operation: &Value, world: &World, n: usize) -> Option<Value> {
    let schema = &operation["requestBody"]["content"]["application/json"]["schema"];
    if schema.is_null() {
        return None;
    }
    let schema = match schema["$ref"].as_str() {
        Some(reference) => {
            &doc["components"]["schemas"][reference.trim_start_matches("#/components/schemas/")]
        }
        None => schema,
    };
    let mut body = schema["example"].clone();
    if let Some(fields) = body.as_object_mut() {
        for (name, value) in fields.iter_mut() {
            match name.as_str() {
                "organization_id" => *value = json!(world.a),
                "email" => *value = json!(format!("user-{n}@example.com")),
                "provider" => *value = json!("mock"),
                _ => {}
            }
        }
    } else {
        body = json!({});
    }
    Some(body)
}

/// Query parameters: `organization_id` is A (so that a caller of another
/// organization is refused); other required ones get the document's
/// example, or the test catalog's provider.
fn query(operation: &Value, world: &World) -> String {
    let mut pairs = vec![];
    for parameter in operation["parameters"].as_array().into_iter().flatten() {
        if parameter["in"] != "query" {
            continue;
        }
        let name = parameter["name"].as_str().unwrap();
        let value = match name {
            "organization_id" => world.a.clone(),
            "provider" => "mock".to_owned(),
            _ if parameter["required"] == true => parameter["example"]
                .as_str()
                .map_or_else(|| "x".to_owned(), str::to_owned),
            _ => continue,
        };
        pairs.push(format!("{name}={value}"));
    }
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

async fn served_document(app: &TestApp) -> Value {
    let response = app.client.get(app.url("/openapi.json")).send().await;
    response.unwrap().json().await.unwrap()
}

fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = vec![];
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.to_uppercase(), path.clone(), operation.clone()));
        }
    }
    all
}

#[tokio::test]
async fn every_documented_operation_has_a_row_in_the_role_table() {
    let app = TestApp::spawn().await;
    let doc = served_document(&app).await;

    let missing: Vec<String> = operations(&doc)
        .into_iter()
        .filter(|(method, path, _)| !TABLE.iter().any(|(m, p, ..)| m == method && p == path))
        .map(|(method, path, _)| format!("{method} {path}"))
        .collect();
    let stale: Vec<String> = TABLE
        .iter()
        .filter(|(m, p, ..)| doc["paths"][*p][m.to_lowercase()].is_null())
        .map(|(m, p, ..)| format!("{m} {p}"))
        .collect();

    assert!(
        missing.is_empty(),
        "operations of the document with no row in tests/api/roles.rs TABLE (say who may call them): {missing:#?}"
    );
    assert!(
        stale.is_empty(),
        "rows of tests/api/roles.rs TABLE for operations the document does not have: {stale:#?}"
    );
}

#[tokio::test]
async fn each_caller_gets_exactly_what_its_role_allows_on_every_operation() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        s.jwt_secret = Some(SecretString::from(JWT_SECRET));
        s.stripe_webhook_secret = Some(SecretString::from("whsec_role_test"));
        s.lago_webhook_secret = Some(SecretString::from("lago_role_test"));
    })
    .await;
    let doc = served_document(&app).await;
    app.create_user("platform@example.com", "platform_admin", None)
        .await;
    let platform_token = app.token_of("platform@example.com").await;
    let mut failures = vec![];
    let mut calls = 0;

    for (n, (method, template, operation)) in operations(&doc).into_iter().enumerate() {
        let Some((_, _, access, body)) = TABLE
            .iter()
            .find(|(m, p, ..)| *m == method && *p == template)
        else {
            continue; // every_documented_operation_has_a_row_in_the_role_table fails for it
        };
        let world = World::new(&app, &platform_token, n).await;
        // Refused callers first: an allowed one may remove what they act on.
        let mut callers = CALLERS.to_vec();
        callers.sort_by_key(|c| access.outcome(*c) == Outcome::Allowed);
        for caller in callers {
            calls += 1;
            let mut path = String::new();
            for part in template.split('/').skip(1) {
                path.push('/');
                match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                    Some(name) => path.push_str(&world.path_value(&app, &template, name).await),
                    None => path.push_str(part),
                }
            }
            path.push_str(&query(&operation, &world));
            let mut request = app.client.request(method.parse().unwrap(), app.url(&path));
            if let Some(token) = world.token(caller) {
                request = request.bearer_auth(token);
            }
            let body = match body {
                Some(make) => Some(make(&world)),
                None => example_body(&doc, &operation, &world, calls),
            };
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let expected = access.outcome(caller);
            let ok = match expected {
                Outcome::Allowed => status != 401 && status != 403 && status < 500,
                Outcome::Status(want) => status == want,
            };
            if !ok {
                failures.push(format!(
                    "{caller:?} {method} {template}: expected {expected:?}, got {status} {text}"
                ));
            }
        }
    }

    assert!(calls >= 8 * 30, "only {calls} calls made");
    assert!(failures.is_empty(), "{failures:#?}");
}
