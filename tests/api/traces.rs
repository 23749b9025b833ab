//! The OpenTelemetry settings, against a collector of the test's own that
//! keeps each OTLP/HTTP export's headers and raw protobuf body: the
//! endpoint variables, `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_SERVICE_NAME`, the
//! ratio sampler and `TOLLGATE_TRACE_CONTENT`. tests/observability decodes the
//! spans themselves (attributes, parent and child links) with the official
//! `opentelemetry-proto` package.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_tests::{DEFAULT_CONFIG, TestApp};

/// One export as the collector got it.
#[derive(Clone)]
struct Export {
    path: String,
    headers: HeaderMap,
    body: Bytes,
}

type Exports = Arc<Mutex<Vec<Export>>>;

/// An OTLP/HTTP collector on port 0: its base URL and what it received.
async fn collector() -> (String, Exports) {
    let exports = Exports::default();
    let app = axum::Router::new()
        .fallback(
            |State(exports): State<Exports>,
             uri: axum::http::Uri,
             headers: HeaderMap,
             body: Bytes| async move {
                exports.lock().unwrap().push(Export {
                    path: uri.path().to_owned(),
                    headers,
                    body,
                });
                ""
            },
        )
        .with_state(exports.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, exports)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Waits until an export holds `needle`; that export.
async fn export_with(exports: &Exports, needle: &[u8]) -> Export {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(e) = exports
            .lock()
            .unwrap()
            .iter()
            .find(|e| contains(&e.body, needle))
        {
            return e.clone();
        }
        assert!(Instant::now() < deadline, "no export holds {needle:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A trace id whose lower 8 bytes (what the ratio sampler reads) are `low`.
fn trace_id(low: u64) -> [u8; 16] {
    let mut id = [0x5a; 16];
    id[8..].copy_from_slice(&low.to_be_bytes());
    id
}

async fn chat_in_trace(app: &TestApp, key: &str, trace: &[u8; 16], content: &str) -> u16 {
    app.client
        .post(app.url("/v1/chat/completions"))
        .bearer_auth(key)
        .header(
            "traceparent",
            format!("00-{}-00f067aa0ba902b7-01", hex::encode(trace)),
        )
        .json(&json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn trace_export_follows_the_standard_otel_settings() {
    let (url, exports) = collector().await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        let o = &mut s.observability;
        o.otlp_endpoint = Some(format!("{url}/otel/"));
        o.otlp_headers = Some("authorization=Bearer%20collector-token,x-scope=tollgate".into());
        o.service_name = "edge-gateway".into();
        o.traces_sampler = Some("traceidratio".into());
        o.traces_sampler_arg = Some("0.5".into());
        o.bsp_schedule_delay_ms = 50;
    })
    .await;
    let (_, key) = app.funded_org("usd", 10_000_000).await;
    // At a ratio of 0.5, a trace id in the lower half of the range is
    // sampled, one in the upper half is not, whatever the client's flag.
    let kept = trace_id(1 << 40);
    let skipped = trace_id(u64::MAX - (1 << 40));

    assert_eq!(chat_in_trace(&app, &key, &skipped, "skipped").await, 200);
    assert_eq!(chat_in_trace(&app, &key, &kept, "kept").await, 200);

    let export = export_with(&exports, &kept).await;
    assert_eq!(export.path, "/otel/v1/traces");
    assert_eq!(export.headers["content-type"], "application/x-protobuf");
    assert_eq!(export.headers["authorization"], "Bearer collector-token");
    assert_eq!(export.headers["x-scope"], "tollgate");
    assert!(contains(&export.body, b"edge-gateway"));
    // Well past the 50 ms batch delay: the other trace was never sent.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !exports
            .lock()
            .unwrap()
            .iter()
            .any(|e| contains(&e.body, &skipped))
    );
    // The provider saw each trace, flagged sampled or not.
    let flags: Vec<String> = app
        .mock
        .requests()
        .iter()
        .filter_map(|r| r.header("traceparent").map(str::to_owned))
        .collect();
    assert_eq!(flags.len(), 2, "{flags:?}");
    assert!(flags[0].starts_with(&format!("00-{}-", hex::encode(skipped))));
    assert!(flags[0].ends_with("-00"), "{flags:?}");
    assert!(flags[1].starts_with(&format!("00-{}-", hex::encode(kept))));
    assert!(flags[1].ends_with("-01"), "{flags:?}");
}

#[tokio::test]
async fn prompts_and_completions_reach_spans_only_with_trace_content() {
    for capture in [false, true] {
        let (url, exports) = collector().await;
        let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
            let o = &mut s.observability;
            // The full URL wins over the base one.
            o.otlp_traces_endpoint = Some(format!("{url}/custom/traces"));
            o.otlp_endpoint = Some("http://127.0.0.1:9".into());
            o.bsp_schedule_delay_ms = 50;
            o.trace_content = capture;
        })
        .await;
        app.mock.set_reply("COMPLETION-MARKER-ochre-heron");
        let (_, key) = app.funded_org("usd", 10_000_000).await;
        let trace = trace_id(7);

        let status = chat_in_trace(&app, &key, &trace, "PROMPT-MARKER-teal-lynx").await;
        assert_eq!(status, 200);

        let export = export_with(&exports, &trace).await;
        assert_eq!(export.path, "/custom/traces");
        // The call's span and its attempt's, whichever exports hold them.
        export_with(&exports, b"tollgate.request_id").await;
        let sent: Vec<u8> = exports
            .lock()
            .unwrap()
            .iter()
            .flat_map(|e| e.body.to_vec())
            .collect();
        for marker in [
            &b"PROMPT-MARKER-teal-lynx"[..],
            b"COMPLETION-MARKER-ochre-heron",
        ] {
            assert_eq!(
                contains(&sent, marker),
                capture,
                "TOLLGATE_TRACE_CONTENT={capture}: {}",
                String::from_utf8_lossy(marker)
            );
        }
        assert_eq!(contains(&sent, b"gen_ai.input.messages"), capture);
    }
}

#[tokio::test]
async fn a_collector_that_never_answers_neither_slows_calls_nor_holds_spans_without_bound() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        let mut held = vec![];
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        let o = &mut s.observability;
        o.otlp_endpoint = Some(url);
        o.otlp_timeout_ms = 60_000;
        o.bsp_schedule_delay_ms = 10;
        o.bsp_max_queue_size = 4;
        o.bsp_max_export_batch_size = 2;
    })
    .await;
    let (_, key) = app.funded_org("usd", 10_000_000).await;

    let started = Instant::now();
    for _ in 0..20 {
        assert_eq!(
            app.chat(&key, &tollgate_tests::chat_body("gpt-4o-mini"))
                .await
                .status(),
            200
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "20 calls took {:?}",
        started.elapsed()
    );
    // 40 spans: the first batch (2 spans, or 1 if the 10 ms delay ended
    // first) is stuck in its export, 4 wait in the queue, the rest were
    // dropped and counted.
    let metrics = app.metrics().await;
    let dropped = tollgate_tests::metrics::value(&metrics, "tollgate_trace_spans_dropped", &[]);
    assert!(
        (34.0..=35.0).contains(&dropped),
        "{dropped} dropped\n{metrics}"
    );
}
