//! `GET /api/v1/organizations/{org_id}/usage`: one record per call, newest
//! first, with the fields of contract section 4, charged in the
//! organization's unit.

use serde_json::Value;
use tollgate_tests::{
    CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, TestApp, chat_body, expect_error,
};

/// Makes a successful chat call and returns its request id and charged cost.
async fn call(app: &TestApp, key: &str) -> (String, i64) {
    let response = app.chat(key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(response.status(), 200);
    let headers = response.headers();
    let request_id = headers["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let cost = headers["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (request_id, cost)
}

#[tokio::test]
async fn each_call_has_a_usage_record_newest_first() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let mut request_ids = Vec::new();
    for _ in 0..3 {
        request_ids.push(call(&app, &key).await.0);
    }

    let usage = app.usage(&org).await;

    let listed: Vec<&str> = usage
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    request_ids.reverse();
    assert_eq!(listed, request_ids);
}

#[tokio::test]
async fn usage_record_has_the_contract_fields() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant(&org, 1_000_000).await;
    let (key_id, key) = app.create_key(&org).await;
    let (request_id, cost) = call(&app, &key).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/usage"))
        .await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let record = &body["data"][0];
    assert_eq!(record["request_id"], request_id.as_str());
    assert_eq!(record["model"], "gpt-4o-mini");
    assert_eq!(record["provider"], "mock");
    assert_eq!(record["prompt_tokens"], CHAT_PROMPT_TOKENS);
    assert_eq!(record["completion_tokens"], CHAT_COMPLETION_TOKENS);
    assert_eq!(record["cost"], cost);
    assert_eq!(record["byok"], false);
    assert_eq!(record["api_key_id"], key_id.as_str());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let created_at = record["created_at"].as_u64().unwrap();
    assert!(now.abs_diff(created_at) < 60, "{record}");
}

#[tokio::test]
async fn each_record_names_the_key_that_made_the_call() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 10).await;
    let (first_id, first_key) = app.create_key(&org).await;
    let (second_id, second_key) = app.create_key(&org).await;
    let (first_call, _) = call(&app, &first_key).await;
    let (second_call, _) = call(&app, &second_key).await;

    let usage = app.usage(&org).await;

    let key_of = |request_id: &str| {
        usage
            .iter()
            .find(|r| r["request_id"] == request_id)
            .unwrap()["api_key_id"]
            .clone()
    };
    assert_eq!(key_of(&first_call), first_id.as_str());
    assert_eq!(key_of(&second_call), second_id.as_str());
}

#[tokio::test]
async fn usage_shows_only_the_organizations_own_calls() {
    let app = TestApp::spawn().await;
    let (org_a, key_a) = app.funded_org("requests", 10).await;
    let (org_b, _) = app.funded_org("requests", 10).await;
    call(&app, &key_a).await;

    assert_eq!(app.usage(&org_a).await.len(), 1);
    assert!(app.usage(&org_b).await.is_empty());
}

#[tokio::test]
async fn tokens_mode_charges_prompt_plus_completion_tokens() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("tokens", 10_000).await;

    let (_, cost) = call(&app, &key).await;
    call(&app, &key).await;

    let per_call = CHAT_PROMPT_TOKENS + CHAT_COMPLETION_TOKENS;
    assert_eq!(cost, per_call);
    assert_eq!(app.balance(&org).await, 10_000 - 2 * per_call);
    let usage = app.usage(&org).await;
    assert!(usage.iter().all(|r| r["cost"] == per_call), "{usage:?}");
}

#[tokio::test]
async fn requests_mode_charges_one_per_call() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("requests", 10).await;

    for _ in 0..3 {
        let (_, cost) = call(&app, &key).await;
        assert_eq!(cost, 1);
    }

    assert_eq!(app.balance(&org).await, 7);
    let usage = app.usage(&org).await;
    assert_eq!(usage.len(), 3);
    assert!(usage.iter().all(|r| r["cost"] == 1), "{usage:?}");
}

#[tokio::test]
async fn refused_calls_leave_no_usage_record() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("requests", 1).await;
    call(&app, &key).await;

    let refused = app.chat(&key, &chat_body("gpt-4o-mini")).await;

    expect_error(refused, 402).await;
    assert_eq!(app.usage(&org).await.len(), 1);
}

#[tokio::test]
async fn limit_pages_usage_with_has_more() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("requests", 10).await;
    call(&app, &key).await;
    let (newest, _) = call(&app, &key).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/usage?limit=1"))
        .await;

    assert_eq!(response.status(), 200);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["request_id"], newest.as_str());
    assert_eq!(page["has_more"], true);
}

#[tokio::test]
async fn usage_of_an_unknown_organization_is_404() {
    let app = TestApp::spawn().await;

    let response = app
        .admin_get("/api/v1/organizations/org_missing/usage")
        .await;

    expect_error(response, 404).await;
}
