//! `POST /api/v1/organizations` and `GET /api/v1/organizations/{id}`: the
//! answers, validation, admin authentication and the request id header.

use serde_json::{Value, json};
use std::collections::HashSet;
use tollgate_tests::{TestApp, expect_error, message_of};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

#[tokio::test]
async fn create_answers_201_with_the_organization_for_every_billing_mode() {
    let app = TestApp::spawn().await;

    for mode in ["usd", "tokens", "requests"] {
        let response = app
            .admin_post(
                "/api/v1/organizations",
                &json!({"name": format!("Acme {mode}"), "billing_mode": mode}),
            )
            .await;

        assert_eq!(response.status(), 201, "{mode}");
        let org: Value = response.json().await.unwrap();
        assert!(!org["id"].as_str().unwrap().is_empty(), "{org}");
        assert_eq!(org["name"], format!("Acme {mode}"));
        assert_eq!(org["billing_mode"], mode);
        let created_at = org["created_at"].as_i64().unwrap();
        assert!(
            (created_at - now_secs()).abs() < 60,
            "created_at is unix seconds of now: {org}"
        );
    }
}

#[tokio::test]
async fn each_organization_gets_its_own_id() {
    let app = TestApp::spawn().await;

    let first = app.create_org("usd").await;
    let second = app.create_org("usd").await;

    assert_ne!(first, second);
}

#[tokio::test]
async fn get_returns_the_created_organization() {
    let app = TestApp::spawn().await;
    let created: Value = app
        .admin_post(
            "/api/v1/organizations",
            &json!({"name": "Globex", "billing_mode": "tokens"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let response = app.admin_get(&format!("/api/v1/organizations/{id}")).await;

    assert_eq!(response.status(), 200);
    let fetched: Value = response.json().await.unwrap();
    assert_eq!(fetched, created);
}

#[tokio::test]
async fn unknown_organization_is_404_in_the_error_shape() {
    let app = TestApp::spawn().await;

    let response = app
        .admin_get("/api/v1/organizations/org_does_not_exist")
        .await;

    let error = expect_error(response, 404).await;
    assert!(message_of(&error).contains("organization"), "{error}");
}

#[tokio::test]
async fn unknown_billing_mode_is_400_naming_billing_mode() {
    let app = TestApp::spawn().await;

    for body in [
        json!({"name": "Acme", "billing_mode": "euros"}),
        json!({"name": "Acme", "billing_mode": "USD "}),
        json!({"name": "Acme"}),
    ] {
        let response = app.admin_post("/api/v1/organizations", &body).await;

        let error = expect_error(response, 400).await;
        assert!(
            message_of(&error).contains("billing_mode"),
            "{body}: {error}"
        );
        assert_eq!(error["type"], "invalid_request_error");
    }
}

#[tokio::test]
async fn billing_mode_of_the_wrong_type_is_400_naming_billing_mode() {
    let app = TestApp::spawn().await;

    let response = app
        .admin_post(
            "/api/v1/organizations",
            &json!({"name": "Acme", "billing_mode": 3}),
        )
        .await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("billing_mode"), "{error}");
}

#[tokio::test]
async fn missing_or_blank_name_is_400_naming_name() {
    let app = TestApp::spawn().await;

    for body in [
        json!({"billing_mode": "usd"}),
        json!({"name": "", "billing_mode": "usd"}),
        json!({"name": "   ", "billing_mode": "usd"}),
        json!({"name": 42, "billing_mode": "usd"}),
    ] {
        let response = app.admin_post("/api/v1/organizations", &body).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("name"), "{body}: {error}");
    }
}

#[tokio::test]
async fn management_api_without_a_valid_admin_token_is_401() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, org_key) = app.create_key(&org).await;
    let body = json!({"name": "Intruder", "billing_mode": "usd"});

    let no_token = app
        .client
        .post(app.url("/api/v1/organizations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let wrong_token = app
        .client
        .post(app.url("/api/v1/organizations"))
        .bearer_auth("not-the-admin-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    let org_api_key = app
        .client
        .post(app.url("/api/v1/organizations"))
        .bearer_auth(&org_key)
        .json(&body)
        .send()
        .await
        .unwrap();
    let org_api_key_reading = app
        .get_with_key(&org_key, &format!("/api/v1/organizations/{org}"))
        .await;

    for response in [no_token, wrong_token, org_api_key, org_api_key_reading] {
        let error = expect_error(response, 401).await;
        assert_eq!(error["type"], "authentication_error");
    }
}

#[tokio::test]
async fn every_response_carries_a_distinct_request_id() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let responses = [
        app.admin_post(
            "/api/v1/organizations",
            &json!({"name": "Acme", "billing_mode": "usd"}),
        )
        .await,
        app.admin_get(&format!("/api/v1/organizations/{org}")).await,
        app.admin_get("/api/v1/organizations/org_missing").await,
        app.admin_post(
            "/api/v1/organizations",
            &json!({"name": "Acme", "billing_mode": "euros"}),
        )
        .await,
        app.client
            .get(app.url(&format!("/api/v1/organizations/{org}")))
            .send()
            .await
            .unwrap(),
    ];

    let statuses: Vec<u16> = responses.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses, [201, 200, 404, 400, 401]);
    let ids: HashSet<String> = responses
        .iter()
        .map(|r| {
            let id = r
                .headers()
                .get("x-tollgate-request-id")
                .unwrap_or_else(|| panic!("no request id on a {}", r.status()));
            id.to_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        ids.len(),
        responses.len(),
        "request ids are unique: {ids:?}"
    );
    assert!(ids.iter().all(|id| !id.is_empty()));
}
