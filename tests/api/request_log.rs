//! The request log (`GET /api/v1/organizations/{org_id}/requests[/{id}]`):
//! a call's attempts after a fallback, tenant isolation, pagination and
//! filters, and bodies kept only with the organization's opt-in, until the
//! retention period ends.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_tests::{ADMIN_TOKEN, Fault, TestApp, chat_body};

fn request_id(response: &reqwest::Response) -> String {
    response.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// The log entry of a call, waiting for the background writer (a few
/// hundred milliseconds at most).
async fn logged(app: &TestApp, org: &str, request_id: &str) -> Value {
    let path = format!("/api/v1/organizations/{org}/requests/{request_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let response = app.admin_get(&path).await;
        if response.status() == 200 {
            return response.json().await.unwrap();
        }
        assert_eq!(response.status(), 404, "{}", response.text().await.unwrap());
        assert!(
            Instant::now() < deadline,
            "{request_id} never reached the log"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn list(app: &TestApp, org: &str, query: &str) -> Value {
    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/requests{query}"))
        .await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn the_log_shows_every_attempt_of_a_call_that_fell_back() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::status(429));

    let response = app
        .chat(
            &key,
            &json!({"model": "auto", "power_level": "balanced",
                "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let cost: i64 = response.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let entry = logged(&app, &org, &id).await;
    assert_eq!(entry["request_id"], id.as_str());
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["requested_model"], "auto");
    assert_eq!(entry["model"], "big-model");
    assert_eq!(entry["provider"], "mock");
    assert_eq!(entry["cost"], cost);
    assert!(entry["prompt_tokens"].as_i64().unwrap() > 0);
    assert!(entry["completion_tokens"].as_i64().unwrap() > 0);
    assert!(entry["duration_ms"].as_i64().unwrap() >= 0);
    assert_eq!(entry["attempt_count"], 2);
    let attempts = entry["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{entry}");
    assert_eq!(attempts[0]["attempt"], 1);
    assert_eq!(attempts[0]["model"], "gpt-4o-mini");
    assert_eq!(attempts[0]["status"], "error");
    assert_eq!(attempts[0]["http_status"], 429);
    assert!(attempts[0]["error"].as_str().unwrap().contains("429"));
    assert_eq!(attempts[1]["attempt"], 2);
    assert_eq!(attempts[1]["model"], "big-model");
    assert_eq!(attempts[1]["status"], "ok");
    assert_eq!(attempts[1]["error"], Value::Null);
    // No bodies without the organization's opt-in.
    assert_eq!(entry["request_body"], Value::Null);
    assert_eq!(entry["response_body"], Value::Null);
}

#[tokio::test]
async fn a_failed_call_is_logged_with_its_error_and_found_by_status() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let ok = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(ok.status(), 200);
    app.mock.push_fault(Fault::status(500));
    let failed = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(failed.status(), 502);
    let failed_id = request_id(&failed);

    let entry = logged(&app, &org, &failed_id).await;
    assert_eq!(entry["status"], 502);
    assert_eq!(entry["error_code"], "provider_error");
    assert!(entry["error_message"].as_str().unwrap().contains("500"));
    assert_eq!(entry["model"], Value::Null);
    assert_eq!(entry["cost"], 0);

    logged(&app, &org, &request_id(&ok)).await;
    let errors = list(&app, &org, "?status=error").await;
    let ids: Vec<&str> = errors["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [failed_id.as_str()]);
    assert_eq!(
        list(&app, &org, "?status=200").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        list(&app, &org, "?model=big-model").await["data"],
        json!([])
    );
    let bad = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/requests?status=great"
        ))
        .await;
    assert_eq!(bad.status(), 400);
}

#[tokio::test]
async fn the_log_is_newest_first_in_pages() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let mut ids = vec![];
    for _ in 0..3 {
        let response = app.chat(&key, &chat_body("gpt-4o-mini")).await;
        ids.push(request_id(&response));
    }
    for id in &ids {
        logged(&app, &org, id).await;
    }

    let first = list(&app, &org, "?limit=2").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(&app, &org, &format!("?limit=2&cursor={cursor}")).await;

    let page_ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(page_ids(&first), [ids[2].clone(), ids[1].clone()]);
    assert_eq!(page_ids(&second), [ids[0].clone()]);
    assert_eq!(second["next_cursor"], Value::Null);
    assert_eq!(first["unit"], "usd_micros");
}

#[tokio::test]
async fn an_organization_never_sees_another_organizations_requests() {
    let app = TestApp::spawn().await;
    let (a, key_a) = app.funded_org("usd", 10_000_000).await;
    let (b, _) = app.funded_org("usd", 10_000_000).await;
    let id = request_id(&app.chat(&key_a, &chat_body("gpt-4o-mini")).await);
    logged(&app, &a, &id).await;
    app.create_user("admin-b@example.com", "org_admin", Some(&b))
        .await;
    let admin_b = app.token_of("admin-b@example.com").await;
    let get = |path: String, token: String| {
        let request = app.client.get(app.url(&path)).bearer_auth(token);
        async move { request.send().await.unwrap() }
    };

    let their_list = get(
        format!("/api/v1/organizations/{a}/requests"),
        admin_b.clone(),
    )
    .await;
    let their_call = get(
        format!("/api/v1/organizations/{a}/requests/{id}"),
        admin_b.clone(),
    )
    .await;
    let through_own_org = get(
        format!("/api/v1/organizations/{b}/requests/{id}"),
        ADMIN_TOKEN.to_owned(),
    )
    .await;
    let own_list = get(format!("/api/v1/organizations/{b}/requests"), admin_b).await;

    assert_eq!(their_list.status(), 403);
    assert_eq!(their_call.status(), 403);
    assert_eq!(through_own_org.status(), 404);
    assert_eq!(own_list.status(), 200);
    assert_eq!(own_list.json::<Value>().await.unwrap()["data"], json!([]));
}

#[tokio::test]
async fn bodies_are_kept_only_with_the_opt_in_and_deleted_after_the_retention_period() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.observability.request_log_body_retention_secs = 2;
    })
    .await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.set_reply("the secret of the answer");
    let before = request_id(&app.chat(&key, &chat_body("gpt-4o-mini")).await);
    let patched = app
        .admin_patch(
            &format!("/api/v1/organizations/{org}"),
            &json!({"log_bodies": true}),
        )
        .await;
    assert_eq!(patched.status(), 200);
    assert_eq!(patched.json::<Value>().await.unwrap()["log_bodies"], true);
    // The organization's settings reach the cached keys within a second.
    tokio::time::sleep(Duration::from_millis(1200)).await;

    let after = request_id(&app.chat(&key, &chat_body("gpt-4o-mini")).await);

    let without = logged(&app, &org, &before).await;
    assert_eq!(without["request_body"], Value::Null);
    let with = logged(&app, &org, &after).await;
    let request_body: Value = serde_json::from_str(with["request_body"].as_str().unwrap()).unwrap();
    assert_eq!(request_body["model"], "gpt-4o-mini");
    assert!(
        with["response_body"]
            .as_str()
            .unwrap()
            .contains("the secret of the answer"),
        "{with}"
    );
    // A member of the organization sees the call, not its bodies.
    app.create_user("member@example.com", "org_member", Some(&org))
        .await;
    let member = app.token_of("member@example.com").await;
    let seen: Value = app
        .client
        .get(app.url(&format!("/api/v1/organizations/{org}/requests/{after}")))
        .bearer_auth(member)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["request_id"], after.as_str());
    assert_eq!(seen["request_body"], Value::Null);
    assert_eq!(seen["response_body"], Value::Null);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let entry = logged(&app, &org, &after).await;
        if entry["request_body"].is_null() {
            assert_eq!(entry["response_body"], Value::Null);
            // The call itself stays, with its attempts.
            assert_eq!(entry["attempts"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bodies outlived their retention"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_streamed_call_is_logged_at_its_end_with_its_time_to_first_token() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let mut body = chat_body("gpt-4o-mini");
    body["stream"] = json!(true);

    let response = app.chat(&key, &body).await;
    assert_eq!(response.status(), 200);
    let id = request_id(&response);
    let text = response.text().await.unwrap();
    assert!(text.contains("[DONE]"));

    let entry = logged(&app, &org, &id).await;
    assert_eq!(entry["stream"], true);
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["model"], "gpt-4o-mini");
    assert!(entry["time_to_first_token_ms"].is_i64(), "{entry}");
    assert!(entry["completion_tokens"].as_i64().unwrap() > 0);
    assert_eq!(entry["attempts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn the_log_filters_by_time_model_and_key() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    app.grant(&org, 10_000_000).await;
    let (first_key_id, first_key) = app.create_key(&org).await;
    let (second_key_id, second_key) = app.create_key(&org).await;
    let now_ms = || {
        i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis(),
        )
        .unwrap()
    };

    let early = request_id(&app.chat(&first_key, &chat_body("gpt-4o-mini")).await);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mark = now_ms();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let big = request_id(&app.chat(&second_key, &chat_body("big-model")).await);
    let late = request_id(&app.chat(&second_key, &chat_body("gpt-4o-mini")).await);
    for id in [&early, &big, &late] {
        logged(&app, &org, id).await;
    }

    let ids = |page: Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["request_id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(list(&app, &org, &format!("?api_key_id={first_key_id}")).await),
        [early.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, &format!("?api_key_id={second_key_id}")).await),
        [late.as_str(), big.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, "?model=big-model").await),
        [big.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, "?model=gpt-4o-mini").await),
        [late.as_str(), early.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, &format!("?from={mark}")).await),
        [late.as_str(), big.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, &format!("?to={mark}")).await),
        [early.as_str()]
    );
    assert_eq!(
        ids(list(
            &app,
            &org,
            &format!("?from={mark}&model=gpt-4o-mini&api_key_id={second_key_id}&status=ok")
        )
        .await),
        [late.as_str()]
    );
    assert_eq!(
        ids(list(&app, &org, &format!("?from={mark}&to={mark}")).await),
        Vec::<&str>::new()
    );
}

#[tokio::test]
async fn calls_are_deleted_after_their_retention_period() {
    let app = TestApp::spawn_with(tollgate_tests::DEFAULT_CONFIG, |s| {
        s.observability.request_log_retention_secs = 2;
    })
    .await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let id = request_id(&app.chat(&key, &chat_body("gpt-4o-mini")).await);
    logged(&app, &org, &id).await;

    let path = format!("/api/v1/organizations/{org}/requests/{id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.admin_get(&path).await.status() == 200 {
        assert!(Instant::now() < deadline, "the call outlived its retention");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(app.admin_get(&path).await.status(), 404);
    assert_eq!(list(&app, &org, "").await["data"], json!([]));
}
