//! Management-plane input that is odd but possible: it must get a 4xx in the
//! error shape, never a 500 (contract section 6), and change nothing.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, expect_error, message_of};

/// A 2xx, or a 4xx in the error shape naming `field`: anything but a 500.
async fn accepted_or_rejected_naming(response: reqwest::Response, field: &str) {
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return;
    }
    assert!((400..500).contains(&status), "status {status}");
    let error = expect_error(response, status).await;
    assert!(message_of(&error).contains(field), "{error}");
}

#[tokio::test]
async fn grant_that_would_overflow_the_balance_is_400_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant(&org, 10).await;

    let response = app.grant_with(&org, &json!({"amount": i64::MAX})).await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("amount"), "{error}");
    assert_eq!(app.balance(&org).await, 10);
    assert_eq!(app.transactions(&org).await.len(), 1);
}

#[tokio::test]
async fn name_of_a_hundred_non_ascii_characters_is_accepted() {
    let app = TestApp::spawn().await;
    let name = "組織".repeat(50);

    let response = app
        .admin_post(
            "/api/v1/organizations",
            &json!({"name": name, "billing_mode": "usd"}),
        )
        .await;

    assert_eq!(response.status(), 201, "the limit is 200 characters");
    let org: Value = response.json().await.unwrap();
    assert_eq!(org["name"], name);
}

#[tokio::test]
async fn path_that_is_not_utf8_is_400_in_the_error_shape() {
    let app = TestApp::spawn().await;

    let response = app.admin_get("/api/v1/organizations/%FF%FE").await;

    expect_error(response, 400).await;
}

#[tokio::test]
async fn nul_byte_in_an_id_is_404_not_500() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for (method, path) in [
        ("GET", "/api/v1/organizations/org%00x".to_owned()),
        ("GET", "/api/v1/organizations/org%00x/credits".to_owned()),
        (
            "DELETE",
            format!("/api/v1/organizations/{org}/api-keys/key%00x"),
        ),
    ] {
        let response = if method == "GET" {
            app.admin_get(&path).await
        } else {
            app.admin_delete(&path).await
        };

        assert_eq!(response.status(), 404, "{method} {path}");
        expect_error(response, 404).await;
    }
}

#[tokio::test]
async fn nul_byte_in_a_usage_cursor_is_not_a_500() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/usage?before=x%00y"))
        .await;

    accepted_or_rejected_naming(response, "before").await;
}

#[tokio::test]
async fn nul_byte_in_names_is_not_a_500() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let org_name = app
        .admin_post(
            "/api/v1/organizations",
            &json!({"name": "Ac\u{0}me", "billing_mode": "usd"}),
        )
        .await;
    let key_name = app
        .create_key_with(&org, &json!({"name": "k\u{0}ey"}))
        .await;

    accepted_or_rejected_naming(org_name, "name").await;
    accepted_or_rejected_naming(key_name, "name").await;
}

#[tokio::test]
async fn nul_byte_in_grant_fields_is_not_a_500() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let idempotency_key = app
        .grant_with(&org, &json!({"amount": 5, "idempotency_key": "a\u{0}b"}))
        .await;
    let reason = app
        .grant_with(&org, &json!({"amount": 5, "reason": "a\u{0}b"}))
        .await;

    accepted_or_rejected_naming(idempotency_key, "idempotency_key").await;
    accepted_or_rejected_naming(reason, "reason").await;
    let ledger_sum: i64 = app
        .transactions(&org)
        .await
        .iter()
        .map(|e| e["amount"].as_i64().unwrap())
        .sum();
    assert_eq!(ledger_sum, app.balance(&org).await);
}

#[tokio::test]
async fn a_json_array_body_is_400_not_read_as_the_fields_in_order() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let path = format!("/api/v1/organizations/{org}");

    for (method, path, body) in [
        ("PATCH", path.as_str(), r#"["Renamed", null]"#),
        ("POST", "/api/v1/organizations", r#"["Acme", "usd"]"#),
    ] {
        let response = app
            .client
            .request(method.parse().unwrap(), app.url(path))
            .bearer_auth(tollgate_tests::ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("JSON object"), "{error}");
    }
    let read: Value = app.admin_get(&path).await.json().await.unwrap();
    assert_eq!(read["name"], "Acme", "nothing was renamed");
}
