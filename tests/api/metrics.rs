//! `GET /metrics` as an operator alerts on it: every family that
//! docs/observability.md lists is served with its type (and nothing it does
//! not list), and each one moves when what it counts happens. The Python
//! check (tests/observability) reads the same families with the
//! `prometheus_client` parsers.

use serde_json::json;
use std::time::Duration;
use tollgate_tests::metrics::value;
use tollgate_tests::{
    CHAT_COMPLETION_TOKENS, CHAT_PROMPT_TOKENS, DEFAULT_CONFIG, Fault, TestApp, chat_body,
};

/// `(family, type)` of every metric in docs/observability.md's table.
fn documented_families() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../docs/observability.md"
    ))
    .unwrap();
    let families: Vec<(String, String)> = doc
        .lines()
        .filter_map(|line| {
            let mut cells = line.split('|').map(str::trim).skip(1);
            let name = cells
                .next()?
                .strip_prefix("`tollgate_")?
                .strip_suffix('`')?;
            let kind = cells.next()?;
            Some((format!("tollgate_{name}"), kind.to_owned()))
        })
        .collect();
    assert!(families.len() >= 15, "{families:?}");
    families
}

/// The families served, with their type, as a classic parser reads them.
fn served_families(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap();
            (name.to_owned(), kind.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn every_documented_metric_family_is_served_with_its_type() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        s.observability.metrics_per_organization = true;
    })
    .await;
    let (_, key) = app.funded_org("usd", 10_000_000).await;
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let text = app.metrics().await;
    let mut served = served_families(&text);
    served.sort();

    let mut documented = documented_families();
    documented.sort();
    assert_eq!(
        served, documented,
        "/metrics and docs/observability.md's table disagree"
    );
    // Per-organization series only behind the setting.
    let default = TestApp::spawn().await;
    let (_, key) = default.funded_org("usd", 10_000_000).await;
    assert_eq!(
        default.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    let text = default.metrics().await;
    assert!(text.contains("tollgate_tokens_total{"), "{text}");
    assert!(!text.contains("tollgate_organization_"), "{text}");
    assert!(!text.contains("organization=\""), "{text}");
}

#[tokio::test]
async fn call_metrics_move_as_calls_are_made() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        s.observability.metrics_per_organization = true;
    })
    .await;
    let (org, key) = app.funded_org("usd", 10_000_000).await;
    let before = app.metrics().await;

    // A plain call to big-model: 5 prompt and 11 completion tokens at
    // $15 and $75 per million, 900 micro-dollars.
    assert_eq!(app.chat(&key, &chat_body("big-model")).await.status(), 200);
    let mut stream = chat_body("gpt-4o-mini");
    stream["stream"] = json!(true);
    let streamed = app.chat(&key, &stream).await;
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();
    app.mock.push_fault(Fault::status(500));
    assert_eq!(
        app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
        502
    );
    // Settlement is observed when the usage record is committed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = app.metrics().await;

    let moved = |name: &str, labels: &[(&str, &str)]| {
        value(&after, name, labels) - value(&before, name, labels)
    };
    let chat_route = ("route", "/v1/chat/completions");
    let big = [("provider", "mock"), ("model", "big-model")];
    let mini = [("provider", "mock"), ("model", "gpt-4o-mini")];
    let org_big = [
        ("organization", org.as_str()),
        ("provider", "mock"),
        ("model", "big-model"),
    ];
    for (name, labels, expected) in [
        (
            "tollgate_http_requests_total",
            vec![chat_route, ("status", "200"), ("code", "")],
            2.0,
        ),
        (
            "tollgate_http_requests_total",
            vec![chat_route, ("status", "502"), ("code", "provider_error")],
            1.0,
        ),
        (
            "tollgate_http_request_duration_seconds_count",
            vec![chat_route],
            3.0,
        ),
        (
            "tollgate_gateway_overhead_seconds_count",
            vec![("operation", "chat")],
            3.0,
        ),
        (
            "tollgate_time_to_first_token_seconds_count",
            mini.to_vec(),
            1.0,
        ),
        (
            "tollgate_provider_attempts_total",
            [&big[..], &[("outcome", "ok")]].concat(),
            1.0,
        ),
        (
            "tollgate_provider_attempts_total",
            [&mini[..], &[("outcome", "error")]].concat(),
            1.0,
        ),
        (
            "tollgate_provider_attempt_duration_seconds_count",
            mini.to_vec(),
            2.0,
        ),
        (
            "tollgate_tokens_total",
            [&big[..], &[("kind", "prompt")]].concat(),
            CHAT_PROMPT_TOKENS as f64,
        ),
        (
            "tollgate_tokens_total",
            [&big[..], &[("kind", "completion")]].concat(),
            CHAT_COMPLETION_TOKENS as f64,
        ),
        ("tollgate_cost_usd_micros_total", big.to_vec(), 900.0),
        (
            "tollgate_organization_tokens_total",
            [&org_big[..], &[("kind", "completion")]].concat(),
            CHAT_COMPLETION_TOKENS as f64,
        ),
        (
            "tollgate_organization_cost_usd_micros_total",
            org_big.to_vec(),
            900.0,
        ),
        // The two answered calls were settled.
        ("tollgate_settlement_duration_seconds_count", vec![], 2.0),
        // Only the first call waited, for the organization's first lease.
        ("tollgate_lease_waits", vec![("lease", "organization")], 1.0),
    ] {
        assert_eq!(moved(name, &labels), expected, "{name} {labels:?}\n{after}");
    }
    assert_eq!(
        value(&after, "tollgate_calls_in_flight", &[("operation", "chat")]),
        0.0
    );
    assert_eq!(value(&after, "tollgate_settlement_queue_depth", &[]), 0.0);
    assert!(moved("tollgate_lease_top_ups", &[("lease", "organization")]) >= 1.0);
}

#[tokio::test]
async fn a_call_is_in_flight_until_it_is_answered() {
    let app = TestApp::spawn().await;
    let (_, key) = app.funded_org("usd", 10_000_000).await;
    app.mock
        .push_fault(Fault::Latency(Duration::from_millis(1500)));
    let slow = {
        let request = app
            .client
            .post(app.url("/v1/chat/completions"))
            .bearer_auth(&key)
            .json(&chat_body("gpt-4o-mini"));
        tokio::spawn(async move { request.send().await.unwrap().status() })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;

    let during = app.metrics().await;
    assert_eq!(slow.await.unwrap(), 200);
    let after = app.metrics().await;

    let in_flight = |text: &str| value(text, "tollgate_calls_in_flight", &[("operation", "chat")]);
    assert_eq!(in_flight(&during), 1.0, "{during}");
    assert_eq!(in_flight(&after), 0.0, "{after}");
}

#[tokio::test]
async fn refusals_and_cooldowns_are_counted() {
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| s.org_rpm_limit = Some(2)).await;
    // A key allowed one call a minute.
    let (org, _) = app.funded_org("usd", 10_000_000).await;
    let limited = app
        .create_key_with(&org, &json!({"name": "limited", "rpm_limit": 1}))
        .await
        .json::<serde_json::Value>()
        .await
        .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.chat(&limited, &chat_body("gpt-4o-mini")).await.status(),
        200
    );
    assert_eq!(
        app.chat(&limited, &chat_body("gpt-4o-mini")).await.status(),
        429
    );
    // An organization allowed two calls a minute (TOLLGATE_ORG_RPM_LIMIT).
    let (_, key) = app.funded_org("usd", 10_000_000).await;
    for expected in [200, 200, 429] {
        assert_eq!(
            app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
            expected
        );
    }
    let refused = app.metrics().await;
    // A provider's 429 with Retry-After opens a cooldown of that deployment at once.
    let (_, key) = app.funded_org("usd", 10_000_000).await;
    app.mock.push_fault(Fault::Status {
        status: 429,
        body: json!({"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}),
        retry_after: Some(60),
    });
    assert_ne!(
        app.chat(&key, &chat_body("cheap-model")).await.status(),
        200
    );
    let cooled = app.metrics().await;

    let refusals = |scope| {
        value(
            &refused,
            "tollgate_rate_limit_refusals_total",
            &[("scope", scope)],
        )
    };
    assert_eq!(refusals("key"), 1.0, "{refused}");
    assert_eq!(refusals("organization"), 1.0, "{refused}");
    assert_eq!(
        value(
            &refused,
            "tollgate_http_requests_total",
            &[("status", "429"), ("code", "rate_limit_exceeded")]
        ),
        2.0,
        "{refused}"
    );
    assert_eq!(value(&refused, "tollgate_cooldowns_open", &[]), 0.0);
    assert_eq!(
        value(&cooled, "tollgate_cooldowns_open", &[]),
        1.0,
        "{cooled}"
    );
}
