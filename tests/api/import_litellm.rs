//! `tollgate import litellm`: LiteLLM's own example configs (fixtures in
//! crates/import/fixtures/litellm, each citing its source) become configs
//! that the gateway starts with and that route as LiteLLM would: the model
//! name the client sends reaches the upstream model LiteLLM would call, and
//! fallbacks are honoured. Providers are pointed at the mock provider.

use serde_json::json;
use tollgate_tests::binary::{GatewayProcess, command, exit_within};
use tollgate_tests::tempdir::TempDir;
use tollgate_tests::{
    ADMIN_TOKEN, Fault, MockProvider, TestApp, TestDatabase, chat_body, client, org_key_at,
};

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

/// Runs `tollgate import litellm` on the fixture `name` in `dir`; returns
/// the config it wrote and what it printed on stderr.
fn import_command(dir: &TempDir, name: &str) -> (String, String) {
    let source = dir.0.join("litellm.yaml");
    std::fs::write(&source, fixture(name)).unwrap();
    let output = dir.0.join("imported.yaml");
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
    (std::fs::read_to_string(&output).unwrap(), stderr)
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

    let (written, stderr) = import_command(&dir, "example-load-balancer.yaml");

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

/// The whole path a user takes, with the real binary: `tollgate import
/// litellm` writes the file, and `tollgate serve --config` serves it with
/// the `os.environ/` keys read from its environment. Only the endpoints
/// move to the mock; each key reaches the mock with the upstream model of
/// its own LiteLLM deployment, and the two deployments of `gpt-4o` share
/// ten calls within their `rpm: 6` caps.
#[tokio::test]
async fn tollgate_serve_serves_an_imported_config_with_its_keys_from_the_environment() {
    let dir = TempDir::new();
    let (imported, stderr) = import_command(&dir, "configs-quick-start.yaml");
    for reference in ["${AZURE_API_KEY_EU}", "${AZURE_API_KEY_CA}"] {
        assert!(imported.contains(reference), "{imported}");
    }
    // The unmapped parts are named: Bedrock's two entries, the callbacks, the master key.
    for unmapped in ["bedrock", "success_callback", "master_key"] {
        assert!(
            stderr.contains(unmapped),
            "{unmapped} not reported: {stderr}"
        );
    }
    assert!(!imported.contains("sk-1234") && !stderr.contains("sk-1234"));

    // vLLM's `api_key: none` became a provider without a key.
    assert!(imported.contains("keyless: true"), "{imported}");

    let mock = MockProvider::start().await;
    let served: String = imported
        .lines()
        .map(|line| match line.split_once("base_url: ") {
            Some((indent, _)) => format!("{indent}base_url: {}\n", mock.base_url()),
            // The mock, unlike a self-hosted vLLM, wants a key.
            None if line.trim() == "keyless: true" => {
                line.replace("keyless: true", "api_key: ${VLLM_TEST_KEY}\n")
            }
            None => format!("{line}\n"),
        })
        .collect();
    let config = dir.0.join("tollgate.yaml");
    std::fs::write(&config, served).unwrap();
    let db = TestDatabase::create(&dir.0).await;
    let master_key = tollgate_tests::test_master_key();
    let gateway = GatewayProcess::serve(
        &dir.0,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("TOLLGATE_CONFIG", config.to_str().unwrap()),
            ("TOLLGATE_ADMIN_TOKEN", ADMIN_TOKEN),
            (
                "TOLLGATE_MASTER_KEY",
                secrecy::ExposeSecret::expose_secret(&master_key),
            ),
            ("AZURE_API_KEY_EU", "sk-eu-from-env"),
            ("AZURE_API_KEY_CA", "sk-ca-from-env"),
            ("VLLM_TEST_KEY", "sk-vllm-from-env"),
        ],
    )
    .await;
    let http = client();
    let key = org_key_at(
        &http,
        &gateway.base_url,
        "usd",
        100_000_000,
        json!({"name": "imported"}),
    )
    .await;
    let chat = |model: &'static str| {
        http.post(format!("{}/v1/chat/completions", gateway.base_url))
            .bearer_auth(&key)
            .json(&chat_body(model))
            .send()
    };

    for _ in 0..10 {
        let answer = chat("gpt-4o").await.unwrap();
        assert_eq!(answer.status(), 200);
        let cost: i64 = answer.headers()["x-tollgate-cost"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(cost > 0, "billed at gpt-4o's price");
    }
    let answer = chat("vllm-models").await.unwrap();
    assert_eq!(answer.status(), 200);

    let sent: Vec<(String, String)> = mock
        .requests()
        .iter()
        .map(|r| {
            (
                r.body["model"].as_str().unwrap_or_default().to_owned(),
                r.authorization.clone().unwrap_or_default(),
            )
        })
        .collect();
    let pair = |model: &str, key: &str| (model.to_owned(), format!("Bearer {key}"));
    let eu = pair("gpt-4o-eu", "sk-eu-from-env");
    let ca = pair("gpt-4o-ca", "sk-ca-from-env");
    let vllm = pair("facebook/opt-125m", "sk-vllm-from-env");
    assert_eq!(sent.len(), 11, "{sent:?}");
    assert!(sent[..10].iter().all(|s| *s == eu || *s == ca), "{sent:?}");
    // Each deployment within its `rpm: 6`, as LiteLLM caps it.
    let count = |p: &(String, String)| sent.iter().filter(|s| *s == p).count();
    assert!((4..=6).contains(&count(&eu)), "{sent:?}");
    assert!((4..=6).contains(&count(&ca)), "{sent:?}");
    assert_eq!(sent[10], vllm);
}
