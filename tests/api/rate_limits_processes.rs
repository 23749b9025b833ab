//! Rate limits across two real `tollgate` processes sharing one Redis and
//! one database: a key's limit holds for the pair, not once per process.

use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_tests::binary::GatewayProcess;
use tollgate_tests::{
    ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider, TestDatabase, chat_at_once, client, org_key_at,
    test_master_key,
};

/// What the gateway processes of a test share: a database, the mock
/// provider, a configuration, a master key and a Redis prefix of their own.
struct Setup {
    db: TestDatabase,
    mock: MockProvider,
    config: String,
    master_key: secrecy::SecretString,
    prefix: String,
}

impl Setup {
    async fn new(dir: &std::path::Path) -> Setup {
        let db = TestDatabase::create(dir).await;
        let mock = MockProvider::start().await;
        let config = dir.join("tollgate.yaml");
        std::fs::write(&config, DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url())).unwrap();
        Setup {
            db,
            mock,
            config: config.display().to_string(),
            master_key: test_master_key(),
            prefix: format!("tollgate-test-{}", uuid::Uuid::new_v4()),
        }
    }

    fn envs<'a>(&'a self, redis_url: &'a str) -> [(&'a str, &'a str); 6] {
        [
            ("DATABASE_URL", self.db.url.as_str()),
            ("TOLLGATE_CONFIG", self.config.as_str()),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            ("TOLLGATE_MASTER_KEY", self.master_key.expose_secret()),
            ("REDIS_URL", redis_url),
            ("TOLLGATE_REDIS_PREFIX", self.prefix.as_str()),
        ]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_sharing_redis_admit_exactly_the_rpm_limit() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let setup = Setup::new(&dir.0).await;
    let mock = &setup.mock;
    let envs = setup.envs("redis://127.0.0.1:6379");
    let a = GatewayProcess::serve(&dir.0, &envs).await;
    let b = GatewayProcess::serve(&dir.0, &envs).await;
    let http = client();
    let key = org_key_at(
        &http,
        &a.base_url,
        "requests",
        100,
        json!({"name": "shared", "rpm_limit": 5}),
    )
    .await;

    // Fourteen calls at once, seven on each process.
    let answers = chat_at_once(&http, &[&a.base_url, &b.base_url], &key, 14).await;

    let ok = answers.iter().filter(|(s, _)| *s == 200).count();
    let limited: Vec<bool> = answers
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, retry_after)| *retry_after)
        .collect();
    assert_eq!((ok, limited.len()), (5, 9), "{answers:?}");
    assert!(limited.iter().all(|&r| r), "every 429 has Retry-After");
    assert_eq!(mock.request_count(), 5);
}

/// During a Redis outage every rate-limited call fails over to the process's
/// own counters: the log says so once (then at most a summary every 30 s),
/// not once per call, and the failures are counted in the metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_one_warning_and_a_counted_metric_not_a_line_per_call() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let setup = Setup::new(&dir.0).await;
    // Nothing listens there: Redis is down from the start.
    let (gateway, log) =
        GatewayProcess::serve_capturing(&dir.0, &setup.envs("redis://127.0.0.1:1")).await;
    let http = client();
    let key = org_key_at(
        &http,
        &gateway.base_url,
        "requests",
        100,
        json!({"name": "limited", "rpm_limit": 1000}),
    )
    .await;

    let calls: u32 = 30;
    for _ in 0..calls {
        let answers = chat_at_once(&http, &[&gateway.base_url], &key, 1).await;
        assert_eq!(answers[0].0, 200, "calls go on without Redis");
    }

    let text = log.text();
    let warnings = text
        .lines()
        .filter(|l| l.contains("Redis is unreachable: rate limits"))
        .count();
    assert_eq!(warnings, 1, "{text}");
    let metrics = tollgate_tests::metrics::scrape(&http, &gateway.base_url).await;
    let redis_errors = tollgate_tests::metrics::value(
        &metrics,
        "tollgate_dependency_errors_total",
        &[("dependency", "redis")],
    );
    assert!(
        redis_errors >= f64::from(calls),
        "{redis_errors} < {calls}\n{metrics}"
    );
}
