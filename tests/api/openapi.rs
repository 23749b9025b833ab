//! The OpenAPI document: served at `/openapi.json`, identical to the
//! committed `openapi/openapi.json`, describing only routes that exist, and
//! describing real answers exactly (every field it lists, no field it does
//! not). `/docs` renders it without reaching the internet.
//!
//! `UPDATE_OPENAPI=1` rewrites `openapi/openapi.json` from the served
//! document instead of failing on a difference.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body};

fn committed_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../openapi/openapi.json")
}

async fn served(app: &TestApp) -> (String, Value) {
    let response = app
        .client
        .get(app.url("/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    let doc = serde_json::from_str(&text).unwrap();
    (text, doc)
}

#[tokio::test]
async fn served_document_is_the_committed_one() {
    let app = TestApp::spawn().await;
    let (text, doc) = served(&app).await;

    assert_eq!(doc["openapi"], "3.1.0");
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(committed_path(), &text).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(committed_path()).unwrap_or_default();
    assert!(
        committed == text,
        "openapi/openapi.json differs from GET /openapi.json: regenerate it with \
         `cargo run -p tollgate-api --bin tollgate -- openapi > openapi/openapi.json`"
    );
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;
    let mut operations = 0;

    for (path, item) in doc["paths"].as_object().unwrap() {
        let concrete = path
            .split('/')
            .map(|part| if part.starts_with('{') { "x" } else { part })
            .collect::<Vec<_>>()
            .join("/");
        for (method, _) in item.as_object().unwrap() {
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let response = app
                .client
                .request(method.clone(), app.url(&concrete))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body = response.text().await.unwrap();
            assert_ne!(status, 405, "{method} {path} is documented but not routed");
            assert!(
                !body.contains("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
            operations += 1;
        }
    }
    assert!(operations >= 28, "only {operations} operations documented");
}

#[tokio::test]
async fn every_operation_documents_its_errors_and_security() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;

    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let open = ["/health", "/ready", "/metrics", "/openapi.json", "/docs"]
                .contains(&path.as_str())
                || path == "/api/v1/auth/login"
                || path == "/api/v1/auth/accept-invitation";
            let security = op["security"].as_array().unwrap();
            if open {
                continue;
            }
            assert!(
                security.iter().any(|s| !s.as_object().unwrap().is_empty()),
                "{method} {path} has no security requirement"
            );
            assert!(
                op["responses"]["401"].is_object(),
                "{method} {path} does not document its 401"
            );
            assert!(op["operationId"].is_string(), "{method} {path}");
        }
    }
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    for scheme in ["api_key", "x_api_key", "admin_token"] {
        assert!(schemes.contains_key(scheme), "{scheme}");
    }
}

#[tokio::test]
async fn docs_page_is_self_contained() {
    let app = TestApp::spawn().await;

    let response = app.client.get(app.url("/docs")).send().await.unwrap();

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text().await.unwrap();
    assert!(html.contains("/openapi.json"));
    assert!(!html.contains("http://") && !html.contains("https://"));
    assert!(!html.contains("<script src") && !html.contains("<link"));
}

// ------------------------------------------------- answers match the schema

/// The schema of the JSON answer of `method path` with this status.
fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let content = &doc["paths"][path][method]["responses"][status.to_string()]["content"];
    let schema = &content["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "no JSON schema for {method} {path} {status}"
    );
    schema
}

fn resolve<'a>(doc: &'a Value, mut schema: &'a Value) -> &'a Value {
    while let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        schema = &doc["components"]["schemas"][name];
    }
    schema
}

/// Checks `value` against `schema`: types, required properties, and (when
/// `strict`: the management plane, whose answers are ours alone) no
/// property the schema does not list. The data plane relays providers'
/// extra fields (`logprobs`, `system_fingerprint`, …), which JSON Schema
/// allows. Enough of JSON Schema for the shapes utoipa generates.
fn conforms(
    doc: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    strict: bool,
) -> Result<(), String> {
    let schema = resolve(doc, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema[key].as_array() {
            return if options
                .iter()
                .any(|s| conforms(doc, s, value, at, strict).is_ok())
            {
                Ok(())
            } else {
                Err(format!("{at}: {value} matches none of {key}"))
            };
        }
    }
    if schema["allOf"].is_array() {
        // Flattened structs: the union of the parts' properties.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        merge_parts(doc, schema, &mut merged);
        return conforms(doc, &merged, value, at, strict);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let documented = types.is_empty()
        || types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"));
    if !documented {
        return Err(format!(
            "{at}: {value} is {actual}, documented as {types:?}"
        ));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {allowed:?}"));
    }
    match value {
        Value::Object(map) if schema["properties"].is_object() => {
            let properties = schema["properties"].as_object().unwrap();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().unwrap();
                if !map.contains_key(name) {
                    return Err(format!("{at}.{name}: documented as required, missing"));
                }
            }
            for (name, field) in map {
                match properties.get(name) {
                    Some(field_schema) => {
                        conforms(doc, field_schema, field, &format!("{at}.{name}"), strict)?;
                    }
                    None if strict => {
                        return Err(format!("{at}.{name}: answered but not documented"));
                    }
                    None => {}
                }
            }
            Ok(())
        }
        Value::Array(items) if schema["items"].is_object() => {
            for (i, item) in items.iter().enumerate() {
                conforms(doc, &schema["items"], item, &format!("{at}[{i}]"), strict)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Adds the properties of `schema`'s `allOf` parts (themselves flattened
/// structs, maybe) to `merged`.
fn merge_parts(doc: &Value, schema: &Value, merged: &mut Value) {
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let part = resolve(doc, part);
        merge_parts(doc, part, merged);
        for (k, v) in part["properties"].as_object().into_iter().flatten() {
            merged["properties"][k] = v.clone();
        }
        for r in part["required"].as_array().into_iter().flatten() {
            merged["required"].as_array_mut().unwrap().push(r.clone());
        }
    }
}

struct Checker {
    app: TestApp,
    doc: Value,
}

impl Checker {
    /// Sends the request and checks its answer against the document.
    async fn check(
        &self,
        method: &str,
        template: &str,
        path: &str,
        auth: &str,
        body: Option<Value>,
    ) -> Value {
        let method_upper = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let mut request = self
            .app
            .client
            .request(method_upper, self.app.url(path))
            .bearer_auth(auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let value: Value = response.json().await.unwrap();
        let expected = match (auth, method, path) {
            ("tg-wrong", _, _) => 401,
            (_, _, p) if p.ends_with("/nope") => 404,
            (_, "post", p) if !p.starts_with("/v1/") => 201,
            _ => 200,
        };
        assert_eq!(status, expected, "{method} {path}: {value}");
        let schema = response_schema(&self.doc, method, template, status);
        let strict = !template.starts_with("/v1/");
        if let Err(e) = conforms(&self.doc, schema, &value, "$", strict) {
            panic!("{method} {path} answered {status} outside the document: {e}\n{value:#}");
        }
        value
    }
}

#[tokio::test]
async fn real_answers_match_the_documented_schemas() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;
    let admin = tollgate_tests::ADMIN_TOKEN;
    let c = Checker { app, doc };

    let org = c
        .check(
            "post",
            "/api/v1/organizations",
            "/api/v1/organizations",
            admin,
            Some(json!({"name": "Acme", "billing_mode": "usd"})),
        )
        .await;
    let org_id = org["id"].as_str().unwrap().to_owned();
    let org_path = format!("/api/v1/organizations/{org_id}");
    c.check(
        "get",
        "/api/v1/organizations/{org_id}",
        &org_path,
        admin,
        None,
    )
    .await;
    let key = c
        .check(
            "post",
            "/api/v1/organizations/{org_id}/api-keys",
            &format!("{org_path}/api-keys"),
            admin,
            Some(json!({"name": "prod", "budget": {"amount": 1_000_000, "period": "daily"}})),
        )
        .await;
    let secret = key["key"].as_str().unwrap().to_owned();
    c.check(
        "get",
        "/api/v1/organizations/{org_id}/api-keys",
        &format!("{org_path}/api-keys"),
        admin,
        None,
    )
    .await;
    c.check(
        "post",
        "/api/v1/organizations/{org_id}/credits/grants",
        &format!("{org_path}/credits/grants"),
        admin,
        Some(json!({"amount": 1_000_000, "reason": "test"})),
    )
    .await;
    c.check(
        "get",
        "/api/v1/organizations/{org_id}/credits",
        &format!("{org_path}/credits"),
        admin,
        None,
    )
    .await;
    c.check(
        "post",
        "/v1/chat/completions",
        "/v1/chat/completions",
        &secret,
        Some(chat_body("gpt-4o-mini")),
    )
    .await;
    c.check("get", "/v1/models", "/v1/models", &secret, None)
        .await;
    c.check(
        "get",
        "/api/v1/organizations/{org_id}/credits/transactions",
        &format!("{org_path}/credits/transactions"),
        admin,
        None,
    )
    .await;
    let usage = c
        .check(
            "get",
            "/api/v1/organizations/{org_id}/usage",
            &format!("{org_path}/usage"),
            admin,
            None,
        )
        .await;
    assert_eq!(usage["data"].as_array().unwrap().len(), 1);
    let summary = c
        .check(
            "get",
            "/api/v1/organizations/{org_id}/usage/summary",
            &format!("{org_path}/usage/summary?group_by=model"),
            admin,
            None,
        )
        .await;
    assert_eq!(summary["data"][0]["requests"], 1);
    let webhook = c
        .check(
            "post",
            "/api/v1/organizations/{org_id}/webhooks",
            &format!("{org_path}/webhooks"),
            admin,
            Some(json!({"url": "https://example.com/hook", "events": ["credits.granted", "credits.low"], "credits_low_threshold": 5})),
        )
        .await;
    let webhook_path = format!("{org_path}/webhooks/{}", webhook["id"].as_str().unwrap());
    for (template, path) in [
        (
            "/api/v1/organizations/{org_id}/webhooks",
            format!("{org_path}/webhooks"),
        ),
        (
            "/api/v1/organizations/{org_id}/webhooks/{id}",
            webhook_path.clone(),
        ),
        (
            "/api/v1/organizations/{org_id}/webhooks/{id}/deliveries",
            format!("{webhook_path}/deliveries"),
        ),
    ] {
        c.check("get", template, &path, admin, None).await;
    }
    let credential = c
        .check(
            "post",
            "/api/v1/provider-credentials",
            "/api/v1/provider-credentials",
            admin,
            Some(json!({"organization_id": org_id, "provider": "mock", "api_key": "sk-test-1234"})),
        )
        .await;
    let cred_id = credential["id"].as_str().unwrap();
    c.check(
        "get",
        "/api/v1/provider-credentials",
        &format!("/api/v1/provider-credentials?organization_id={org_id}"),
        admin,
        None,
    )
    .await;
    c.check(
        "get",
        "/api/v1/provider-credentials/audit",
        "/api/v1/provider-credentials/audit",
        admin,
        None,
    )
    .await;
    c.check(
        "put",
        "/api/v1/provider-credentials/{id}/deactivate",
        &format!("/api/v1/provider-credentials/{cred_id}/deactivate"),
        admin,
        None,
    )
    .await;
    c.check(
        "delete",
        "/api/v1/provider-credentials/{id}",
        &format!("/api/v1/provider-credentials/{cred_id}"),
        admin,
        None,
    )
    .await;
    c.check("get", "/api/v1/models", "/api/v1/models", admin, None)
        .await;
    c.check(
        "post",
        "/api/v1/models",
        "/api/v1/models",
        admin,
        Some(json!({"id": "added-model", "provider": "mock", "price": {"input_per_mtok_usd_micros": 1}})),
    )
    .await;
    c.check(
        "patch",
        "/api/v1/models/{id}",
        "/api/v1/models/added-model",
        admin,
        Some(json!({"tier": 2, "price": {"output_per_mtok_usd_micros": 3}})),
    )
    .await;
    c.check(
        "delete",
        "/api/v1/models/{id}",
        "/api/v1/models/added-model",
        admin,
        None,
    )
    .await;
    c.check("get", "/api/v1/models", "/api/v1/models", admin, None)
        .await;
    c.check(
        "get",
        "/api/v1/routing/health",
        "/api/v1/routing/health",
        admin,
        None,
    )
    .await;
    c.check(
        "get",
        "/api/v1/organizations",
        "/api/v1/organizations?limit=1",
        admin,
        None,
    )
    .await;
    c.check(
        "patch",
        "/api/v1/organizations/{org_id}",
        &org_path,
        admin,
        Some(json!({"default_power_level": "eco"})),
    )
    .await;
    c.check(
        "delete",
        "/api/v1/organizations/{org_id}/api-keys/{key_id}",
        &format!("{org_path}/api-keys/{}", key["id"].as_str().unwrap()),
        admin,
        None,
    )
    .await;
    // Errors, in the documented shape.
    c.check(
        "get",
        "/api/v1/organizations/{org_id}",
        "/api/v1/organizations/nope",
        admin,
        None,
    )
    .await;
    c.check("get", "/v1/models", "/v1/models", "tg-wrong", None)
        .await;
    c.check("get", "/health", "/health", "", None).await;
    c.check("get", "/ready", "/ready", "", None).await;
}

/// The values a property of a component schema may take (`enum`, through a
/// `$ref` or a nullable `oneOf`).
fn enum_values(doc: &Value, schema: &str, property: &str) -> Vec<String> {
    let mut prop = &doc["components"]["schemas"][schema]["properties"][property];
    if let Some(parts) = prop["oneOf"].as_array() {
        prop = parts.iter().find(|p| p["type"] != "null").unwrap();
    }
    let prop = resolve(doc, prop);
    prop["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema}.{property} is not an enum: {prop}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn closed_sets_of_values_are_enums_in_the_document() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;

    for (schema, property, values) in [
        ("LedgerEntry", "kind", &["grant", "usage", "adjustment"][..]),
        ("Attempt", "status", &["ok", "error"]),
        ("UsageRecord", "status", &["ok", "partial"]),
        (
            "CreateOrganization",
            "billing_mode",
            &["usd", "tokens", "requests"],
        ),
        (
            "UpdateOrganization",
            "default_power_level",
            &["eco", "balanced", "precision"],
        ),
        (
            "ChatCompletionRequest",
            "power_level",
            &["eco", "balanced", "precision"],
        ),
        (
            "CreateUser",
            "role",
            &["platform_admin", "org_admin", "org_member"],
        ),
        ("Budget", "period", &["daily", "weekly", "monthly", "total"]),
        (
            "WebhookPayload",
            "type",
            &[
                "credits.granted",
                "credits.low",
                "credits.depleted",
                "budget.exceeded",
                "usage.batch",
            ],
        ),
    ] {
        let mut found = enum_values(&doc, schema, property);
        let mut expected: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        found.sort();
        expected.sort();
        assert_eq!(found, expected, "{schema}.{property}");
    }
    let summary = &doc["paths"]["/api/v1/organizations/{org_id}/usage/summary"]["get"];
    let group_by = summary["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "group_by")
        .unwrap();
    let group_by = resolve(&doc, &group_by["schema"]);
    assert_eq!(
        group_by["enum"],
        json!(["day", "model", "api_key", "provider"]),
        "{group_by}"
    );
}

#[tokio::test]
async fn the_documented_csv_export_has_the_columns_of_the_real_one() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;
    let org = app.create_org("usd").await;

    let export = app
        .admin_get(&format!("/api/v1/organizations/{org}/usage/export"))
        .await;

    assert_eq!(export.status(), 200);
    let text = export.text().await.unwrap();
    let content = &doc["paths"]["/api/v1/organizations/{org_id}/usage/export"]["get"]["responses"]
        ["200"]["content"];
    let example = content["text/csv; charset=utf-8"]["example"]
        .as_str()
        .unwrap_or_else(|| panic!("no CSV example: {content}"));
    assert_eq!(
        example.split("\r\n").next(),
        text.split("\r\n").next(),
        "the example's header is not the export's"
    );
}

/// `GET …/usage?format=csv` (and `Accept: text/csv`) answers what the
/// document says: its documented content type, with the columns of its
/// example; and `format` is documented with the values it takes.
#[tokio::test]
async fn the_usage_list_documents_its_csv_answer() {
    let app = TestApp::spawn().await;
    let (_, doc) = served(&app).await;
    let org = app.create_org("usd").await;
    let operation = &doc["paths"]["/api/v1/organizations/{org_id}/usage"]["get"];
    let content = &operation["responses"]["200"]["content"];
    let documented: Vec<&String> = content.as_object().unwrap().keys().collect();
    let format = operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "format")
        .unwrap_or_else(|| panic!("`format` is not documented: {operation}"));
    assert_eq!(
        resolve(&doc, &format["schema"])["enum"],
        json!(["json", "csv"])
    );
    let example = content["text/csv; charset=utf-8"]["example"]
        .as_str()
        .unwrap_or_else(|| panic!("no CSV example: {content}"));
    let path = format!("/api/v1/organizations/{org}/usage");

    for request in [
        app.client.get(app.url(&format!("{path}?format=csv"))),
        app.client.get(app.url(&path)).header("accept", "text/csv"),
    ] {
        let response = request
            .bearer_auth(tollgate_tests::ADMIN_TOKEN)
            .send()
            .await
            .unwrap();

        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            documented.iter().any(|c| **c == content_type),
            "{content_type} is not among the documented {documented:?}"
        );
        let text = response.text().await.unwrap();
        assert_eq!(
            example.split("\r\n").next(),
            text.split("\r\n").next(),
            "the example's header is not the answer's"
        );
    }
}

#[tokio::test]
async fn descriptions_carry_no_rustdoc_links() {
    let app = TestApp::spawn().await;
    let (text, _) = served(&app).await;

    // A doc comment's intra-doc link (`[`Type`]`) means nothing to a reader
    // of the document.
    assert!(
        !text.contains("[`"),
        "a description names a Rust item: {}",
        &text[text.find("[`").unwrap_or(0).saturating_sub(80)..][..160.min(text.len())]
    );
}
