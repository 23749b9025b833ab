//! Outbound webhooks: subscriptions, and deliveries to a local receiver that
//! fails the first attempts, verifies the Standard Webhooks signature itself,
//! and sees each event accepted once, across a gateway restart too.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use sqlx::{AnyConnection, Connection};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_tests::replica::Replica;
use tollgate_tests::{
    Backend, DEFAULT_CONFIG, MockProvider, TestApp, TestDatabase, chat_body, expect_error,
    message_of, test_backend, test_master_key,
};

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    timestamp: i64,
    signature: String,
    body: String,
}

#[derive(Default)]
struct ReceiverState {
    /// Answer 500 to this many requests first.
    fail_first: AtomicUsize,
    attempts: Mutex<Vec<Received>>,
    accepted: Mutex<Vec<Received>>,
}

/// A webhook receiver on port 0.
struct Receiver {
    url: String,
    state: Arc<ReceiverState>,
}

async fn receive(
    State(state): State<Arc<ReceiverState>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let received = Received {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    state.attempts.lock().unwrap().push(received.clone());
    let failing = state
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    state.accepted.lock().unwrap().push(received);
    StatusCode::OK
}

impl Receiver {
    async fn start(fail_first: usize) -> Receiver {
        let state = Arc::new(ReceiverState {
            fail_first: AtomicUsize::new(fail_first),
            ..ReceiverState::default()
        });
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver { url, state }
    }

    fn attempts(&self) -> Vec<Received> {
        self.state.attempts.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.state.accepted.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the accepted requests.
    async fn wait_for(&self, what: &str, pred: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        for _ in 0..200 {
            let accepted = self.accepted();
            if pred(&accepted) {
                return accepted;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "timed out waiting for {what}; attempts: {:?}",
            self.attempts()
        );
    }
}

/// Verifies the Standard Webhooks signature as a receiver would: HMAC-SHA256
/// of `{id}.{timestamp}.{body}` keyed by the base64 after `whsec_`.
fn signature_is_valid(secret: &str, received: &Received) -> bool {
    let key = STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", received.id, received.timestamp, received.body).as_bytes());
    let expected = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
    received.signature.split(' ').any(|s| s == expected)
}

fn fast_worker(s: &mut tollgate_api::Settings) {
    s.webhook_poll_ms = 50;
    s.webhook_backoff_ms = 100;
    s.webhook_timeout_ms = 2000;
    s.usage_batch_secs = 1;
    // The receiver listens on 127.0.0.1.
    s.webhook_allow_private = true;
}

async fn subscribe(app: &TestApp, org: &str, body: &Value) -> Value {
    let response = app
        .admin_post(&format!("/api/v1/organizations/{org}/webhooks"), body)
        .await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn subscribe_to_grants(app: &TestApp, org: &str, receiver: &Receiver) -> Value {
    subscribe(
        app,
        org,
        &json!({"url": receiver.url, "events": ["credits.granted"]}),
    )
    .await
}

/// `GET …/webhooks/{id}/deliveries` of a subscription.
async fn deliveries(app: &TestApp, org: &str, subscription: &Value) -> Value {
    let id = subscription["id"].as_str().unwrap();
    app.admin_get(&format!(
        "/api/v1/organizations/{org}/webhooks/{id}/deliveries"
    ))
    .await
    .json()
    .await
    .unwrap()
}

/// `tollgate_webhook_delivery_attempts_total{outcome}` on `/metrics`.
async fn attempts_metric(app: &TestApp) -> [(String, f64); 3] {
    let text = app.metrics().await;
    ["delivered", "retrying", "failed"].map(|outcome| {
        let name = "tollgate_webhook_delivery_attempts_total";
        let value = tollgate_tests::metrics::value(&text, name, &[("outcome", outcome)]);
        (outcome.to_owned(), value)
    })
}

fn outcomes(delivered: f64, retrying: f64, failed: f64) -> [(String, f64); 3] {
    [
        ("delivered".to_owned(), delivered),
        ("retrying".to_owned(), retrying),
        ("failed".to_owned(), failed),
    ]
}

fn event_of(received: &Received) -> Value {
    serde_json::from_str(&received.body).unwrap()
}

#[tokio::test]
async fn creating_a_webhook_shows_its_secret_only_once() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;

    let created = subscribe(
        &app,
        &org,
        &json!({"url": "https://example.com/hook", "events": ["credits.granted"]}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let one = app
        .admin_get(&format!("/api/v1/organizations/{org}/webhooks/{id}"))
        .await;
    let list = app
        .admin_get(&format!("/api/v1/organizations/{org}/webhooks"))
        .await;

    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(STANDARD.decode(&secret[6..]).unwrap().len(), 32);
    assert_eq!(created["events"], json!(["credits.granted"]));
    let one: Value = one.json().await.unwrap();
    let list: Value = list.json().await.unwrap();
    assert_eq!(one["url"], "https://example.com/hook");
    assert!(one.get("secret").is_none());
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains(secret));
}

#[tokio::test]
async fn webhook_url_and_events_are_validated_by_name() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let path = format!("/api/v1/organizations/{org}/webhooks");

    let bad_url = app
        .admin_post(
            &path,
            &json!({"url": "ftp://example.com", "events": ["credits.granted"]}),
        )
        .await;
    let bad_event = app
        .admin_post(
            &path,
            &json!({"url": "https://example.com", "events": ["credits.stolen"]}),
        )
        .await;
    let low_without_threshold = app
        .admin_post(
            &path,
            &json!({"url": "https://example.com", "events": ["credits.low"]}),
        )
        .await;

    assert!(message_of(&expect_error(bad_url, 400).await).contains("`url`"));
    assert!(message_of(&expect_error(bad_event, 400).await).contains("`events`"));
    assert!(
        message_of(&expect_error(low_without_threshold, 400).await)
            .contains("credits_low_threshold")
    );
}

#[tokio::test]
async fn deleted_webhook_is_gone() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let created = subscribe(
        &app,
        &org,
        &json!({"url": "https://example.com/hook", "events": ["usage.batch"]}),
    )
    .await;
    let path = format!(
        "/api/v1/organizations/{org}/webhooks/{}",
        created["id"].as_str().unwrap()
    );

    let deleted = app.admin_delete(&path).await;
    let after = app.admin_get(&path).await;

    assert_eq!(deleted.status(), 204);
    expect_error(after, 404).await;
}

#[tokio::test]
async fn failing_receiver_gets_the_grant_later_exactly_once_with_a_valid_signature() {
    let receiver = Receiver::start(2).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("usd").await;
    let created = subscribe_to_grants(&app, &org, &receiver).await;
    let secret = created["secret"].as_str().unwrap();

    app.grant(&org, 5_000_000).await;
    let accepted = receiver
        .wait_for("the accepted delivery", |a| !a.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(400)).await;

    let attempts = receiver.attempts();
    assert_eq!(
        attempts.len(),
        3,
        "two failures, then success: {attempts:?}"
    );
    assert_eq!(receiver.accepted().len(), 1);
    assert!(
        attempts.iter().all(|a| a.id == accepted[0].id),
        "one webhook-id on every attempt"
    );
    assert!(signature_is_valid(secret, &accepted[0]));
    let event = event_of(&accepted[0]);
    assert_eq!(event["type"], "credits.granted");
    assert_eq!(event["data"]["amount"], 5_000_000);
    assert_eq!(event["data"]["balance"], 5_000_000);
    let page = deliveries(&app, &org, &created).await;
    let delivery = &page["data"][0];
    assert_eq!(delivery["status"], "delivered");
    let codes: Vec<i64> = delivery["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    assert_eq!(attempts_metric(&app).await, outcomes(1.0, 2.0, 0.0));
}

#[tokio::test]
async fn a_signature_with_another_secret_does_not_verify() {
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("usd").await;
    subscribe_to_grants(&app, &org, &receiver).await;

    app.grant(&org, 1).await;
    let accepted = receiver.wait_for("a delivery", |a| !a.is_empty()).await;

    let other = format!("whsec_{}", STANDARD.encode([7u8; 32]));
    assert!(!signature_is_valid(&other, &accepted[0]));
}

#[tokio::test]
async fn a_restart_between_attempts_does_not_lose_the_event() {
    let receiver = Receiver::start(1).await;
    let mock = MockProvider::start().await;
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let key = test_master_key();
    let slow_retry = |s: &mut tollgate_api::Settings| {
        fast_worker(s);
        s.webhook_backoff_ms = 1500;
    };
    let first = Replica::start_with(&dir.0, &db.url, &mock, &key, slow_retry).await;
    let post = |path: String, body: Value| {
        let request = tollgate_tests::client()
            .post(first.url(&path))
            .bearer_auth(tollgate_tests::ADMIN_TOKEN)
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 201, "{path}");
            response.json::<Value>().await.unwrap()
        }
    };
    let org = post(
        "/api/v1/organizations".into(),
        json!({"name": "Acme", "billing_mode": "usd"}),
    )
    .await;
    let org = org["id"].as_str().unwrap().to_owned();
    let created = post(
        format!("/api/v1/organizations/{org}/webhooks"),
        json!({"url": receiver.url, "events": ["credits.granted"]}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    post(
        format!("/api/v1/organizations/{org}/credits/grants"),
        json!({"amount": 777}),
    )
    .await;
    for _ in 0..100 {
        if !receiver.attempts().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(receiver.attempts().len(), 1, "the first attempt failed");
    // Stop only once the failed attempt is recorded: a gateway stopped while
    // an attempt is in flight leaves the delivery claimed until its lease
    // (twice the timeout plus 10 s) runs out, longer than this test waits.
    let deliveries_path = format!(
        "/api/v1/organizations/{org}/webhooks/{}/deliveries",
        created["id"].as_str().unwrap()
    );
    let mut recorded = false;
    for _ in 0..100 {
        let page: Value = tollgate_tests::client()
            .get(first.url(&deliveries_path))
            .bearer_auth(tollgate_tests::ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["data"][0]["attempts"]
            .as_array()
            .is_some_and(|a| a.len() == 1)
        {
            recorded = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorded, "the failed attempt was never recorded");

    drop(first); // the gateway stops before the retry is due
    tokio::time::sleep(Duration::from_millis(300)).await;
    let _second = Replica::start_with(&dir.0, &db.url, &mock, &key, slow_retry).await;
    let accepted = receiver
        .wait_for("the retried delivery", |a| !a.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(receiver.accepted().len(), 1);
    assert!(signature_is_valid(&secret, &accepted[0]));
    assert_eq!(event_of(&accepted[0])["data"]["amount"], 777);
}

#[tokio::test]
async fn balance_crossings_send_credits_low_and_depleted_once_each() {
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let (org, key) = app.funded_org("requests", 3).await;
    subscribe(
        &app,
        &org,
        &json!({"url": receiver.url, "events": ["credits.low", "credits.depleted"], "credits_low_threshold": 2}),
    )
    .await;

    for _ in 0..3 {
        assert_eq!(
            app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
            200
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let accepted = receiver
        .wait_for("low and depleted", |a| a.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let types: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|r| event_of(r)["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(types, ["credits.low", "credits.depleted"]);
    assert_eq!(event_of(&accepted[0])["data"]["threshold"], 2);
    assert_eq!(event_of(&accepted[1])["data"]["balance"], 0);
}

#[tokio::test]
async fn usage_batch_summarises_new_usage() {
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let (org, key) = app.funded_org("tokens", 1_000_000).await;
    subscribe(
        &app,
        &org,
        &json!({"url": receiver.url, "events": ["usage.batch"]}),
    )
    .await;

    for _ in 0..2 {
        assert_eq!(
            app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
            200
        );
    }
    let accepted = receiver
        .wait_for("usage batches of both calls", |a| batch_calls(a) >= 2)
        .await;

    assert_eq!(batch_calls(&accepted), 2);
    let data = &event_of(&accepted[0])["data"];
    assert_eq!(data["unit"], "tokens");
    assert_eq!(data["by_model"][0]["model"], "gpt-4o-mini");
    assert_eq!(
        data["cost"],
        data["prompt_tokens"].as_i64().unwrap() + data["completion_tokens"].as_i64().unwrap()
    );
}

/// The calls that `usage.batch` events count together.
fn batch_calls(batches: &[Received]) -> i64 {
    batches
        .iter()
        .map(|b| event_of(b)["data"]["calls"].as_i64().unwrap())
        .sum()
}

/// Inserts a usage record of one call for `org` through `conn` (committed
/// at once, or with the transaction `conn` is in) and answers its id.
async fn insert_usage_record(conn: &mut AnyConnection, org: &str, request_id: &str) -> i64 {
    sqlx::query_scalar(
        "INSERT INTO usage_records (request_id, organization_id, api_key_id, model, provider, \
         prompt_tokens, completion_tokens, cached_tokens, cache_write_tokens, cost, \
         list_cost_usd_micros, byok, stream, status, latency_ms, created_at) \
         VALUES ($1, $2, NULL, 'gpt-4o-mini', 'mock', 10, 5, 0, 0, 15, 3, FALSE, FALSE, 'ok', 1, $3) \
         RETURNING id",
    )
    .bind(request_id)
    .bind(org)
    .bind(tollgate_core::time::now_millis())
    .fetch_one(conn)
    .await
    .unwrap()
}

async fn usage_cursor(conn: &mut AnyConnection, org: &str) -> i64 {
    sqlx::query_scalar("SELECT usage_cursor FROM webhook_subscriptions WHERE organization_id = $1")
        .bind(org)
        .fetch_one(conn)
        .await
        .unwrap()
}

/// Whether some transaction waits for a lock on `usage_records`.
async fn usage_lock_awaited(conn: &mut AnyConnection) -> bool {
    let waiting: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pg_locks WHERE NOT granted AND locktype = 'relation' \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND relation = CAST('usage_records' AS regclass)",
    )
    .fetch_one(conn)
    .await
    .unwrap();
    waiting > 0
}

/// SQLite has one writer at a time, so its usage ids commit in order: the
/// interleavings below cannot happen there.
fn skipped_on_sqlite() -> bool {
    let sqlite = test_backend() == Backend::Sqlite;
    if sqlite {
        eprintln!(
            "skipped on SQLite: one writer at a time, so usage ids commit in order \
             (run with TOLLGATE_TEST_DATABASE=postgres)"
        );
    }
    sqlite
}

/// A settlement that took the lower usage id and has not committed yet
/// (`open`), while another connection (`other`) committed a record with a
/// higher id (`higher`).
async fn lower_id_left_open(
    app: &TestApp,
    org: &str,
) -> (sqlx::Transaction<'static, sqlx::Any>, AnyConnection, i64) {
    let late = sqlx::AnyPool::connect(&app.database_url).await.unwrap();
    let mut other = AnyConnection::connect(&app.database_url).await.unwrap();
    let mut open = late.begin().await.unwrap();
    let lower = insert_usage_record(&mut open, org, "req_late").await;
    let higher = insert_usage_record(&mut other, org, "req_early").await;
    assert!(lower < higher);
    (open, other, higher)
}

#[tokio::test]
async fn usage_batch_counts_a_record_that_commits_after_a_higher_id() {
    if skipped_on_sqlite() {
        return;
    }
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("tokens").await;
    subscribe(
        &app,
        &org,
        &json!({"url": receiver.url, "events": ["usage.batch"]}),
    )
    .await;
    let (open, mut other, higher) = lower_id_left_open(&app, &org).await;
    // A summary round runs meanwhile: it waits for the open settlement
    // (without the fix, it summarises the higher id and moves the cursor).
    let deadline = Instant::now() + Duration::from_secs(10);
    while !usage_lock_awaited(&mut other).await && usage_cursor(&mut other, &org).await == 0 {
        assert!(Instant::now() < deadline, "no usage summary round started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    open.commit().await.unwrap();

    let accepted = receiver
        .wait_for("usage batches of both records", |a| batch_calls(a) >= 2)
        .await;
    assert_eq!(batch_calls(&accepted), 2);
    assert_eq!(usage_cursor(&mut other, &org).await, higher);
}

/// A `usage.batch` subscription made while a settlement that took a lower
/// id is still open (and a higher id has committed): that record must either
/// count as usage from before the subscription, committed before it was
/// made, or be sent. Without waiting for it, the creation starts the cursor
/// at the higher id, the record commits after the subscription exists, and
/// no batch ever sends it.
#[tokio::test]
async fn usage_batch_subscription_made_during_a_settlement_loses_no_record() {
    if skipped_on_sqlite() {
        return;
    }
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("tokens").await;
    let (open, mut other, _) = lower_id_left_open(&app, &org).await;

    // The subscription is made meanwhile; the settlement commits once the
    // creation waits for it, or (without the fix) once it has answered.
    let created = AtomicBool::new(false);
    let create = async {
        subscribe(
            &app,
            &org,
            &json!({"url": receiver.url, "events": ["usage.batch"]}),
        )
        .await;
        created.store(true, Ordering::SeqCst);
    };
    let commit = async {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !usage_lock_awaited(&mut other).await && !created.load(Ordering::SeqCst) {
            assert!(
                Instant::now() < deadline,
                "the creation neither waited nor answered"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let after_creation = created.load(Ordering::SeqCst);
        open.commit().await.unwrap();
        after_creation
    };
    let ((), lower_committed_after_creation) = tokio::join!(create, commit);
    let after = insert_usage_record(&mut other, &org, "req_after").await;

    let accepted = receiver
        .wait_for("a usage batch", |a| batch_calls(a) >= 1)
        .await;
    // Sent: the records that committed once the subscription existed.
    let expected = if lower_committed_after_creation { 2 } else { 1 };
    assert_eq!(
        batch_calls(&accepted),
        expected,
        "the record with the lower id committed after the creation answered: \
         {lower_committed_after_creation}"
    );
    assert_eq!(usage_cursor(&mut other, &org).await, after);
}

#[tokio::test]
async fn budget_exceeded_is_sent_once_per_key_and_period() {
    let receiver = Receiver::start(0).await;
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mut settings = tollgate_api::Settings::for_database(&db.url);
    settings.admin_token = Some(tollgate_tests::ADMIN_TOKEN.into());
    settings.master_key = Some(test_master_key());
    // Its journal goes into the test's directory, not ./tollgate-data.
    settings.data_dir = Some(dir.0.clone());
    fast_worker(&mut settings);
    let gateway = tollgate_api::start(&settings).await.unwrap();
    let webhooks = gateway.state.webhooks.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(gateway.serve(listener, async {
        let _ = stopped.await;
    }));
    let client = tollgate_tests::client();
    let post = |path: String, body: Value| {
        let request = client
            .post(format!("{base}{path}"))
            .bearer_auth(tollgate_tests::ADMIN_TOKEN)
            .json(&body);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let org = post(
        "/api/v1/organizations".into(),
        json!({"name": "Acme", "billing_mode": "usd"}),
    )
    .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    post(
        format!("/api/v1/organizations/{org}/webhooks"),
        json!({"url": receiver.url, "events": ["budget.exceeded"]}),
    )
    .await;
    let refusal = |period_started_at| tollgate_webhooks::BudgetExceeded {
        organization_id: &org,
        api_key_id: "key_1",
        budget: 1_000_000,
        spent: 1_000_200,
        period: "daily",
        period_started_at,
    };

    for period_started_at in [86_400_000, 86_400_000, 2 * 86_400_000] {
        webhooks
            .budget_exceeded(&refusal(period_started_at))
            .await
            .unwrap();
    }
    let accepted = receiver
        .wait_for("two budget events", |a| a.len() >= 2)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(receiver.accepted().len(), 2, "one per period");
    let event = event_of(&accepted[0]);
    assert_eq!(event["type"], "budget.exceeded");
    assert_eq!(event["data"]["api_key_id"], "key_1");
    assert_eq!(event["data"]["budget"], 1_000_000);
    let _ = stop.send(());
}

#[tokio::test]
async fn webhooks_to_internal_addresses_are_refused_by_default() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let path = format!("/api/v1/organizations/{org}/webhooks");

    let metadata = app
        .admin_post(
            &path,
            &json!({"url": "http://169.254.169.254/latest/meta-data", "events": ["credits.granted"]}),
        )
        .await;
    let loopback = app
        .admin_post(
            &path,
            &json!({"url": "http://localhost:8080/", "events": ["credits.granted"]}),
        )
        .await;

    assert!(message_of(&expect_error(metadata, 400).await).contains("public address"));
    assert!(message_of(&expect_error(loopback, 400).await).contains("`url`"));
}

#[tokio::test]
async fn webhooks_to_ipv6_forms_of_internal_ipv4_addresses_are_refused() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let path = format!("/api/v1/organizations/{org}/webhooks");

    for host in [
        "[64:ff9b::7f00:1]",    // NAT64 of 127.0.0.1
        "[64:ff9b::a9fe:a9fe]", // NAT64 of 169.254.169.254
        "[2002:7f00:1::1]",     // 6to4 of 127.0.0.1
        "[2002:c0a8:101::1]",   // 6to4 of 192.168.1.1
        "[::127.0.0.1]",        // IPv4-compatible
        "[::ffff:10.0.0.1]",    // IPv4-mapped
        "[::ffff:0:127.0.0.1]", // IPv4-translated
        "[2001:0:7f00:1::1]",   // Teredo, loopback server
    ] {
        let url = format!("http://{host}:8080/hook");
        let created = app
            .admin_post(&path, &json!({"url": url, "events": ["credits.granted"]}))
            .await;

        assert!(
            message_of(&expect_error(created, 400).await).contains("public address"),
            "{host}"
        );
    }
    let public = app
        .admin_post(
            &path,
            &json!({"url": "https://[64:ff9b::808:808]/hook", "events": ["credits.granted"]}),
        )
        .await;
    assert_eq!(public.status(), 201, "NAT64 of a public address");
}

#[tokio::test]
async fn a_delivery_is_marked_failed_after_the_last_attempt() {
    let receiver = Receiver::start(usize::MAX).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, |s| {
        fast_worker(s);
        s.webhook_max_attempts = 2;
    })
    .await;
    let org = app.create_org("usd").await;
    let created = subscribe_to_grants(&app, &org, &receiver).await;

    app.grant(&org, 10).await;
    let mut delivery = Value::Null;
    for _ in 0..100 {
        let page = deliveries(&app, &org, &created).await;
        delivery = page["data"][0].clone();
        if delivery["status"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    assert_eq!(delivery["status"], "failed", "{delivery}");
    assert_eq!(delivery["attempts"].as_array().unwrap().len(), 2);
    assert!(delivery["finished_at"].is_i64());
    assert_eq!(receiver.attempts().len(), 2, "no attempt after giving up");
    assert!(receiver.accepted().is_empty());
    assert_eq!(attempts_metric(&app).await, outcomes(0.0, 1.0, 1.0));
}

#[tokio::test]
async fn a_key_refused_by_its_budget_sends_one_signed_budget_exceeded_event() {
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("requests").await;
    app.grant(&org, 100).await;
    let created = subscribe(
        &app,
        &org,
        &json!({"url": receiver.url, "events": ["budget.exceeded"]}),
    )
    .await;
    let secret = created["secret"].as_str().unwrap();
    let (key_id, key) = app.budgeted_key(&org, 2, "daily").await;

    for _ in 0..2 {
        assert_eq!(
            app.chat(&key, &chat_body("gpt-4o-mini")).await.status(),
            200
        );
    }
    for _ in 0..3 {
        let refused = expect_error(app.chat(&key, &chat_body("gpt-4o-mini")).await, 402).await;
        assert_eq!(refused["param"], "budget", "{refused}");
    }
    let accepted = receiver
        .wait_for("the budget.exceeded event", |a| !a.is_empty())
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(
        receiver.accepted().len(),
        1,
        "one event for three refused calls in one period"
    );
    assert!(signature_is_valid(secret, &accepted[0]));
    let event = event_of(&accepted[0]);
    assert_eq!(event["type"], "budget.exceeded");
    let data = &event["data"];
    assert_eq!(data["organization_id"], org.as_str());
    assert_eq!(data["api_key_id"], key_id.as_str());
    assert_eq!(data["budget"], 2);
    assert_eq!(data["spent"], 2);
    assert_eq!(data["period"], "daily");
    let started = data["period_started_at"].as_i64().unwrap();
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    assert_eq!(started % 86_400, 0, "a UTC midnight, in seconds");
    assert!(started <= now && now - started <= 86_400, "{started}");
}

#[tokio::test]
async fn a_delivered_body_is_the_documented_webhook_payload() {
    let receiver = Receiver::start(0).await;
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("usd").await;
    subscribe_to_grants(&app, &org, &receiver).await;
    let doc: Value = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    app.grant(&org, 1_000_000).await;
    let accepted = receiver.wait_for("the delivery", |a| !a.is_empty()).await;

    let event = event_of(&accepted[0]);
    let schema = &doc["components"]["schemas"]["WebhookPayload"];
    let mut documented: Vec<&str> = schema["properties"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let mut sent: Vec<&str> = event
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    documented.sort_unstable();
    sent.sort_unstable();
    assert_eq!(sent, documented, "{event}");
    let events = &doc["components"]["schemas"]["WebhookEvent"]["enum"];
    assert!(
        events.as_array().unwrap().contains(&event["type"]),
        "{event}"
    );
    assert!(event["data"].is_object(), "{event}");
    let timestamp = event["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() == 24 && timestamp.ends_with('Z'),
        "{timestamp}"
    );
}

/// A subscription made while the usage records stay locked past the lock's
/// timeout: a 503 to retry (not a 500), and no subscription is left.
#[tokio::test]
async fn a_subscription_that_cannot_take_the_usage_lock_is_a_503_to_retry() {
    if skipped_on_sqlite() {
        return;
    }
    let app = TestApp::spawn_with(DEFAULT_CONFIG, fast_worker).await;
    let org = app.create_org("tokens").await;
    let mut holder = AnyConnection::connect(&app.database_url).await.unwrap();
    let mut held = holder.begin().await.unwrap();
    sqlx::query("LOCK TABLE usage_records IN EXCLUSIVE MODE")
        .execute(&mut *held)
        .await
        .unwrap();

    let response = app
        .admin_post(
            &format!("/api/v1/organizations/{org}/webhooks"),
            &json!({"url": "https://billing.example.com/hook", "events": ["usage.batch"]}),
        )
        .await;

    let error = expect_error(response, 503).await;
    assert_eq!(error["code"], "service_unavailable");
    held.rollback().await.unwrap();
    let listed = app
        .admin_get(&format!("/api/v1/organizations/{org}/webhooks"))
        .await;
    assert_eq!(listed.status(), 200);
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0));
}
