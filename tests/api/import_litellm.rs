//! `tollgate import litellm`: LiteLLM's own example configs (fixtures in
//! crates/import/fixtures/litellm, each citing its source) become configs
//! that the gateway starts with and that route as LiteLLM would: the model
//! name the client sends reaches the upstream model LiteLLM would call, and
//! fallbacks are honoured. Providers are pointed at the mock provider.

use serde_json::json;
use tollgate_tests::binary::{command, exit_within};
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{Fault, TestApp, chat_body};

fn fixture(name: &str) -> String {
    let path = format!(
        "{}/../crates/import/fixtures/litellm/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The imported config with every provider at the mock (OpenAI kinds at
/// its `/v1`, Anthropic and Gemini at its root) and every key reference
/// set, as the operator's environment would.
fn against_mock(yaml: &str) -> String {
    let mut kind = "openai";
    let mut out = String::new();
    for line in yaml.lines() {
        let indent = &line[..line.len() - line.trim_start().len()];
        let field = line.trim_start();
        if let Some(k) = field.strip_prefix("kind: ") {
            kind = if k.trim() == "openai" {
                "openai"
            } else {
                "native"
            };
        }
        if field.starts_with("base_url: ") {
            let url = if kind == "openai" {
                "{MOCK}"
            } else {
                "{MOCK_ROOT}"
            };
            out.push_str(&format!("{indent}base_url: \"{url}\"\n"));
        } else if field.starts_with("api_key: ") || field == "keyless: true" {
            // The mock, unlike a self-hosted endpoint, wants a key.
            out.push_str(&format!("{indent}api_key: sk-imported-test\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

async fn imported_app(name: &str) -> TestApp {
    let conversion = tollgate_import::convert(&fixture(name)).unwrap();
    assert!(!conversion.yaml.contains("os.environ"), "{name}");
    TestApp::spawn_with_config(&against_mock(&conversion.yaml)).await
}

/// A model name clients send, and the upstream names LiteLLM would send.
type Route = (&'static str, &'static [&'static str]);

/// Each fixture and its routes.
const ROUTES: &[(&str, &[Route])] = &[
    (
        "configs-quick-start.yaml",
        &[
            ("gpt-4o", &["gpt-4o-eu", "gpt-4o-ca"]),
            ("vllm-models", &["facebook/opt-125m"]),
        ],
    ),
    (
        "configs-load-balancing.yaml",
        &[
            ("zephyr-beta", &["HuggingFaceH4/zephyr-7b-beta"]),
            ("gpt-4o", &["gpt-4o"]),
            ("gpt-3.5-turbo-16k", &["gpt-3.5-turbo-16k"]),
            ("gpt-4", &["gpt-4o"]),
        ],
    ),
    (
        "reliability-retries-cooldowns.yaml",
        &[
            ("zephyr-beta", &["HuggingFaceH4/zephyr-7b-beta"]),
            ("gpt-3.5-turbo", &["gpt-3.5-turbo"]),
        ],
    ),
    (
        "reliability-provider-failover.yaml",
        &[
            ("gpt-4", &["gpt-4", "chatgpt-v-2"]),
            ("anthropic-claude", &["claude-3-opus-20240229"]),
        ],
    ),
    (
        "example-load-balancer.yaml",
        &[("gpt-3.5-turbo", &["gpt-3.5-turbo"])],
    ),
    (
        "example-azure-config.yaml",
        &[
            ("gpt-4-team1", &["chatgpt-v-2"]),
            ("gpt-4-team2", &["gpt-4"]),
        ],
    ),
];

#[tokio::test]
async fn each_litellm_example_serves_its_model_names_with_their_upstream_models() {
    for &(name, routes) in ROUTES {
        let app = imported_app(name).await;
        let (org, key) = app.funded_org("usd", 100_000_000).await;
        for &(model, upstreams) in routes {
            let answer = app.chat(&key, &chat_body(model)).await;
            assert_eq!(answer.status(), 200, "{name}: {model}");
            assert_eq!(answer.headers()["x-tollgate-model"], model, "{name}");
            let seen = app.mock.requests();
            let sent = seen.last().unwrap().body["model"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                upstreams.contains(&sent.as_str()),
                "{name}: {model} reached the provider as {sent}, not one of {upstreams:?}"
            );
        }
        assert_eq!(app.usage(&org).await.len(), routes.len(), "{name}: billed");
    }
}

#[tokio::test]
async fn litellm_fallbacks_are_honoured_after_every_deployment_failed() {
    let app = imported_app("reliability-retries-cooldowns.yaml").await;
    let (_org, key) = app.funded_org("usd", 100_000_000).await;
    // zephyr-beta's three deployments fail; LiteLLM then falls back to gpt-3.5-turbo.
    for _ in 0..3 {
        app.mock.push_fault(Fault::status(500));
    }

    let answer = app.chat(&key, &chat_body("zephyr-beta")).await;

    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-tollgate-model"], "gpt-3.5-turbo");
    assert_eq!(answer.headers()["x-tollgate-attempts"], "4");
}

#[tokio::test]
async fn a_fallback_to_another_provider_kind_answers_in_the_callers_format() {
    let app = imported_app("reliability-provider-failover.yaml").await;
    let (_org, key) = app.funded_org("usd", 100_000_000).await;
    app.mock.push_fault(Fault::status(503));
    app.mock.push_fault(Fault::status(503));

    let answer = app.chat(&key, &chat_body("gpt-4")).await;

    assert_eq!(answer.status(), 200);
    assert_eq!(answer.headers()["x-tollgate-model"], "anthropic-claude");
    assert_eq!(answer.headers()["x-tollgate-provider"], "anthropic");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["object"], json!("chat.completion"));
}

#[tokio::test]
async fn the_import_command_writes_the_file_and_lists_what_it_left_out() {
    let dir = TempDir::new();
    let source = dir.0.join("config.yaml");
    std::fs::write(&source, fixture("example-load-balancer.yaml")).unwrap();
    let output = dir.0.join("tollgate.yaml");

    let (status, stderr) = exit_within(
        command(&dir.0, &[]).args([
            "import",
            "litellm",
            source.to_str().unwrap(),
            "--output",
            output.to_str().unwrap(),
        ]),
        std::time::Duration::from_secs(20),
    );

    assert!(status.success(), "{stderr}");
    let written = std::fs::read_to_string(&output).unwrap();
    assert!(written.contains("gpt-3.5-turbo"), "{written}");
    assert!(
        stderr.contains("import: ") && stderr.contains("`mistralai`"),
        "{stderr}"
    );
    for secret in ["sk-uj6F", "sk-Imn", "eYVX71"] {
        assert!(
            !written.contains(secret) && !stderr.contains(secret),
            "{secret} leaked"
        );
    }
}
