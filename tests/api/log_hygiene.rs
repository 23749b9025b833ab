//! Logs never contain a provider key, an API key or a prompt (contract
//! section 1), even at `RUST_LOG=debug`: the real binary, a real provider
//! key in its configuration, and its output (stdout and stderr) read in full.

use secrecy::ExposeSecret;
use serde_json::{Value, json};
use tollgate_tests::binary::GatewayProcess;
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{ADMIN_TOKEN, DEFAULT_CONFIG, MockProvider, TestDatabase, client};

const PROVIDER_KEY: &str = "sk-SECRET-provider-key-3b8d1f0e";
const PROMPT_MARKER: &str = "PROMPT-MARKER-vermilion-okapi-5521";
const EMBEDDING_MARKER: &str = "EMBEDDING-MARKER-cobalt-tapir-9034";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_hold_no_provider_key_api_key_or_prompt() {
    logs_of_a_session("text").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_have_one_line_per_call_and_hold_no_secret() {
    let (log, request_id, key_id) = logs_of_a_session("json").await;

    let calls: Vec<Value> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["target"] == "tollgate::call")
        .collect();
    // The plain call, the stream and the embedding; the refused key never
    // reached the pipeline.
    assert_eq!(calls.len(), 3, "{log}");
    let plain = &calls
        .iter()
        .find(|c| c["fields"]["request_id"] == request_id.as_str())
        .unwrap()["fields"];
    assert_eq!(plain["operation"], "chat");
    assert_eq!(plain["model"], "gpt-4o-mini");
    assert_eq!(plain["requested_model"], "gpt-4o-mini");
    assert_eq!(plain["provider"], "mock");
    assert_eq!(plain["status"], 200);
    assert_eq!(plain["outcome"], "ok");
    assert_eq!(plain["api_key_id"], key_id.as_str());
    assert!(plain["prompt_tokens"].as_i64().unwrap() > 0);
    assert_eq!(
        plain["completion_tokens"],
        tollgate_tests::CHAT_COMPLETION_TOKENS
    );
    assert!(plain["cost"].as_i64().unwrap() > 0);
    assert_eq!(plain["attempts"], 1);
    assert_eq!(plain["stream"], false);
    assert!(plain["duration_ms"].is_i64());
    assert!(plain["overhead_ms"].is_i64(), "{plain}");
    assert!(
        plain["organization_id"]
            .as_str()
            .unwrap()
            .starts_with("org_")
    );
    let streamed = &calls
        .iter()
        .find(|c| c["fields"]["stream"] == true)
        .unwrap()["fields"];
    assert!(streamed["time_to_first_token_ms"].is_i64(), "{streamed}");
    assert!(streamed["completion_tokens"].as_i64().unwrap() > 0);
    let embedding = &calls
        .iter()
        .find(|c| c["fields"]["operation"] == "embeddings")
        .unwrap()["fields"];
    assert_eq!(embedding["model"], "text-embedding-3-small");
    assert_eq!(embedding["api_key_id"], key_id.as_str());
}

/// A gateway process logging in `log_format` at `debug`, a plain call, a
/// stream, an embedding and a refused key: its whole log, checked for
/// secrets, the plain call's request id and the key's id.
async fn logs_of_a_session(log_format: &str) -> (String, String, String) {
    let dir = TempDir::new();
    let db = TestDatabase::create(&dir.0).await;
    let mock = MockProvider::start().await;
    let config = dir.0.join("tollgate.yaml");
    std::fs::write(
        &config,
        DEFAULT_CONFIG
            .replace("{MOCK}", &mock.base_url())
            .replace("sk-platform-key", PROVIDER_KEY),
    )
    .unwrap();
    let master_key = tollgate_tests::test_master_key();
    let (gateway, log) = GatewayProcess::serve_capturing(
        &dir.0,
        &[
            ("RUST_LOG", "debug"),
            ("TOLLGATE_LOG_FORMAT", log_format),
            ("DATABASE_URL", &db.url),
            ("TOLLGATE_MASTER_KEY", master_key.expose_secret()),
            ("TOLLGATE_CONFIG", config.to_str().unwrap()),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let http = client();
    let url = |path: &str| format!("{}{path}", gateway.base_url);
    let org: Value = http
        .post(url("/api/v1/organizations"))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "Acme", "billing_mode": "usd"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let org = org["id"].as_str().unwrap().to_owned();
    http.post(url(&format!("/api/v1/organizations/{org}/credits/grants")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"amount": 10_000_000}))
        .send()
        .await
        .unwrap();
    let created: Value = http
        .post(url(&format!("/api/v1/organizations/{org}/api-keys")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"name": "k"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let api_key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["id"].as_str().unwrap().to_owned();
    let secret = api_key.rsplit_once('_').unwrap().1.to_owned();
    let messages = json!([{"role": "user", "content": format!("{PROMPT_MARKER} tell me a story")}]);

    // A plain call, a streamed one, an embedding, and a key with a wrong secret.
    let plain = http
        .post(url("/v1/chat/completions"))
        .bearer_auth(&api_key)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    let request_id = plain.headers()["x-tollgate-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    plain.text().await.unwrap();
    let streamed = http
        .post(url("/v1/chat/completions"))
        .bearer_auth(&api_key)
        .json(&json!({"model": "gpt-4o-mini", "stream": true, "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 200);
    streamed.text().await.unwrap();
    let embedded = http
        .post(url("/v1/embeddings"))
        .bearer_auth(&api_key)
        .json(&json!({"model": "text-embedding-3-small", "input": EMBEDDING_MARKER}))
        .send()
        .await
        .unwrap();
    assert_eq!(embedded.status(), 200);
    let wrong_secret = format!("{}{}", &api_key[..api_key.len() - 8], "WRONGxyz");
    let refused = http
        .post(url("/v1/chat/completions"))
        .bearer_auth(&wrong_secret)
        .json(&json!({"model": "gpt-4o-mini", "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    // The provider really was given the key and the prompt.
    let seen = mock.requests();
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {PROVIDER_KEY}").as_str())
    );
    assert!(seen[0].body.to_string().contains(PROMPT_MARKER));
    assert!(gateway.terminate().success());

    let log = log.finish();
    assert!(
        log.contains(&request_id),
        "the debug log was captured and names the request:\n{log}"
    );
    for (what, needle) in [
        ("the provider key", PROVIDER_KEY),
        ("the organization API key", api_key.as_str()),
        ("the API key's secret", secret.as_str()),
        ("a presented wrong key", wrong_secret.as_str()),
        ("the prompt", PROMPT_MARKER),
        ("the embedding input", EMBEDDING_MARKER),
        ("the admin token", ADMIN_TOKEN),
        ("the master key", master_key.expose_secret()),
    ] {
        assert!(!log.contains(needle), "the log contains {what}:\n{log}");
    }
    (log, request_id, key_id)
}
