//! `tollgate serve --demo` (TOLLGATE_DEMO): the offline quick start. The real
//! binary, with no provider key and no catalog, answers the demo models
//! plain, streamed and as embeddings, and bills them like any model.

use serde_json::{Value, json};
use std::time::Duration;
use tollgate_tests::binary::{GatewayProcess, command, exit_within, free_port};
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{ADMIN_TOKEN, client, org_key_at, sse_data};

#[tokio::test]
async fn the_demo_answers_chat_streams_and_embeddings_billed_with_no_provider_key() {
    let dir = TempDir::new();
    let gateway = GatewayProcess::serve(
        &dir.0,
        &[
            ("TOLLGATE_DEMO", "true"),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
        ],
    )
    .await;
    let http = client();
    let url = |path: &str| format!("{}{path}", gateway.base_url);
    let key = org_key_at(
        &http,
        &gateway.base_url,
        "usd",
        1_000_000,
        json!({"name": "demo"}),
    )
    .await;
    let key = key.as_str();
    let call = |path: &str, body: Value| http.post(url(path)).bearer_auth(key).json(&body).send();
    let hello = json!([{"role": "user", "content": "Hello"}]);

    let chat = call(
        "/v1/chat/completions",
        json!({"model": "demo-chat", "messages": hello}),
    )
    .await
    .unwrap();
    let stream = call(
        "/v1/chat/completions",
        json!({"model": "demo-chat", "stream": true, "messages": hello}),
    )
    .await
    .unwrap();
    let embedding = call(
        "/v1/embeddings",
        json!({"model": "demo-embed", "input": "Hello"}),
    )
    .await
    .unwrap();

    assert_eq!(chat.status(), 200);
    let cost: i64 = chat.headers()["x-tollgate-cost"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(cost > 0, "billed at the demo model's price");
    let body: Value = chat.json().await.unwrap();
    let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(answer.contains("demo"), "{answer}");
    assert_eq!(stream.status(), 200);
    let events = sse_data(&stream.text().await.unwrap());
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    assert_eq!(embedding.status(), 200);
    let vectors: Value = embedding.json().await.unwrap();
    assert!(vectors["data"][0]["embedding"].as_array().unwrap().len() > 1);
}

#[test]
fn the_demo_refuses_a_configuration_file_of_its_own() {
    let dir = TempDir::new();
    let config = dir.0.join("tollgate.yaml");
    std::fs::write(&config, "models: []\n").unwrap();
    let listen = format!("127.0.0.1:{}", free_port());

    let (status, log) = exit_within(
        command(&dir.0, &[("TOLLGATE_CONFIG", config.to_str().unwrap())])
            .args(["serve", "--demo", "--listen", &listen]),
        Duration::from_secs(30),
    );

    assert!(!status.success());
    assert!(
        log.contains("--demo") && log.contains("TOLLGATE_CONFIG"),
        "{log}"
    );
}

#[test]
fn the_demo_is_refused_in_production() {
    let dir = TempDir::new();
    let listen = format!("127.0.0.1:{}", free_port());
    let database = format!("sqlite://{}", dir.0.join("prod.db").display());

    let (status, log) = exit_within(
        command(
            &dir.0,
            &[
                ("TOLLGATE_ENV", "production"),
                ("TOLLGATE_MASTER_KEY", "a-production-master-passphrase"),
                ("DATABASE_URL", &database),
            ],
        )
        .args(["serve", "--demo", "--listen", &listen]),
        Duration::from_secs(30),
    );

    assert!(!status.success(), "{log}");
    assert!(
        log.contains("--demo") && log.contains("production"),
        "{log}"
    );
}
