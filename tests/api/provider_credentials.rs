//! The provider-credential management API (contract section 4): create,
//! list, get, update, delete, activate, deactivate, the active credential
//! and the audit log; the key never answered; who may do what, and that one
//! organization can neither read, change nor use another's credentials
//! through any endpoint.

use reqwest::Method;
use serde_json::{Value, json};
use tollgate_tests::byok::{BYOK_KEY, OTHER_BYOK_KEY, bearer};
use tollgate_tests::{
    ADMIN_TOKEN, CHAT_COMPLETION_TOKENS, Fault, TestApp, chat_body, expect_error, message_of,
};

const CREDENTIALS: &str = "/api/v1/provider-credentials";

fn create_body(org: &str, key: &str) -> Value {
    json!({"organization_id": org, "provider": "mock", "api_key": key, "credential_name": "prod"})
}

async fn json_of(response: reqwest::Response, status: u16) -> Value {
    assert_eq!(response.status(), status, "status of {}", response.url());
    response.json().await.unwrap()
}

async fn list(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let body = json_of(
        app.send(Method::GET, &format!("{CREDENTIALS}{query}"), token, None)
            .await,
        200,
    )
    .await;
    body["data"].as_array().unwrap().clone()
}

async fn audit(app: &TestApp, token: &str, query: &str) -> Vec<Value> {
    let body = json_of(
        app.send(
            Method::GET,
            &format!("{CREDENTIALS}/audit{query}"),
            token,
            None,
        )
        .await,
        200,
    )
    .await;
    body["data"].as_array().unwrap().clone()
}

// ---- shapes ----

#[tokio::test]
async fn create_answers_201_with_the_last_four_characters_and_never_the_key() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app
        .create_credential_as(ADMIN_TOKEN, &create_body(&org, BYOK_KEY))
        .await;

    assert_eq!(response.status(), 201);
    let text = response.text().await.unwrap();
    assert!(!text.contains(BYOK_KEY), "{text}");
    assert!(!text.contains("sk-org-OWN"), "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(body["id"].as_str().unwrap().starts_with("cred_"));
    assert_eq!(body["organization_id"], org);
    assert_eq!(body["provider"], "mock");
    assert_eq!(body["credential_name"], "prod");
    assert_eq!(body["key_hint"], "4b2d");
    assert_eq!(body["active"], true);
    assert_eq!(body["key_version"], 1);
    assert!(body.get("api_key").is_none());
    assert!(body["created_at"].as_i64().unwrap() > 1_700_000_000);
}

#[tokio::test]
async fn every_read_shows_the_hint_and_never_the_key() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let created = app.add_credential(&org, "mock", BYOK_KEY).await;
    let id = created["id"].as_str().unwrap();

    for path in [
        format!("{CREDENTIALS}/{id}"),
        format!("{CREDENTIALS}?organization_id={org}"),
        format!("{CREDENTIALS}/active?organization_id={org}&provider=mock"),
        format!("{CREDENTIALS}/audit?organization_id={org}"),
    ] {
        let response = app.admin_get(&path).await;
        assert_eq!(response.status(), 200, "{path}");
        let text = response.text().await.unwrap();
        assert!(!text.contains(BYOK_KEY), "{path}: {text}");
        assert!(text.contains("4b2d"), "{path}: {text}");
    }
}

#[tokio::test]
async fn provider_outside_the_catalog_is_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app
        .create_credential_as(
            ADMIN_TOKEN,
            &json!({"organization_id": org, "provider": "nope", "api_key": BYOK_KEY, "credential_name": "x"}),
        )
        .await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("provider"), "{error}");
    assert!(message_of(&error).contains("mock"), "{error}");
    assert!(
        list(&app, ADMIN_TOKEN, &format!("?organization_id={org}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn unknown_organization_is_404() {
    let app = TestApp::spawn().await;

    let response = app
        .create_credential_as(ADMIN_TOKEN, &create_body("org_nope", BYOK_KEY))
        .await;

    expect_error(response, 404).await;
}

#[tokio::test]
async fn malformed_bodies_are_400_and_never_repeat_the_key() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for body in [
        json!({"organization_id": org, "provider": "mock", "credential_name": "x"}),
        json!({"organization_id": org, "provider": "mock", "api_key": 42}),
        json!({"organization_id": org, "provider": "mock", "api_key": BYOK_KEY, "validate": BYOK_KEY}),
        json!({"organization_id": org, "provider": "mock", "api_key": BYOK_KEY, "active": BYOK_KEY}),
        json!({"organization_id": org, "provider": "mock", "api_key": format!("{BYOK_KEY} with spaces")}),
        json!({"organization_id": org, "provider": "mock", "api_key": ""}),
        json!({"organization_id": org, "provider": "mock", "api_key": BYOK_KEY, "extra": BYOK_KEY}),
    ] {
        let response = app.create_credential_as(ADMIN_TOKEN, &body).await;
        let error = expect_error(response, 400).await;
        assert!(
            !error.to_string().contains("sk-org-OWN"),
            "{body} -> {error}"
        );
    }
    assert!(
        list(&app, ADMIN_TOKEN, &format!("?organization_id={org}"))
            .await
            .is_empty()
    );
}

// ---- one active credential per organization and provider ----

#[tokio::test]
async fn second_active_credential_is_409_and_an_inactive_one_may_wait() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let first = app.add_credential(&org, "mock", BYOK_KEY).await;

    let second = app
        .create_credential_as(ADMIN_TOKEN, &create_body(&org, OTHER_BYOK_KEY))
        .await;
    let error = expect_error(second, 409).await;
    assert_eq!(error["code"], "conflict");
    assert!(message_of(&error).contains("mock"), "{error}");

    let mut spare = create_body(&org, OTHER_BYOK_KEY);
    spare["active"] = json!(false);
    let spare = json_of(app.create_credential_as(ADMIN_TOKEN, &spare).await, 201).await;
    assert_eq!(spare["active"], false);
    let spare_id = spare["id"].as_str().unwrap();
    let activate = app
        .send(
            Method::PUT,
            &format!("{CREDENTIALS}/{spare_id}/activate"),
            ADMIN_TOKEN,
            None,
        )
        .await;
    expect_error(activate, 409).await;

    app.switch_credential(first["id"].as_str().unwrap(), false)
        .await;
    let activated = app.switch_credential(spare_id, true).await;
    assert_eq!(activated["active"], true);
    let active = json_of(
        app.admin_get(&format!(
            "{CREDENTIALS}/active?organization_id={org}&provider=mock"
        ))
        .await,
        200,
    )
    .await;
    assert_eq!(active["id"], spare_id);
}

// ---- get, update, delete, activate, deactivate, active, list ----

#[tokio::test]
async fn update_renames_and_replaces_the_key() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let created = app.add_credential(&org, "mock", BYOK_KEY).await;
    let id = created["id"].as_str().unwrap();

    let renamed = json_of(
        app.send(
            Method::PUT,
            &format!("{CREDENTIALS}/{id}"),
            ADMIN_TOKEN,
            Some(&json!({"credential_name": "renamed"})),
        )
        .await,
        200,
    )
    .await;
    let rekeyed = app
        .send(
            Method::PUT,
            &format!("{CREDENTIALS}/{id}"),
            ADMIN_TOKEN,
            Some(&json!({"api_key": OTHER_BYOK_KEY})),
        )
        .await;
    let rekeyed_text = rekeyed.text().await.unwrap();
    let empty = app
        .send(
            Method::PUT,
            &format!("{CREDENTIALS}/{id}"),
            ADMIN_TOKEN,
            Some(&json!({})),
        )
        .await;

    assert_eq!(renamed["credential_name"], "renamed");
    assert_eq!(renamed["key_hint"], "4b2d");
    assert!(!rekeyed_text.contains(OTHER_BYOK_KEY));
    let rekeyed: Value = serde_json::from_str(&rekeyed_text).unwrap();
    assert_eq!(rekeyed["key_hint"], "8e6a");
    assert_eq!(rekeyed["credential_name"], "renamed");
    expect_error(empty, 400).await;
    // The next call uses the new key at once.
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.last_authorization().as_deref(),
        Some(bearer(OTHER_BYOK_KEY).as_str())
    );
}

#[tokio::test]
async fn deleted_credential_is_gone_and_the_slot_is_free() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let created = app.add_credential(&org, "mock", BYOK_KEY).await;
    let id = created["id"].as_str().unwrap();

    let deleted = json_of(app.admin_delete(&format!("{CREDENTIALS}/{id}")).await, 200).await;

    assert_eq!(deleted, json!({"id": id, "deleted": true}));
    expect_error(app.admin_get(&format!("{CREDENTIALS}/{id}")).await, 404).await;
    expect_error(app.admin_delete(&format!("{CREDENTIALS}/{id}")).await, 404).await;
    expect_error(
        app.admin_get(&format!(
            "{CREDENTIALS}/active?organization_id={org}&provider=mock"
        ))
        .await,
        404,
    )
    .await;
    assert!(
        list(&app, ADMIN_TOKEN, &format!("?organization_id={org}"))
            .await
            .is_empty()
    );
    app.add_credential(&org, "mock", OTHER_BYOK_KEY).await;
}

#[tokio::test]
async fn list_filters_by_organization_provider_and_state_newest_first() {
    let app = TestApp::spawn_with_config(&tollgate_tests::DEFAULT_CONFIG.replace(
        "providers:\n",
        "providers:\n  other: { kind: openai, base_url: \"{MOCK}\" }\n",
    ))
    .await;
    let a = app.create_org("usd").await;
    let b = app.create_org("usd").await;
    let a_mock = app.add_credential(&a, "mock", BYOK_KEY).await;
    let a_other = app.add_credential(&a, "other", BYOK_KEY).await;
    let b_mock = app.add_credential(&b, "mock", OTHER_BYOK_KEY).await;
    app.switch_credential(a_other["id"].as_str().unwrap(), false)
        .await;
    let ids = |items: Vec<Value>| -> Vec<String> {
        items
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |c: &Value| c["id"].as_str().unwrap().to_owned();

    assert_eq!(
        ids(list(&app, ADMIN_TOKEN, "").await),
        [id(&b_mock), id(&a_other), id(&a_mock)]
    );
    assert_eq!(
        ids(list(&app, ADMIN_TOKEN, &format!("?organization_id={a}")).await),
        [id(&a_other), id(&a_mock)]
    );
    assert_eq!(
        ids(list(&app, ADMIN_TOKEN, "?provider=mock").await),
        [id(&b_mock), id(&a_mock)]
    );
    assert_eq!(
        ids(list(
            &app,
            ADMIN_TOKEN,
            &format!("?organization_id={a}&active=true")
        )
        .await),
        [id(&a_mock)]
    );
    assert_eq!(
        ids(list(&app, ADMIN_TOKEN, "?active=false").await),
        [id(&a_other)]
    );
    let page = json_of(app.admin_get(&format!("{CREDENTIALS}?limit=2")).await, 200).await;
    assert_eq!(page["has_more"], true);
    let next = list(
        &app,
        ADMIN_TOKEN,
        &format!("?limit=2&before={}", id(&a_other)),
    )
    .await;
    assert_eq!(ids(next), [id(&a_mock)]);
    expect_error(app.admin_get(&format!("{CREDENTIALS}?bogus=1")).await, 400).await;
    expect_error(
        app.admin_get(&format!("{CREDENTIALS}?organization_id=org_nope"))
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn validation_on_create_tries_the_key_with_a_one_token_call() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let mut body = create_body(&org, BYOK_KEY);
    body["validate"] = json!(true);

    let response = app.create_credential_as(ADMIN_TOKEN, &body).await;

    assert_eq!(response.status(), 201);
    let seen = app.mock.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(bearer(BYOK_KEY).as_str())
    );
    assert_eq!(seen[0].body["max_tokens"], 1);
    assert_eq!(seen[0].body["model"], "cheap-model");
}

#[tokio::test]
async fn key_refused_by_the_provider_is_400_and_not_stored() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.mock.push_fault(Fault::status(401));
    let mut body = create_body(&org, BYOK_KEY);
    body["validate"] = json!(true);

    let response = app.create_credential_as(ADMIN_TOKEN, &body).await;

    let error = expect_error(response, 400).await;
    assert_eq!(error["code"], "invalid_provider_key");
    assert!(!error.to_string().contains(BYOK_KEY));
    assert!(
        list(&app, ADMIN_TOKEN, &format!("?organization_id={org}"))
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn malformed_key_is_refused_before_any_validation_call() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let mut body = create_body(&org, "sk-broken\nkey-SECRET");
    body["validate"] = json!(true);

    let response = app.create_credential_as(ADMIN_TOKEN, &body).await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("api_key"), "{error}");
    assert!(!error.to_string().contains("SECRET"), "{error}");
    assert_eq!(app.mock.request_count(), 0);
}

#[tokio::test]
async fn creation_without_validation_makes_no_provider_call() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    app.add_credential(&org, "mock", BYOK_KEY).await;

    assert_eq!(app.mock.request_count(), 0);
}

// ---- audit ----

#[tokio::test]
async fn audit_log_shows_who_did_what_and_when() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (admin_key_id, admin_key) = app.create_admin_key(&org).await;
    let created = json_of(
        app.create_credential_as(&admin_key, &create_body(&org, BYOK_KEY))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    app.send(
        Method::PUT,
        &format!("{CREDENTIALS}/{id}"),
        &admin_key,
        Some(&json!({"api_key": OTHER_BYOK_KEY, "credential_name": "new"})),
    )
    .await;
    app.switch_credential(id, false).await;
    app.switch_credential(id, true).await;
    app.admin_delete(&format!("{CREDENTIALS}/{id}")).await;

    let entries = audit(&app, ADMIN_TOKEN, &format!("?organization_id={org}")).await;

    let actions: Vec<&str> = entries
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["delete", "activate", "deactivate", "update", "create"]
    );
    assert_eq!(
        entries[4]["actor"],
        json!({"type": "api_key", "id": admin_key_id})
    );
    assert_eq!(entries[3]["actor"]["type"], "api_key");
    assert_eq!(entries[3]["changes"], json!(["api_key", "credential_name"]));
    assert_eq!(entries[3]["key_hint"], "8e6a");
    assert_eq!(
        entries[0]["actor"],
        json!({"type": "platform_admin", "id": null})
    );
    for entry in &entries {
        assert_eq!(entry["credential_id"], id);
        assert_eq!(entry["organization_id"], org);
        assert!(entry["created_at"].as_i64().unwrap() > 1_700_000_000);
    }
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains(BYOK_KEY) && !text.contains(OTHER_BYOK_KEY));
    let only_this = audit(&app, ADMIN_TOKEN, &format!("?credential_id={id}&limit=2")).await;
    assert_eq!(only_this.len(), 2);
}

// ---- who may manage credentials ----

#[tokio::test]
async fn missing_or_unknown_credentials_are_401() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let anonymous = app.client.get(app.url(CREDENTIALS)).send().await.unwrap();
    let wrong_token = app
        .send(Method::GET, CREDENTIALS, "wrong-token", None)
        .await;
    let unknown_key = app
        .send(
            Method::POST,
            CREDENTIALS,
            "tg-0123456789abcdef0123456789abcdef_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            Some(&create_body(&org, BYOK_KEY)),
        )
        .await;

    expect_error(anonymous, 401).await;
    expect_error(wrong_token, 401).await;
    expect_error(unknown_key, 401).await;
}

#[tokio::test]
async fn ordinary_api_key_is_403_on_every_endpoint() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, key) = app.create_key(&org).await;
    let created = app.add_credential(&org, "mock", BYOK_KEY).await;
    let id = created["id"].as_str().unwrap();

    for (method, path, body) in every_endpoint(&org, id) {
        let response = app.send(method.clone(), &path, &key, body.as_ref()).await;
        expect_error(response, 403).await;
    }
}

#[tokio::test]
async fn organization_admin_key_manages_its_own_organization() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, admin_key) = app.create_admin_key(&org).await;

    let created = json_of(
        app.create_credential_as(&admin_key, &create_body(&org, BYOK_KEY))
            .await,
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap();

    // Without organization_id, lists default to its own organization.
    assert_eq!(list(&app, &admin_key, "").await.len(), 1);
    let active = app
        .send(
            Method::GET,
            &format!("{CREDENTIALS}/active?provider=mock"),
            &admin_key,
            None,
        )
        .await;
    assert_eq!(json_of(active, 200).await["id"], id);
    for (method, path, body) in every_endpoint(&org, id) {
        if method == Method::POST {
            continue;
        }
        let response = app
            .send(method.clone(), &path, &admin_key, body.as_ref())
            .await;
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            response.status()
        );
    }
}

#[tokio::test]
async fn platform_admin_without_an_organization_must_name_one_for_the_active_credential() {
    let app = TestApp::spawn().await;

    let response = app
        .admin_get(&format!("{CREDENTIALS}/active?provider=mock"))
        .await;

    expect_error(response, 400).await;
}

/// Every endpoint, as `(method, path, body)`, about `org` or credential `id`,
/// ending with the delete.
fn every_endpoint(org: &str, id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            CREDENTIALS.to_owned(),
            Some(
                json!({"organization_id": org, "provider": "mock", "api_key": "sk-new-key-0000", "active": false}),
            ),
        ),
        (
            Method::GET,
            format!("{CREDENTIALS}?organization_id={org}"),
            None,
        ),
        (
            Method::GET,
            format!("{CREDENTIALS}/active?organization_id={org}&provider=mock"),
            None,
        ),
        (
            Method::GET,
            format!("{CREDENTIALS}/audit?organization_id={org}"),
            None,
        ),
        (Method::GET, format!("{CREDENTIALS}/{id}"), None),
        (
            Method::PUT,
            format!("{CREDENTIALS}/{id}"),
            Some(json!({"credential_name": "taken", "api_key": "sk-stolen-key-1111"})),
        ),
        (Method::PUT, format!("{CREDENTIALS}/{id}/deactivate"), None),
        (Method::PUT, format!("{CREDENTIALS}/{id}/activate"), None),
        (Method::DELETE, format!("{CREDENTIALS}/{id}"), None),
    ]
}

// ---- cross-tenant ----

#[tokio::test]
async fn organization_a_can_neither_read_nor_change_organization_b_credentials() {
    let app = TestApp::spawn().await;
    let a = app.create_org("usd").await;
    let b = app.create_org("usd").await;
    let (_, a_admin) = app.create_admin_key(&a).await;
    let b_credential = app.add_credential(&b, "mock", OTHER_BYOK_KEY).await;
    let b_id = b_credential["id"].as_str().unwrap();
    let b_audit_before = audit(&app, ADMIN_TOKEN, &format!("?organization_id={b}")).await;

    for (method, path, body) in every_endpoint(&b, b_id) {
        let response = app
            .send(method.clone(), &path, &a_admin, body.as_ref())
            .await;
        // Another organization named in a body or a query: 403; another
        // organization's credential id: 404, as if it did not exist.
        let expected = if path.contains(b_id) { 404 } else { 403 };
        let error = expect_error(response, expected).await;
        assert!(
            !error.to_string().contains(OTHER_BYOK_KEY),
            "{method} {path}: {error}"
        );
    }
    // Its own lists never show B's credentials or audit entries.
    assert!(list(&app, &a_admin, "").await.is_empty());
    assert!(audit(&app, &a_admin, "").await.is_empty());
    assert!(
        audit(&app, &a_admin, &format!("?credential_id={b_id}"))
            .await
            .is_empty()
    );

    // B's credential is untouched, and still the one B's calls use.
    let after = json_of(app.admin_get(&format!("{CREDENTIALS}/{b_id}")).await, 200).await;
    assert_eq!(after, b_credential);
    let b_audit_after = audit(&app, ADMIN_TOKEN, &format!("?organization_id={b}")).await;
    assert_eq!(b_audit_after, b_audit_before);
    let (_, b_key) = app.create_key(&b).await;
    app.grant(&b, 1_000_000).await;
    assert_eq!(
        app.chat(&b_key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.last_authorization().as_deref(),
        Some(bearer(OTHER_BYOK_KEY).as_str())
    );
}

#[tokio::test]
async fn organization_a_cannot_use_organization_b_credentials() {
    let app = TestApp::spawn().await;
    let (a, a_key) = app.funded_org("usd", 10_000_000).await;
    let (b, b_key) = app.funded_org("usd", 10_000_000).await;
    app.add_credential(&b, "mock", OTHER_BYOK_KEY).await;

    // A has no credential: the platform pays, never B's key.
    let a_call = app.chat(&a_key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(a_call.status(), 200);
    assert_eq!(a_call.headers()["x-tollgate-byok"], "false");
    assert_eq!(
        app.last_authorization().as_deref(),
        Some("Bearer sk-platform-key")
    );
    // Then A brings its own: each organization's calls use its own key.
    app.add_credential(&a, "mock", BYOK_KEY).await;
    for (key, expected) in [
        (&a_key, BYOK_KEY),
        (&b_key, OTHER_BYOK_KEY),
        (&a_key, BYOK_KEY),
    ] {
        let response = app.chat(key, &chat_body("gpt-4o-mini")).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-tollgate-byok"], "true");
        assert_eq!(
            app.last_authorization().as_deref(),
            Some(bearer(expected).as_str())
        );
    }
    let a_usage = app.usage(&a).await;
    assert_eq!(a_usage.len(), 3);
    assert_eq!(a_usage[0]["completion_tokens"], CHAT_COMPLETION_TOKENS);
}

#[tokio::test]
async fn admin_flag_is_shown_with_the_api_key_and_defaults_to_false() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (admin_id, _) = app.create_admin_key(&org).await;
    let (plain_id, _) = app.create_key(&org).await;

    let listed = json_of(
        app.admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
            .await,
        200,
    )
    .await;

    for key in listed["data"].as_array().unwrap() {
        let expected = key["id"] == admin_id.as_str();
        assert_eq!(key["admin"], expected, "{key}");
        assert!(key["id"] == admin_id.as_str() || key["id"] == plain_id.as_str());
    }
}
