//! Rate limits across two real `tollgate` processes sharing one Redis and
//! one database: a key's limit holds for the pair, not once per process.

use secrecy::ExposeSecret;
use serde_json::json;
use tollgate_tests::binary::GatewayProcess;
use tollgate_tests::{
    ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider, TestDatabase, chat_at_once, client, org_key_at,
    test_master_key,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateway_processes_sharing_redis_admit_exactly_the_rpm_limit() {
    let dir = tollgate_tests::tempdir::TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let config = dir.0.join("tollgate.yaml");
    std::fs::write(&config, DEFAULT_CONFIG.replace("{MOCK}", &mock.base_url())).unwrap();
    let master_key = test_master_key();
    let prefix = format!("tollgate-test-{}", uuid::Uuid::new_v4());
    let config = config.display().to_string();
    let envs = [
        ("DATABASE_URL", db.url.as_str()),
        ("TOLLGATE_CONFIG", config.as_str()),
        ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ("TOLLGATE_MASTER_KEY", master_key.expose_secret()),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("TOLLGATE_REDIS_PREFIX", prefix.as_str()),
    ];
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
