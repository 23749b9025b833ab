//! The input items of a response, for `GET /v1/responses/{id}/input_items`:
//! each item the client sent as `input` (a text input is one user message),
//! with an id and a status as OpenAI lists them, and the list page
//! (`limit`, `order`, `after`, `before`) in OpenAI's `list` shape.

use super::{ResponsesRequest, item_id};
use serde::Deserialize;
use serde_json::{Value, json};

/// The input items of the request `response_id` answers, in the order sent.
pub fn input_items(request: &ResponsesRequest, response_id: &str) -> Vec<Value> {
    let sent = match &request.input {
        Value::String(text) => vec![json!({"role": "user", "content": text})],
        Value::Array(items) => items.clone(),
        _ => Vec::new(),
    };
    sent.into_iter()
        .enumerate()
        .map(|(n, item)| listed(item, &item_id("in", response_id, n)))
        .collect()
}

/// One item as listed: typed, with an id and a status; a message's text
/// content as an `input_text` part (`output_text` for the assistant).
fn listed(mut item: Value, id: &str) -> Value {
    let Some(map) = item.as_object_mut() else {
        return item;
    };
    if !map.contains_key("type") {
        map.insert("type".into(), json!("message"));
    }
    if map.get("type").and_then(Value::as_str) == Some("message")
        && let Some(Value::String(text)) = map.get("content")
    {
        let kind = if map.get("role").and_then(Value::as_str) == Some("assistant") {
            "output_text"
        } else {
            "input_text"
        };
        let part = json!([{"type": kind, "text": text}]);
        map.insert("content".into(), part);
    }
    if !map.get("id").is_some_and(Value::is_string) {
        map.insert("id".into(), json!(id));
    }
    map.entry("status").or_insert_with(|| json!("completed"));
    item
}

/// The query of an input item list.
#[derive(Debug, Default, Deserialize)]
pub struct ItemsQuery {
    pub limit: Option<i64>,
    pub order: Option<String>,
    pub after: Option<String>,
    pub before: Option<String>,
}

/// One page of `items` (kept in the order sent) in OpenAI's list shape:
/// `order` `desc` (the default) lists the newest first; `after` / `before`
/// are item ids of the previous page. The error names the parameter.
pub fn page(mut items: Vec<Value>, query: &ItemsQuery) -> Result<Value, String> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err("`limit` must be between 1 and 100".into());
    }
    match query.order.as_deref().unwrap_or("desc") {
        "desc" => items.reverse(),
        "asc" => {}
        _ => return Err("`order` must be asc or desc".into()),
    }
    let position = |id: &str, name: &str| {
        items
            .iter()
            .position(|i| i.get("id").and_then(Value::as_str) == Some(id))
            .ok_or_else(|| format!("`{name}`: no input item `{id}` in this response"))
    };
    let start = match &query.after {
        Some(after) => position(after, "after")? + 1,
        None => 0,
    };
    let end = match &query.before {
        Some(before) => position(before, "before")?,
        None => items.len(),
    };
    let window = items.get(start..end.max(start)).unwrap_or_default();
    let taken = usize::try_from(limit).unwrap_or(100).min(window.len());
    let data = &window[..taken];
    let id_of = |item: Option<&Value>| {
        item.and_then(|i| i.get("id"))
            .cloned()
            .unwrap_or(Value::Null)
    };
    Ok(json!({
        "object": "list",
        "data": data,
        "first_id": id_of(data.first()),
        "last_id": id_of(data.last()),
        "has_more": taken < window.len(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items() -> Vec<Value> {
        let request: ResponsesRequest = serde_json::from_value(json!({"model": "m", "input": [
            {"role": "user", "content": "one"},
            {"type": "function_call_output", "call_id": "c", "output": "two"},
            {"type": "message", "id": "msg_own", "role": "user", "content": [{"type": "input_text", "text": "three"}]},
        ]}))
        .unwrap();
        input_items(&request, "resp_abc")
    }

    #[test]
    fn items_get_a_type_an_id_and_typed_content() {
        let items = items();
        assert_eq!(
            items[0],
            json!({"type": "message", "id": "in_abc_0", "role": "user", "status": "completed",
                "content": [{"type": "input_text", "text": "one"}]})
        );
        assert_eq!(items[1]["id"], "in_abc_1");
        assert_eq!(items[2]["id"], "msg_own");
    }

    #[test]
    fn pages_go_newest_first_by_default_and_follow_after() {
        let query = ItemsQuery {
            limit: Some(2),
            ..ItemsQuery::default()
        };
        let first = page(items(), &query).unwrap();
        assert_eq!(first["first_id"], "msg_own");
        assert_eq!(first["last_id"], "in_abc_1");
        assert_eq!(first["has_more"], true);
        let next = ItemsQuery {
            limit: Some(2),
            after: Some("in_abc_1".into()),
            ..ItemsQuery::default()
        };
        let second = page(items(), &next).unwrap();
        assert_eq!(second["data"].as_array().unwrap().len(), 1);
        assert_eq!(second["last_id"], "in_abc_0");
        assert_eq!(second["has_more"], false);
        let asc = ItemsQuery {
            order: Some("asc".into()),
            ..ItemsQuery::default()
        };
        assert_eq!(page(items(), &asc).unwrap()["first_id"], "in_abc_0");
    }

    #[test]
    fn bad_parameters_are_named() {
        let bad = |query: ItemsQuery| page(items(), &query).unwrap_err();
        assert!(
            bad(ItemsQuery {
                limit: Some(0),
                ..ItemsQuery::default()
            })
            .contains("limit")
        );
        assert!(
            bad(ItemsQuery {
                order: Some("up".into()),
                ..ItemsQuery::default()
            })
            .contains("order")
        );
        assert!(
            bad(ItemsQuery {
                after: Some("x".into()),
                ..ItemsQuery::default()
            })
            .contains("after")
        );
    }
}
