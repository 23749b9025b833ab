//! Organization API keys: creation (the key is shown once), listing without
//! secrets, revocation and expiry as the data plane sees them, and the
//! limits stored with a key.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_tests::replica::Replica;
use tollgate_tests::{ADMIN_TOKEN, TestApp, expect_error, message_of};

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

/// The secret part of a key, `tg-<id>_<secret>`: what must never be shown again.
fn secret_of(key: &str) -> &str {
    key.rsplit_once('_').map(|(_, s)| s).unwrap_or(key)
}

/// Polls `GET /v1/models` with `key` until it answers `status`, for at most
/// `within`; returns how long that took, or `None` if it never did.
async fn time_until_status(
    app: &TestApp,
    key: &str,
    status: u16,
    within: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    loop {
        if app.models(key).await.status() == status {
            return Some(started.elapsed());
        }
        if started.elapsed() >= within {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn created_key_starts_with_tg_and_comes_with_its_metadata() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app.create_key_with(&org, &json!({"name": "backend"})).await;

    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let key = created["key"].as_str().unwrap();
    assert!(key.starts_with("tg-"), "{key}");
    assert!(
        key.len() >= 32,
        "a key long enough to be unguessable: {key}"
    );
    assert!(!created["id"].as_str().unwrap().is_empty());
    assert_eq!(created["name"], "backend");
    assert!((created["created_at"].as_i64().unwrap() - now_secs()).abs() < 60);
}

#[tokio::test]
async fn two_keys_are_different() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let (first_id, first) = app.create_key(&org).await;
    let (second_id, second) = app.create_key(&org).await;

    assert_ne!(first_id, second_id);
    assert_ne!(secret_of(&first), secret_of(&second));
}

#[tokio::test]
async fn list_shows_keys_without_their_secrets() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (first_id, first) = app.create_key(&org).await;
    let (second_id, second) = app.create_key(&org).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await;

    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    for key in [&first, &second] {
        assert!(
            !text.contains(secret_of(key)),
            "the list leaks a secret: {text}"
        );
    }
    let body: Value = serde_json::from_str(&text).unwrap();
    let listed = body["data"].as_array().unwrap();
    assert_eq!(listed.len(), 2);
    let mut ids: Vec<&str> = listed.iter().map(|k| k["id"].as_str().unwrap()).collect();
    ids.sort_unstable();
    let mut expected = vec![first_id.as_str(), second_id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected);
    for item in listed {
        assert!(item.get("key").is_none(), "no `key` field: {item}");
        assert_eq!(item["name"], "test key");
    }
}

#[tokio::test]
async fn list_of_an_unknown_organization_is_404() {
    let app = TestApp::spawn().await;

    let response = app
        .admin_get("/api/v1/organizations/org_missing/api-keys")
        .await;

    expect_error(response, 404).await;
}

#[tokio::test]
async fn list_shows_only_the_organizations_own_keys() {
    let app = TestApp::spawn().await;
    let org_a = app.create_org("usd").await;
    let org_b = app.create_org("usd").await;
    let (key_a, _) = app.create_key(&org_a).await;
    app.create_key(&org_b).await;

    let body: Value = app
        .admin_get(&format!("/api/v1/organizations/{org_a}/api-keys"))
        .await
        .json()
        .await
        .unwrap();

    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [key_a.as_str()]);
}

#[tokio::test]
async fn created_key_authenticates_on_the_data_plane() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, key) = app.create_key(&org).await;

    let response = app.models(&key).await;

    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "list");
}

#[tokio::test]
async fn key_for_an_unknown_organization_is_404() {
    let app = TestApp::spawn().await;

    let response = app
        .create_key_with("org_missing", &json!({"name": "k"}))
        .await;

    expect_error(response, 404).await;
}

#[tokio::test]
async fn key_without_a_name_is_400_naming_name() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    for body in [json!({}), json!({"name": ""})] {
        let response = app.create_key_with(&org, &body).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains("name"), "{body}: {error}");
    }
}

#[tokio::test]
async fn revoked_key_is_refused_within_one_second() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (key_id, key) = app.create_key(&org).await;
    // Used once, so that it is in the gateway's key cache.
    assert_eq!(app.models(&key).await.status(), 200);

    let revoked = app
        .admin_delete(&format!("/api/v1/organizations/{org}/api-keys/{key_id}"))
        .await;

    assert_eq!(revoked.status(), 200);
    let took = time_until_status(&app, &key, 401, Duration::from_secs(1)).await;
    assert!(took.is_some(), "the revoked key still works after 1 s");
    let error = expect_error(app.models(&key).await, 401).await;
    assert_eq!(error["type"], "authentication_error");
    assert!(message_of(&error).contains("revoked"), "{error}");
}

#[tokio::test]
async fn revoking_leaves_the_organizations_other_keys_working() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (revoked_id, _) = app.create_key(&org).await;
    let (_, kept) = app.create_key(&org).await;

    app.admin_delete(&format!(
        "/api/v1/organizations/{org}/api-keys/{revoked_id}"
    ))
    .await;

    assert_eq!(app.models(&kept).await.status(), 200);
}

#[tokio::test]
async fn revoking_an_unknown_key_is_404() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app
        .admin_delete(&format!(
            "/api/v1/organizations/{org}/api-keys/key_0123456789abcdef0123456789abcdef"
        ))
        .await;

    expect_error(response, 404).await;
}

#[tokio::test]
async fn revoking_a_key_through_another_organization_is_404_and_the_key_still_works() {
    let app = TestApp::spawn().await;
    let org_a = app.create_org("usd").await;
    let org_b = app.create_org("usd").await;
    let (key_id, key) = app.create_key(&org_a).await;
    assert_eq!(app.models(&key).await.status(), 200);

    let response = app
        .admin_delete(&format!("/api/v1/organizations/{org_b}/api-keys/{key_id}"))
        .await;

    expect_error(response, 404).await;
    // Past the revocation window: still accepted.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(app.models(&key).await.status(), 200);
}

#[tokio::test]
async fn expiry_in_the_past_is_400_naming_expires_at() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let response = app
        .create_key_with(&org, &json!({"name": "old", "expires_at": now_secs() - 60}))
        .await;

    let error = expect_error(response, 400).await;
    assert!(message_of(&error).contains("expires_at"), "{error}");
}

#[tokio::test]
async fn key_stops_working_once_it_expires() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let expires_at = now_secs() + 2;
    let created: Value = app
        .create_key_with(&org, &json!({"name": "short", "expires_at": expires_at}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(created["expires_at"], expires_at);
    let key = created["key"].as_str().unwrap();
    assert_eq!(app.models(key).await.status(), 200, "valid before expiry");

    let took = time_until_status(&app, key, 401, Duration::from_secs(3)).await;

    assert!(took.is_some(), "the key still works 3 s after creation");
    let error = expect_error(app.models(key).await, 401).await;
    assert!(message_of(&error).contains("expired"), "{error}");
}

#[tokio::test]
async fn limits_and_budget_are_echoed_on_creation_and_in_the_list() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let limits = json!({
        "rpm_limit": 60,
        "tpm_limit": 100000,
        "max_concurrency": 4,
        "budget": {"amount": 5000000, "period": "monthly"}
    });
    let mut body = limits.clone();
    body["name"] = json!("limited");

    let response = app.create_key_with(&org, &body).await;

    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let listed: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await
        .json()
        .await
        .unwrap();
    for shown in [&created, &listed["data"][0]] {
        for field in ["rpm_limit", "tpm_limit", "max_concurrency"] {
            assert_eq!(shown[field], limits[field], "{field} in {shown}");
        }
        assert_eq!(shown["budget"]["amount"], 5000000, "{shown}");
        assert_eq!(shown["budget"]["period"], "monthly", "{shown}");
        assert_eq!(shown["budget"]["spent"], 0, "{shown}");
    }
}

#[tokio::test]
async fn every_budget_period_is_accepted() {
    let app = TestApp::spawn().await;
    let org = app.create_org("tokens").await;

    for period in ["daily", "weekly", "monthly", "total"] {
        let response = app
            .create_key_with(
                &org,
                &json!({"name": period, "budget": {"amount": 1000, "period": period}}),
            )
            .await;

        assert_eq!(response.status(), 201, "{period}");
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["budget"]["period"], period);
    }
}

#[tokio::test]
async fn invalid_limits_are_400_naming_the_field() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let cases = [
        (
            json!({"name": "k", "budget": {"amount": 10, "period": "yearly"}}),
            "period",
        ),
        (
            json!({"name": "k", "budget": {"period": "daily"}}),
            "amount",
        ),
        (
            json!({"name": "k", "budget": {"amount": 0, "period": "daily"}}),
            "amount",
        ),
        (json!({"name": "k", "rpm_limit": 0}), "rpm_limit"),
        (json!({"name": "k", "tpm_limit": -5}), "tpm_limit"),
        (
            json!({"name": "k", "max_concurrency": "many"}),
            "max_concurrency",
        ),
        (json!({"name": "k", "expires_at": "tomorrow"}), "expires_at"),
    ];

    for (body, field) in cases {
        let response = app.create_key_with(&org, &body).await;

        let error = expect_error(response, 400).await;
        assert!(message_of(&error).contains(field), "{body}: {error}");
    }
    let listed: Value = app
        .admin_get(&format!("/api/v1/organizations/{org}/api-keys"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]), "no key was created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_another_replica_within_one_second() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = tollgate_tests::TestDatabase::create(&dir.0).await;
    let mock = tollgate_tests::MockProvider::start().await;
    let master_key = tollgate_tests::test_master_key();
    let a = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let b = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let http = tollgate_tests::client();
    let admin = |url: String| http.post(url).bearer_auth(ADMIN_TOKEN);
    let org: Value = admin(a.url("/api/v1/organizations"))
        .json(&json!({"name": "Acme", "billing_mode": "usd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap();
    let created: Value = admin(a.url(&format!("/api/v1/organizations/{org}/api-keys")))
        .json(&json!({"name": "shared"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key_id, key) = (
        created["id"].as_str().unwrap(),
        created["key"].as_str().unwrap(),
    );
    let models_on_b = || http.get(b.url("/v1/models")).bearer_auth(key).send();
    // Replica B has authenticated (and cached) the key.
    assert_eq!(models_on_b().await.unwrap().status(), 200);

    let revoked = http
        .delete(a.url(&format!("/api/v1/organizations/{org}/api-keys/{key_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200);
    let started = Instant::now();

    loop {
        let status = models_on_b().await.unwrap().status();
        if status == 401 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "replica B still accepts the revoked key after 1 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn rpm_limit_refuses_calls_beyond_it_with_429_and_retry_after() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let created: Value = app
        .create_key_with(&org, &json!({"name": "slow", "rpm_limit": 2}))
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    for _ in 0..2 {
        let ok = app
            .chat(key, &tollgate_tests::chat_body("gpt-4o-mini"))
            .await;
        assert_eq!(ok.status(), 200);
    }

    let third = app
        .chat(key, &tollgate_tests::chat_body("gpt-4o-mini"))
        .await;

    assert!(third.headers().contains_key("retry-after"));
    expect_error(third, 429).await;
    assert_eq!(app.mock.request_count(), 2);
    assert_eq!(app.balance(&org).await, 98);
}

#[tokio::test]
#[ignore = "gap: a key's budget is stored but not enforced (nothing under crates/api or crates/billing reads Principal::budget)"]
async fn spent_key_budget_refuses_further_calls() {
    let app = TestApp::spawn().await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let created: Value = app
        .create_key_with(
            &org,
            &json!({"name": "capped", "budget": {"amount": 2, "period": "total"}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap();
    for _ in 0..2 {
        let ok = app
            .chat(key, &tollgate_tests::chat_body("gpt-4o-mini"))
            .await;
        assert_eq!(ok.status(), 200);
    }

    let third = app
        .chat(key, &tollgate_tests::chat_body("gpt-4o-mini"))
        .await;

    let status = third.status().as_u16();
    assert!(
        status == 402 || status == 429,
        "a spent budget refuses the call: {status}"
    );
    expect_error(third, status).await;
    assert_eq!(app.mock.request_count(), 2);
    assert_eq!(app.balance(&org).await, 98);
}

#[tokio::test]
async fn keys_are_listed_a_page_at_a_time_newest_first() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let other = app.create_org("usd").await;
    for _ in 0..5 {
        app.create_key(&org).await;
    }
    let (foreign, _) = app.create_key(&other).await;
    let list = |query: String| {
        let app = &app;
        let org = &org;
        async move {
            let response = app
                .admin_get(&format!("/api/v1/organizations/{org}/api-keys{query}"))
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };

    let whole = list(String::new()).await;
    let mut paged = Vec::new();
    let mut query = "?limit=2".to_owned();
    let mut pages = 0;
    loop {
        let page = list(query).await;
        pages += 1;
        paged.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                assert_eq!(page["has_more"], true);
                query = format!("?limit=2&before={cursor}");
            }
            None => {
                assert_eq!(page["has_more"], false);
                break;
            }
        }
    }

    let ids = |keys: &[Value]| -> Vec<String> {
        keys.iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let whole = whole["data"].as_array().unwrap();
    assert_eq!(whole.len(), 5);
    assert_eq!(pages, 3);
    assert_eq!(ids(&paged), ids(whole), "the pages, in order, are the list");
    assert!(!ids(whole).contains(&foreign));
    let created: Vec<i64> = whole
        .iter()
        .map(|k| k["created_at"].as_i64().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "{created:?}");
}

#[tokio::test]
async fn a_key_is_read_from_the_database_at_its_first_use_only() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let (_, key) = app.create_key(&org).await;
    // Out of the 2 s that every replica's poll of key changes looks back
    // over (it drops a key changed then from the cache at each poll).
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let loads =
        |text: &str| tollgate_tests::metrics::value(text, "tollgate_api_key_loads_total", &[]);
    let before = loads(&app.metrics().await);

    assert_eq!(app.models(&key).await.status(), 200);
    let after = loads(&app.metrics().await);
    for _ in 0..5 {
        assert_eq!(app.models(&key).await.status(), 200);
    }

    assert_eq!(after - before, 1.0, "the first use reads the key");
    assert_eq!(
        loads(&app.metrics().await),
        after,
        "later uses find it cached"
    );
}
