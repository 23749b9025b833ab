//! Two passes over the generated document, on its JSON form.
//!
//! Shared schemas: utoipa inlines a generic's arguments (`Page<User>`'s
//! items are a copy of `User`, not a reference), so generated clients
//! would get a second, anonymous type for every listed item. This puts a
//! `$ref` back wherever an inline object schema equals a component.
//!
//! Required management fields: the management answers serialize every
//! field, `null` when it has no value (no `skip_serializing_if` in the
//! domain crates), but utoipa lists an `Option` field as optional.
//! Generated clients then type it "absent, null or a value" (`None | str |
//! Unset` in Python) where "null or a value" is the truth. This marks every
//! nullable property of the schemas that only management answers use as
//! required (a field left out when empty is documented `nullable = false`
//! and stays optional). Schemas a request body also uses keep their
//! optional fields, and data-plane answers keep theirs: providers'
//! answers, relayed, may leave fields out. `tests/api/openapi.rs` and the
//! schemathesis run check real answers against the result.

use serde_json::Value;
use std::collections::BTreeSet;

/// Applies both passes to the document's JSON form.
pub fn finish(doc: &mut Value) {
    share_schemas(doc);
    require_management_fields(doc);
}

fn share_schemas(doc: &mut Value) {
    let components: Vec<(String, Value)> = doc["components"]["schemas"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, schema)| schema["properties"].is_object())
        .map(|(name, schema)| (name.clone(), schema.clone()))
        .collect();
    if let Some(paths) = doc.get_mut("paths") {
        share(paths, &components);
    }
    if let Some(schemas) = component_schemas(doc) {
        for schema in schemas.values_mut() {
            // A component itself stays; what it holds is shared.
            if let Value::Object(map) = schema {
                map.values_mut().for_each(|v| share(v, &components));
            }
        }
    }
}

fn component_schemas(doc: &mut Value) -> Option<&mut serde_json::Map<String, Value>> {
    doc.get_mut("components")?
        .get_mut("schemas")?
        .as_object_mut()
}

/// Replaces every inline schema under `value` that equals a component by a
/// reference to it.
fn share(value: &mut Value, components: &[(String, Value)]) {
    if value["properties"].is_object()
        && let Some((name, _)) = components.iter().find(|(_, c)| c == value)
    {
        *value = serde_json::json!({ "$ref": format!("#/components/schemas/{name}") });
        return;
    }
    match value {
        Value::Object(map) => map.values_mut().for_each(|v| share(v, components)),
        Value::Array(items) => items.iter_mut().for_each(|v| share(v, components)),
        _ => {}
    }
}

fn require_management_fields(doc: &mut Value) {
    let mut answers = BTreeSet::new();
    let mut keep_optional = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for operation in item.as_object().into_iter().flatten().map(|(_, op)| op) {
            if path.starts_with("/api/v1/") {
                referenced(doc, &operation["responses"], &mut answers);
            }
            referenced(doc, &operation["requestBody"], &mut keep_optional);
            if !path.starts_with("/api/v1/") {
                referenced(doc, &operation["responses"], &mut keep_optional);
            }
        }
    }
    let Some(schemas) = component_schemas(doc) else {
        return;
    };
    for name in answers.difference(&keep_optional) {
        if let Some(schema) = schemas.get_mut(name) {
            require_nullable(schema);
            // A flattened struct: its own fields are an inline part.
            if let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) {
                parts.iter_mut().for_each(require_nullable);
            }
        }
    }
}

/// Marks the nullable properties of an object schema required.
fn require_nullable(schema: &mut Value) {
    let Some(properties) = schema["properties"].as_object() else {
        return;
    };
    let nullable: Vec<Value> = properties
        .iter()
        .filter(|(_, p)| is_nullable(p))
        .map(|(name, _)| Value::String(name.clone()))
        .collect();
    let Value::Object(map) = schema else {
        return;
    };
    let required = map
        .entry("required")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Value::Array(required) = required {
        for name in nullable {
            if !required.contains(&name) {
                required.push(name);
            }
        }
    }
}

fn is_nullable(property: &Value) -> bool {
    let null = Value::String("null".into());
    property["type"]
        .as_array()
        .is_some_and(|t| t.contains(&null))
        || property["oneOf"]
            .as_array()
            .is_some_and(|options| options.iter().any(|o| o["type"] == null))
}

/// Adds the names of the component schemas `value` refers to, directly or
/// through other schemas.
fn referenced(doc: &Value, value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(name) = map
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|r| r.strip_prefix("#/components/schemas/"))
                && names.insert(name.to_owned())
            {
                referenced(doc, &doc["components"]["schemas"][name], names);
            }
            for field in map.values() {
                referenced(doc, field, names);
            }
        }
        Value::Array(items) => items.iter().for_each(|item| referenced(doc, item, names)),
        _ => {}
    }
}
