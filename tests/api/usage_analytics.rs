//! Usage analytics: filters and a time range on the usage list, sums per
//! day, model, key or provider that add up to the records, and a CSV export.

use serde_json::{Value, json};
use tollgate_tests::{TestApp, chat_body, expect_error};

/// An organization with two keys: key A made three `gpt-4o-mini` calls,
/// key B two `cheap-model` calls. Returns `(org, key A id, key B id)`.
async fn org_with_mixed_usage(app: &TestApp) -> (String, String, String) {
    let org = app.create_org("tokens").await;
    app.grant(&org, 1_000_000).await;
    let (a_id, a) = app.create_key(&org).await;
    let (b_id, b) = app.create_key(&org).await;
    for (key, model, n) in [(&a, "gpt-4o-mini", 3), (&b, "cheap-model", 2)] {
        for _ in 0..n {
            assert_eq!(app.chat(key, &chat_body(model)).await.status(), 200);
        }
    }
    (org, a_id, b_id)
}

async fn get_json(app: &TestApp, path: &str) -> Value {
    let response = app.admin_get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

async fn usage_count(app: &TestApp, org: &str, query: &str) -> usize {
    let body = get_json(app, &format!("/api/v1/organizations/{org}/usage?{query}")).await;
    body["data"].as_array().unwrap().len()
}

#[tokio::test]
async fn usage_filters_narrow_the_list_by_model_key_provider_byok_status_and_time() {
    let app = TestApp::spawn().await;
    let (org, a, b) = org_with_mixed_usage(&app).await;
    let now = tollgate_core::time::now_millis();

    assert_eq!(usage_count(&app, &org, "model=cheap-model").await, 2);
    assert_eq!(usage_count(&app, &org, &format!("api_key_id={a}")).await, 3);
    assert_eq!(
        usage_count(&app, &org, &format!("api_key_id={b}&model=gpt-4o-mini")).await,
        0
    );
    assert_eq!(usage_count(&app, &org, "provider=mock").await, 5);
    assert_eq!(usage_count(&app, &org, "byok=false").await, 5);
    assert_eq!(usage_count(&app, &org, "byok=true").await, 0);
    assert_eq!(usage_count(&app, &org, "status=ok").await, 5);
    assert_eq!(usage_count(&app, &org, "status=partial").await, 0);
    let past = now - 3_600_000;
    assert_eq!(
        usage_count(&app, &org, &format!("from={past}&to={}", now + 60_000)).await,
        5
    );
    assert_eq!(usage_count(&app, &org, &format!("to={past}")).await, 0);
    assert_eq!(
        usage_count(&app, &org, &format!("from={}", now + 60_000)).await,
        0
    );
}

#[tokio::test]
async fn filtered_pages_follow_the_before_cursor() {
    let app = TestApp::spawn().await;
    let (org, a, _) = org_with_mixed_usage(&app).await;

    let first = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage?api_key_id={a}&limit=2"),
    )
    .await;
    let last = first["data"][1]["request_id"].as_str().unwrap();
    let second = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage?api_key_id={a}&limit=2&before={last}"),
    )
    .await;

    assert_eq!(first["has_more"], true);
    assert_eq!(second["data"].as_array().unwrap().len(), 1);
    assert_eq!(second["has_more"], false);
    assert_eq!(second["data"][0]["api_key_id"], a.as_str());
}

#[tokio::test]
async fn summaries_by_model_key_provider_and_day_add_up_to_the_records() {
    let app = TestApp::spawn().await;
    let (org, a, b) = org_with_mixed_usage(&app).await;
    let records = app.usage(&org).await;
    let sum = |field: &str| {
        records
            .iter()
            .map(|r| r[field].as_i64().unwrap())
            .sum::<i64>()
    };

    for group_by in ["model", "api_key", "provider", "day"] {
        let summary = get_json(
            &app,
            &format!("/api/v1/organizations/{org}/usage/summary?group_by={group_by}"),
        )
        .await;
        let rows = summary["data"].as_array().unwrap();
        let total = |field: &str| rows.iter().map(|r| r[field].as_i64().unwrap()).sum::<i64>();
        assert_eq!(summary["unit"], "tokens");
        assert_eq!(total("requests"), 5, "{group_by}: {summary}");
        for field in ["prompt_tokens", "completion_tokens", "cost"] {
            assert_eq!(total(field), sum(field), "{group_by} {field}: {summary}");
        }
    }
    let by_key = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage/summary?group_by=api_key"),
    )
    .await;
    let requests_of = |key: &str| {
        by_key["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["key"] == key)
            .map(|r| r["requests"].as_i64().unwrap())
    };
    assert_eq!(requests_of(&a), Some(3));
    assert_eq!(requests_of(&b), Some(2));
    let by_day = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage/summary?group_by=day&model=cheap-model"),
    )
    .await;
    let today = tollgate_core::budget::date_of_day(tollgate_core::time::now_millis() / 86_400_000);
    assert_eq!(
        by_day["data"],
        json!([{
            "key": today,
            "requests": 2,
            "prompt_tokens": sum_where(&records, "cheap-model", "prompt_tokens"),
            "completion_tokens": sum_where(&records, "cheap-model", "completion_tokens"),
            "cached_tokens": 0,
            "cache_write_tokens": 0,
            "cost": sum_where(&records, "cheap-model", "cost"),
        }])
    );
}

fn sum_where(records: &[Value], model: &str, field: &str) -> i64 {
    records
        .iter()
        .filter(|r| r["model"] == model)
        .map(|r| r[field].as_i64().unwrap())
        .sum()
}

/// Parses RFC 4180 CSV: quoted fields may hold commas, quotes (doubled) and
/// line breaks; records end with CRLF.
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "records end with CRLF");
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    assert!(
        field.is_empty() && row.is_empty(),
        "the last record ends with CRLF"
    );
    rows
}

#[tokio::test]
async fn the_csv_export_has_every_matching_record_and_parses_back() {
    let app = TestApp::spawn().await;
    let (org, a, _) = org_with_mixed_usage(&app).await;

    let response = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/usage?format=csv&api_key_id={a}"
        ))
        .await;

    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows = parse_csv(&response.text().await.unwrap());
    let header = &rows[0];
    assert_eq!(header[0], "request_id");
    let column = |name: &str| header.iter().position(|h| h == name).unwrap();
    let json = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage?api_key_id={a}"),
    )
    .await;
    let mut expected: Vec<Value> = json["data"].as_array().unwrap().clone();
    expected.reverse(); // the export is oldest first
    assert_eq!(rows.len() - 1, expected.len());
    assert_eq!(expected.len(), 3);
    for (row, record) in rows[1..].iter().zip(&expected) {
        assert_eq!(row.len(), header.len());
        assert_eq!(
            row[column("request_id")],
            record["request_id"].as_str().unwrap()
        );
        assert_eq!(row[column("model")], "gpt-4o-mini");
        assert_eq!(row[column("api_key_id")], a);
        assert_eq!(row[column("cost")], record["cost"].to_string());
        assert_eq!(row[column("created_at")], record["created_at"].to_string());
        assert_eq!(row[column("byok")], "false");
    }
}

#[tokio::test]
async fn an_accept_header_of_text_csv_asks_for_the_export() {
    let app = TestApp::spawn().await;
    let (org, _, _) = org_with_mixed_usage(&app).await;

    let response = app
        .client
        .get(app.url(&format!("/api/v1/organizations/{org}/usage")))
        .bearer_auth(tollgate_tests::ADMIN_TOKEN)
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(parse_csv(&response.text().await.unwrap()).len(), 1 + 5);
}

#[tokio::test]
async fn the_export_operation_answers_the_same_csv_as_format_csv() {
    let app = TestApp::spawn().await;
    let (org, a, _) = org_with_mixed_usage(&app).await;

    let export = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/usage/export?api_key_id={a}"
        ))
        .await;
    let legacy = app
        .admin_get(&format!(
            "/api/v1/organizations/{org}/usage?format=csv&api_key_id={a}"
        ))
        .await;

    assert_eq!(export.status(), 200);
    assert!(
        export.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let rows = parse_csv(&export.text().await.unwrap());
    assert_eq!(rows.len(), 1 + 3);
    assert_eq!(rows, parse_csv(&legacy.text().await.unwrap()));
}

#[tokio::test]
async fn the_export_takes_filters_but_no_page() {
    let app = TestApp::spawn().await;
    let (org, _, _) = org_with_mixed_usage(&app).await;

    let response = app
        .admin_get(&format!("/api/v1/organizations/{org}/usage/export?limit=5"))
        .await;

    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`limit`"),
        "{body}"
    );
}

#[tokio::test]
async fn a_page_of_usage_names_the_cursor_of_the_next() {
    let app = TestApp::spawn().await;
    let (org, _, _) = org_with_mixed_usage(&app).await;

    let first = get_json(&app, &format!("/api/v1/organizations/{org}/usage?limit=2")).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = get_json(
        &app,
        &format!("/api/v1/organizations/{org}/usage?limit=2&before={cursor}"),
    )
    .await;
    let last = get_json(
        &app,
        &format!(
            "/api/v1/organizations/{org}/usage?limit=2&before={}",
            second["next_cursor"].as_str().unwrap()
        ),
    )
    .await;

    assert_eq!(first["has_more"], true);
    assert_eq!(cursor, first["data"][1]["request_id"].as_str().unwrap());
    assert_eq!(second["data"].as_array().unwrap().len(), 2);
    assert_eq!(last["data"].as_array().unwrap().len(), 1);
    assert_eq!(last["has_more"], false);
    assert!(last["next_cursor"].is_null());
}

#[tokio::test]
async fn bad_analytics_parameters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let org = app.create_org("usd").await;
    let cases = [
        ("usage/summary?group_by=week", "group_by"),
        ("usage/summary", "group_by"),
        ("usage?from=yesterday", "from"),
        ("usage?from=5&to=4", "from"),
        ("usage?status=failed", "status"),
        ("usage?format=xml", "format"),
        ("usage?byok=maybe", "byok"),
        ("usage?group_by=day", "group_by"),
        ("usage/summary?group_by=day&limit=5", "limit"),
    ];
    for (path, field) in cases {
        let response = app
            .admin_get(&format!("/api/v1/organizations/{org}/{path}"))
            .await;
        let error = expect_error(response, 400).await;
        assert!(
            error["message"].as_str().unwrap().contains(field),
            "{path}: {error}"
        );
    }
}
