//! Organization administration: the cursor-paginated list, updates, and
//! suspension (calls answer 403 until the organization is resumed).

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body, expect_error};

async fn patch(app: &TestApp, org: &str, body: &Value) -> reqwest::Response {
    app.admin_patch(&format!("/api/v1/organizations/{org}"), body)
        .await
}

async fn list(app: &TestApp, query: &str) -> Value {
    let response = app
        .admin_get(&format!("/api/v1/organizations{query}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn ids(page: &Value) -> Vec<&str> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn organizations_are_listed_newest_first_a_page_at_a_time() {
    let app = TestApp::spawn().await;
    let first = app.create_org("usd").await;
    let second = app.create_org("tokens").await;
    let third = app.create_org("requests").await;

    let page = list(&app, "?limit=2").await;
    assert_eq!(ids(&page), [third.as_str(), second.as_str()]);
    assert_eq!(page["has_more"], true);
    let page = list(&app, &format!("?limit=2&before={second}")).await;
    assert_eq!(ids(&page), [first.as_str()]);
    assert_eq!(page["has_more"], false);
    assert_eq!(ids(&list(&app, "").await).len(), 3);

    for query in ["?limit=0", "?limit=1001", "?limit=x", "?color=red"] {
        let response = app
            .admin_get(&format!("/api/v1/organizations{query}"))
            .await;
        expect_error(response, 400).await;
    }
}

#[tokio::test]
async fn an_organization_is_renamed_and_given_a_default_power_level() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = patch(
        &app,
        &org,
        &json!({"name": " Acme Corp ", "default_power_level": "eco"}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["name"], "Acme Corp");
    assert_eq!(body["default_power_level"], "eco");
    assert_eq!(body["suspended"], false);

    // Only what is given changes; null clears.
    let body: Value = patch(&app, &org, &json!({"default_power_level": null}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["name"], "Acme Corp");
    assert_eq!(body["default_power_level"], Value::Null);
    let read: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(read, body);

    expect_error(
        patch(&app, &org, &json!({"default_power_level": "max"})).await,
        400,
    )
    .await;
    expect_error(patch(&app, &org, &json!({"name": ""})).await, 400).await;
    expect_error(
        patch(&app, &org, &json!({"billing_mode": "tokens"})).await,
        400,
    )
    .await;
    expect_error(patch(&app, "org_missing", &json!({"name": "x"})).await, 404).await;
}

#[tokio::test]
async fn a_suspended_organizations_calls_answer_403_until_resumed() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let (other, other_key) = app.funded_org("usd", 1_000_000).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );

    let response = app
        .admin_post(&format!("/api/v1/organizations/{org}/suspend"), &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["suspended"], true);

    let error = expect_error(app.chat(&key, &chat_body("gpt-4o-mini")).await, 403).await;
    assert_eq!(error["code"], "organization_suspended");
    expect_error(app.models(&key).await, 403).await;
    // Other organizations are untouched.
    assert_eq!(
        app.chat(&other_key, &chat_body("gpt-4o-mini"))
            .await
            .status(),
        200
    );
    assert_eq!(ids(&list(&app, "?suspended=true").await), [org.as_str()]);
    assert_eq!(ids(&list(&app, "?suspended=false").await), [other.as_str()]);

    let response = app
        .admin_post(&format!("/api/v1/organizations/{org}/resume"), &json!({}))
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    expect_error(
        app.admin_post("/api/v1/organizations/org_missing/suspend", &json!({}))
            .await,
        404,
    )
    .await;
}

#[tokio::test]
async fn a_user_lists_only_its_own_organization_and_cannot_suspend_it() {
    let app = TestApp::spawn_with_sign_in().await;
    let org = app.create_org("usd").await;
    app.create_org("usd").await;
    app.create_user("ada@example.com", "org_admin", Some(&org))
        .await;
    let token = &app.token_of("ada@example.com").await;

    let page: Value = app
        .client
        .get(app.url("/api/v1/organizations"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&page), [org.as_str()]);
    let response = app
        .client
        .post(app.url(&format!("/api/v1/organizations/{org}/suspend")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    expect_error(response, 403).await;
    let response = app
        .client
        .patch(app.url(&format!("/api/v1/organizations/{org}")))
        .bearer_auth(token)
        .json(&json!({"name": "Renamed by its admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}
