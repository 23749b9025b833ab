//! Several deployments of one model: the weighted, latency-aware choice
//! between them, their own RPM caps; and the capability and price filters
//! on candidates (docs/routing.md).

use serde_json::{Value, json};
use std::time::Duration;
use tollgate_mock_provider::MockOptions;
use tollgate_tests::{MockProvider, TestApp, chat_body, expect_error, message_of};

/// Two providers (two deployments) serving the model `spread`: `east` at
/// `{EAST}` and `west` at `{WEST}` (`{MOCK}` is the test app's own mock).
fn two_deployments(east: &str, west: &str) -> String {
    format!(
        r#"
providers:
  east: {{ kind: openai, base_url: "{{EAST}}", api_key: "sk-east" }}
  west: {{ kind: openai, base_url: "{{WEST}}", api_key: "sk-west" }}
models:
  - id: spread
    upstream: spread-2025
    price: {{ input_per_mtok: 1, output_per_mtok: 2 }}
    deployments:
      - {{ provider: east, {east} }}
      - {{ provider: west, {west} }}
"#
    )
}

/// Sends `n` calls for `spread` one after the other and counts the
/// answers per `x-tollgate-provider`: `(east, west)`.
async fn spread_calls(app: &TestApp, key: &str, n: usize) -> (usize, usize) {
    let (mut east, mut west) = (0, 0);
    for _ in 0..n {
        let response = app.chat(key, &chat_body("spread")).await;
        assert_eq!(response.status(), 200);
        match response.headers()["x-tollgate-provider"].to_str().unwrap() {
            "east" => east += 1,
            "west" => west += 1,
            other => panic!("answered by {other}"),
        }
    }
    (east, west)
}

#[tokio::test]
async fn traffic_follows_the_deployments_weights_within_seven_points() {
    let config = two_deployments("weight: 3", "weight: 1")
        .replace("{EAST}", "{MOCK}")
        .replace("{WEST}", "{MOCK}");
    let app = TestApp::spawn_with_config(&config).await;
    let (_org, key) = app.funded_org("usd", 100_000_000).await;

    let (east, _west) = spread_calls(&app, &key, 400).await;

    // Expected 75 % (3 : 1); ±7 points is more than three standard deviations.
    let share = east as f64 / 400.0;
    assert!((0.68..=0.82).contains(&share), "east got {share}");
}

#[tokio::test]
async fn a_slower_deployment_receives_clearly_less_traffic() {
    let slow = MockProvider::start_on(
        "127.0.0.1:0".parse().unwrap(),
        MockOptions {
            latency: Duration::from_millis(150),
            ..MockOptions::default()
        },
    )
    .await
    .unwrap();
    let config = two_deployments("weight: 1", "weight: 1")
        .replace("{EAST}", "{MOCK}")
        .replace("{WEST}", &slow.base_url());
    let app = TestApp::spawn_with_config(&config).await;
    let (_org, key) = app.funded_org("usd", 100_000_000).await;

    let (_east, west) = spread_calls(&app, &key, 200).await;

    // Equal weights alone would give the slow one 50 %; the rule leaves it
    // about 25 % (only when it is drawn twice).
    let share = west as f64 / 200.0;
    assert!(share < 0.35, "the slow deployment got {share}");
    assert_eq!(slow.request_count(), west);
}

#[tokio::test]
async fn a_deployment_at_its_rpm_cap_is_skipped_for_the_next_one() {
    let config = two_deployments("weight: 1000, rpm: 2", "weight: 1, rpm: 2")
        .replace("{EAST}", "{MOCK}")
        .replace("{WEST}", "{MOCK}");
    let app = TestApp::spawn_with_config(&config).await;
    let (org, key) = app.funded_org("usd", 100_000_000).await;

    let (east, west) = spread_calls(&app, &key, 4).await;
    let refused = app.chat(&key, &chat_body("spread")).await;

    assert_eq!((east, west), (2, 2));
    assert!(refused.headers().contains_key("retry-after"));
    let error = expect_error(refused, 429).await;
    assert!(message_of(&error).contains("cap"), "{error}");
    assert_eq!(
        app.mock.request_count(),
        4,
        "the capped call reached no one"
    );
    let usage = app.usage(&org).await;
    assert!(usage.iter().all(|u| u["model"] == "spread"));
    assert_eq!(usage.iter().filter(|u| u["provider"] == "west").count(), 2);
    assert!(
        app.mock
            .requests()
            .iter()
            .all(|r| r.body["model"] == "spread-2025")
    );
}

const CAPABILITIES: &str = r#"
providers:
  mock: { kind: openai, base_url: "{MOCK}", api_key: "sk-platform-key" }
models:
  - { id: text-only, provider: mock, quality: 90, supports_tools: false, supports_vision: false,
      supports_json: false, price: { input_per_mtok: 0.1, output_per_mtok: 0.2 } }
  - { id: all-round, provider: mock, quality: 80, price: { input_per_mtok: 3, output_per_mtok: 15 } }
power_levels:
  balanced: [text-only, all-round]
"#;

fn with(model: &str, extra: Value) -> Value {
    let mut body = chat_body(model);
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    body
}

#[tokio::test]
async fn a_named_model_that_cannot_serve_the_request_is_a_400_naming_why() {
    let app = TestApp::spawn_with_config(CAPABILITIES).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    let tools = json!({"tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]});

    let refused = app.chat(&key, &with("text-only", tools)).await;
    let json_mode = app
        .chat(
            &key,
            &with(
                "text-only",
                json!({"response_format": {"type": "json_object"}}),
            ),
        )
        .await;

    let error = expect_error(refused, 400).await;
    assert_eq!(error["code"], "model_cannot_serve_request");
    assert!(message_of(&error).contains("tools"), "{error}");
    let error = expect_error(json_mode, 400).await;
    assert!(message_of(&error).contains("JSON mode"), "{error}");
    assert_eq!(app.mock.request_count(), 0);
}

#[tokio::test]
async fn auto_skips_candidates_without_vision_for_an_image_prompt() {
    let app = TestApp::spawn_with_config(CAPABILITIES).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]});

    let plain = app.chat(&key, &chat_body("auto")).await;
    let image = app.chat(&key, &body).await;

    assert_eq!(plain.headers()["x-tollgate-model"], "text-only");
    assert_eq!(image.status(), 200);
    assert_eq!(image.headers()["x-tollgate-model"], "all-round");
}

#[tokio::test]
async fn a_price_ceiling_skips_dearer_models_and_is_not_forwarded() {
    let app = TestApp::spawn_with_config(CAPABILITIES).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;
    let cheap_only = json!({"max_price": {"input_per_mtok": 1, "output_per_mtok": 4}});
    let vision = json!({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]});

    let named = app.chat(&key, &with("all-round", cheap_only.clone())).await;
    let mut auto_vision = with("auto", cheap_only.clone());
    auto_vision["messages"] = json!([vision]);
    let none_left = app.chat(&key, &auto_vision).await;
    let fits = app
        .chat(
            &key,
            &with("auto", json!({"max_price": {"output_per_mtok": 0.2}})),
        )
        .await;

    let error = expect_error(named, 400).await;
    assert!(
        message_of(&error).contains("max_price.input_per_mtok"),
        "{error}"
    );
    let error = expect_error(none_left, 400).await;
    assert_eq!(error["code"], "model_cannot_serve_request");
    assert_eq!(fits.status(), 200);
    assert_eq!(fits.headers()["x-tollgate-model"], "text-only");
    let sent = app.mock.requests();
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body.get("max_price").is_none());
}

#[tokio::test]
async fn a_malformed_price_ceiling_is_a_400_naming_the_field() {
    let app = TestApp::spawn_with_config(CAPABILITIES).await;
    let (_org, key) = app.funded_org("usd", 10_000_000).await;

    let negative = app
        .chat(
            &key,
            &with("auto", json!({"max_price": {"input_per_mtok": -1}})),
        )
        .await;
    let not_object = app
        .chat(&key, &with("auto", json!({"max_price": "cheap"})))
        .await;

    let error = expect_error(negative, 400).await;
    assert!(
        message_of(&error).contains("max_price.input_per_mtok"),
        "{error}"
    );
    expect_error(not_object, 400).await;
}

#[tokio::test]
async fn a_failing_deployment_falls_back_to_the_model_s_other_deployment_before_the_next_model() {
    let config = format!(
        "{}  - {{ id: other, provider: east, price: {{ input_per_mtok: 1, output_per_mtok: 2 }} }}\n",
        two_deployments("weight: 1000000", "weight: 1")
    )
    .replace("{EAST}", "{MOCK}")
    .replace("{WEST}", "{MOCK}");
    let app = TestApp::spawn_with_config(&config).await;
    let (org, key) = app.funded_org("usd", 100_000_000).await;
    app.mock.push_fault(tollgate_tests::Fault::status(500));

    let mut body = chat_body("spread");
    body["models"] = json!(["other"]);
    let answer = app.chat(&key, &body).await;

    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-tollgate-attempts"], "2");
    assert_eq!(answer.headers()["x-tollgate-model"], "spread");
    assert_eq!(answer.headers()["x-tollgate-provider"], "west");
    let keys: Vec<Option<String>> = app
        .mock
        .requests()
        .iter()
        .map(|r| r.authorization.clone())
        .collect();
    assert_eq!(
        keys,
        [
            Some("Bearer sk-east".to_owned()),
            Some("Bearer sk-west".to_owned())
        ]
    );
    let usage = app.usage(&org).await;
    assert_eq!((usage.len(), &usage[0]["provider"]), (1, &json!("west")));
}

#[tokio::test]
async fn a_deployment_in_cooldown_gets_no_request_while_the_other_serves() {
    let config = two_deployments("weight: 1000000", "weight: 1")
        .replace("{EAST}", "{MOCK}")
        .replace("{WEST}", "{MOCK}");
    let app = TestApp::spawn_with(&config, |s| s.cooldown_failures = 1).await;
    let (_org, key) = app.funded_org("usd", 100_000_000).await;
    app.mock.push_fault(tollgate_tests::Fault::status(503));

    let (east, west) = spread_calls(&app, &key, 5).await;

    assert_eq!((east, west), (0, 5));
    let to_east = app
        .mock
        .requests()
        .iter()
        .filter(|r| r.authorization.as_deref() == Some("Bearer sk-east"))
        .count();
    assert_eq!(to_east, 1, "only the failed call reached east");
}

#[tokio::test]
async fn the_catalog_lists_each_model_s_deployments_and_capabilities() {
    let config = two_deployments("weight: 3, rpm: 60", "upstream: spread-west")
        .replace("{EAST}", "{MOCK}")
        .replace("{WEST}", "{MOCK}");
    let app = TestApp::spawn_with_config(&config).await;

    let listed: Value = app.admin_get("/api/v1/models").await.json().await.unwrap();

    let spread = &listed["data"][0];
    assert_eq!(spread["id"], "spread");
    assert_eq!(spread["supports_tools"], true);
    assert_eq!(
        spread["deployments"],
        json!([
            {"provider": "east", "upstream": "spread-2025", "weight": 3, "rpm": 60, "tpm": null},
            {"provider": "west", "upstream": "spread-west", "weight": 1, "rpm": null, "tpm": null}
        ])
    );
}
