//! The admin console at `/console`: served by the binary, self-contained
//! (nothing loaded from elsewhere), and calling only operations the OpenAPI
//! document has. Its behaviour in a browser is checked by
//! `tests/console/run` (headless Chromium).

use serde_json::Value;
use tollgate_tests::TestApp;

const APP_JS: &str = include_str!("../../crates/api/src/console/app.js");

async fn get(app: &TestApp, path: &str) -> (u16, String, String) {
    let response = app.client.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

#[tokio::test]
async fn the_console_is_served_without_reaching_elsewhere() {
    let app = TestApp::spawn().await;

    for (path, kind) in [
        ("/console", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/client.js", "text/javascript"),
        ("/console/style.css", "text/css"),
    ] {
        let (status, content_type, body) = get(&app, path).await;

        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(
            !body.contains("https://") && !body.contains("http://") || path.ends_with(".js"),
            "{path} names another origin"
        );
    }
    let (_, _, html) = get(&app, "/console").await;
    assert!(
        !html.contains("http"),
        "the page loads only the gateway's files"
    );
}

#[tokio::test]
async fn every_operation_the_console_calls_is_in_the_document() {
    let app = TestApp::spawn().await;
    let (_, _, doc) = get(&app, "/openapi.json").await;
    let doc: Value = serde_json::from_str(&doc).unwrap();
    let documented: Vec<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .filter_map(|op| op["operationId"].as_str())
        .collect();
    let (_, _, client) = get(&app, "/console/client.js").await;

    let called = called_operations(APP_JS);

    assert!(called.len() >= 30, "only {} operations found", called.len());
    for name in &called {
        assert!(
            documented.contains(&name.as_str()),
            "app.js calls `{name}`, which the document does not have"
        );
        assert!(
            client.contains(&format!("\"{name}\": [")),
            "client.js lacks {name}"
        );
    }
}

/// The quoted names in the first argument of every `call(…)` of app.js
/// (`call("a", …)` or `call(x ? "a" : "b", …)`).
fn called_operations(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for piece in source.split("call(").skip(1) {
        let argument = piece.split([',', ')']).next().unwrap_or("");
        for (i, quoted) in argument.split('"').enumerate() {
            if i % 2 == 1 && !names.iter().any(|n| n == quoted) {
                names.push(quoted.to_owned());
            }
        }
    }
    names
}
