//! Catalog administration at runtime: `POST /api/v1/models`, `PATCH` and
//! `DELETE /api/v1/models/{id}`. A change is persisted, billed and routed
//! at once on the replica that made it, and within seconds on the others.

use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tollgate_tests::replica::Replica;
use tollgate_tests::{
    ADMIN_TOKEN, CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, MockProvider, TestApp, TestDatabase,
    chat_body, client, expect_error, org_key_at, test_master_key,
};

/// The ids `GET /v1/models` lists for `key`.
async fn listed_models(app: &TestApp, key: &str) -> Vec<String> {
    let body: Value = app
        .client
        .get(app.url("/v1/models"))
        .bearer_auth(key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The model of the management catalog with this id.
fn catalog_model<'a>(list: &'a Value, id: &str) -> Option<&'a Value> {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
}

async fn chat_at(
    http: &reqwest::Client,
    base_url: &str,
    key: &str,
    model: &str,
) -> reqwest::Response {
    http.post(format!("{base_url}/v1/chat/completions"))
        .bearer_auth(key)
        .json(&chat_body(model))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_added_through_one_replica_is_callable_through_another_within_two_seconds() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let master_key = test_master_key();
    let a = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let b = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let http = client();
    let key = org_key_at(&http, &a.base_url, "usd", 1_000_000, json!({"name": "k"})).await;
    let before = chat_at(&http, &b.base_url, &key, "runtime-model").await;
    assert_eq!(expect_error(before, 404).await["code"], "model_not_found");

    let added = http
        .post(a.url("/api/v1/models"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"id": "runtime-model", "provider": "mock", "upstream": "runtime-upstream",
                      "price": {"input_per_mtok_usd_micros": 1_000_000, "output_per_mtok_usd_micros": 2_000_000}}))
        .send()
        .await
        .unwrap();

    assert_eq!(added.status(), 201);
    let added: Value = added.json().await.unwrap();
    assert_eq!(added["upstream"], "runtime-upstream");
    assert_eq!(added["price"]["input_per_mtok_usd_micros"], 1_000_000);
    assert_eq!(added["disabled"], false);
    let started = Instant::now();
    let answer = loop {
        let answer = chat_at(&http, &b.base_url, &key, "runtime-model").await;
        if answer.status() == 200 || started.elapsed() > Duration::from_secs(2) {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        answer.status(),
        200,
        "replica B did not serve the model within 2 s"
    );
    assert_eq!(answer.headers()["x-tollgate-model"], "runtime-model");
    // 5 × 1.00 + 11 × 2.00 micro-dollars.
    let cost = CHAT_PROMPT_TOKENS + 2 * CHAT_COMPLETION_TOKENS;
    assert_eq!(
        answer.headers()["x-tollgate-cost"],
        cost.to_string().as_str()
    );
}

#[tokio::test]
async fn a_disabled_model_answers_model_not_found_and_leaves_the_model_list() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    assert!(
        listed_models(&app, &key)
            .await
            .contains(&"cheap-model".to_owned())
    );

    let disabled = app.admin_delete("/api/v1/models/cheap-model").await;

    assert_eq!(disabled.status(), 200);
    assert_eq!(disabled.json::<Value>().await.unwrap()["disabled"], true);
    let call = app.chat(&key, &chat_body("cheap-model")).await;
    let error = expect_error(call, 404).await;
    assert_eq!(error["code"], "model_not_found");
    assert!(
        error["message"].as_str().unwrap().contains("disabled"),
        "{error}"
    );
    assert!(
        !listed_models(&app, &key)
            .await
            .contains(&"cheap-model".to_owned())
    );
    // Its power level skips it: eco is [cheap-model, gpt-4o-mini].
    let eco = app
        .chat(&key, &json!({"model": "auto", "power_level": "eco", "messages": [{"role": "user", "content": "Say hello"}]}))
        .await;
    assert_eq!(eco.status(), 200);
    assert_eq!(eco.headers()["x-tollgate-model"], "gpt-4o-mini");
    // The management list still shows it, as disabled.
    let catalog: Value = app.admin_get("/api/v1/models").await.json().await.unwrap();
    assert_eq!(
        catalog_model(&catalog, "cheap-model").unwrap()["disabled"],
        true
    );
}

#[tokio::test]
async fn a_model_enabled_again_is_callable_again() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 1_000_000).await;
    assert_eq!(
        app.admin_delete("/api/v1/models/cheap-model")
            .await
            .status(),
        200
    );

    let enabled = app
        .admin_patch("/api/v1/models/cheap-model", &json!({"disabled": false}))
        .await;

    assert_eq!(enabled.status(), 200);
    assert_eq!(
        app.chat(&key, &chat_body("cheap-model")).await.status(),
        200
    );
    assert!(
        listed_models(&app, &key)
            .await
            .contains(&"cheap-model".to_owned())
    );
}

#[tokio::test]
async fn a_price_changed_at_runtime_is_what_the_next_call_is_billed_at() {
    let app = TestApp::spawn().await;
    let (org, key) = app.funded_org("usd", 1_000_000).await;
    let first = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    // 5 × 0.15 + 11 × 0.60 = 7.35, rounded up.
    assert_eq!(first.headers()["x-tollgate-cost"], "8");

    let changed = app.admin_patch("/api/v1/models/gpt-4o-mini",
        &json!({"price": {"input_per_mtok_usd_micros": 1_000_000, "output_per_mtok_usd_micros": 3_000_000}}),
    )
    .await;

    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["price"]["output_per_mtok_usd_micros"], 3_000_000);
    let next = app.chat(&key, &chat_body("gpt-4o-mini")).await;
    assert_eq!(next.status(), 200);
    let cost = CHAT_PROMPT_TOKENS + 3 * CHAT_COMPLETION_TOKENS;
    assert_eq!(next.headers()["x-tollgate-cost"], cost.to_string().as_str());
    assert_eq!(app.balance(&org).await, 1_000_000 - 8 - cost);
}

#[tokio::test]
async fn catalog_changes_survive_a_restart() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let master_key = test_master_key();
    let http = client();
    let first = Replica::start(&dir.0, &db.url, &mock, &master_key).await;
    let send = |request: reqwest::RequestBuilder, body: Value| async move {
        request
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap()
            .status()
    };
    let added = send(
        http.post(first.url("/api/v1/models")),
        json!({"id": "kept-model", "provider": "mock", "tier": 3}),
    )
    .await;
    let priced = send(
        http.patch(first.url("/api/v1/models/gpt-4o-mini")),
        json!({"price": {"input_per_mtok_usd_micros": 42}, "quality": 12}),
    )
    .await;
    let disabled = send(
        http.delete(first.url("/api/v1/models/cheap-model")),
        json!({}),
    )
    .await;
    assert_eq!(added, 201);
    assert_eq!(priced, 200);
    assert_eq!(disabled, 200);
    drop(first);

    let second = Replica::start(&dir.0, &db.url, &mock, &master_key).await;

    let catalog: Value = http
        .get(second.url("/api/v1/models"))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(catalog_model(&catalog, "kept-model").unwrap()["tier"], 3);
    let mini = catalog_model(&catalog, "gpt-4o-mini").unwrap();
    assert_eq!(mini["price"]["input_per_mtok_usd_micros"], 42);
    assert_eq!(mini["price"]["output_per_mtok_usd_micros"], 600_000);
    assert_eq!(mini["quality"], 12);
    assert_eq!(
        catalog_model(&catalog, "cheap-model").unwrap()["disabled"],
        true
    );
}

#[tokio::test]
async fn invalid_models_are_refused_naming_the_field() {
    let app = TestApp::spawn().await;
    for (body, field) in [
        (json!({"id": "m", "provider": "nowhere"}), "provider"),
        (json!({"id": "m", "provider": "mock", "tier": 9}), "tier"),
        (
            json!({"id": "m", "provider": "mock", "quality": 101}),
            "quality",
        ),
        (
            json!({"id": "m", "provider": "mock", "context_window": 0}),
            "context_window",
        ),
        (
            json!({"id": "m", "provider": "mock", "price": {"input_per_mtok_usd_micros": -1}}),
            "price.input_per_mtok_usd_micros",
        ),
        (
            json!({"id": "m", "provider": "mock", "price": {"input_per_mtok_usd_micros": 0.5}}),
            "price.input_per_mtok_usd_micros",
        ),
        (
            json!({"id": "m", "provider": "mock", "colour": "red"}),
            "colour",
        ),
        (json!({"id": "", "provider": "mock"}), "id"),
        (json!({"id": "auto", "provider": "mock"}), "id"),
        (json!({"id": "m\u{0}x", "provider": "mock"}), "id"),
    ] {
        let response = app.admin_post("/api/v1/models", &body).await;
        let error = expect_error(response, 400).await;
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{body}: {message}");
    }
    let bad_patch = app
        .admin_patch("/api/v1/models/gpt-4o-mini", &json!({"tier": 6}))
        .await;
    let message = expect_error(bad_patch, 400).await["message"].clone();
    assert!(message.as_str().unwrap().contains("`tier`"), "{message}");
    let catalog: Value = app.admin_get("/api/v1/models").await.json().await.unwrap();
    assert!(catalog_model(&catalog, "m").is_none());
    assert_eq!(catalog_model(&catalog, "gpt-4o-mini").unwrap()["tier"], 1);
}

#[tokio::test]
async fn an_id_the_catalog_has_is_a_conflict_even_when_disabled() {
    let app = TestApp::spawn().await;
    assert_eq!(
        app.admin_delete("/api/v1/models/cheap-model")
            .await
            .status(),
        200
    );

    let configured = app
        .admin_post(
            "/api/v1/models",
            &json!({"id": "gpt-4o-mini", "provider": "mock"}),
        )
        .await;
    let disabled = app
        .admin_post(
            "/api/v1/models",
            &json!({"id": "cheap-model", "provider": "mock"}),
        )
        .await;

    assert_eq!(expect_error(configured, 409).await["code"], "conflict");
    assert_eq!(expect_error(disabled, 409).await["code"], "conflict");
}

#[tokio::test]
async fn changing_an_unknown_model_is_not_found() {
    let app = TestApp::spawn().await;

    let changed = app
        .admin_patch("/api/v1/models/no-such-model", &json!({"tier": 2}))
        .await;
    let disabled = app.admin_delete("/api/v1/models/no-such-model").await;

    assert_eq!(expect_error(changed, 404).await["code"], "model_not_found");
    assert_eq!(expect_error(disabled, 404).await["code"], "model_not_found");
}
