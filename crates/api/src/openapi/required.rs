//! Every field of a management-plane answer is required in the document.
//!
//! The management answers serialize every field, `null` when it has no
//! value (no `skip_serializing_if` in the domain crates), but utoipa lists
//! an `Option` field as optional. Generated clients then type it "absent,
//! null or a value" (`None | str | Unset` in Python) where "null or a value"
//! is the truth. This marks every property of the schemas that only
//! management answers use as required (still nullable). Schemas a request
//! body also uses keep their optional fields, and data-plane answers keep
//! theirs: providers' answers, relayed, may leave fields out.
//! `tests/api/openapi.rs` and the schemathesis run check real answers
//! against the result.

use serde_json::Value;
use std::collections::BTreeSet;
use utoipa::Modify;
use utoipa::openapi::{RefOr, Schema};

pub struct ManagementFieldsRequired;

impl Modify for ManagementFieldsRequired {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Ok(doc) = serde_json::to_value(&*openapi) else {
            return;
        };
        let mut answers = BTreeSet::new();
        let mut keep_optional = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().into_iter().flatten() {
            for operation in item.as_object().into_iter().flatten().map(|(_, op)| op) {
                if path.starts_with("/api/v1/") {
                    referenced(&doc, &operation["responses"], &mut answers);
                }
                referenced(&doc, &operation["requestBody"], &mut keep_optional);
                if !path.starts_with("/api/v1/") {
                    referenced(&doc, &operation["responses"], &mut keep_optional);
                }
            }
        }
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        for name in answers.difference(&keep_optional) {
            if let Some(RefOr::T(Schema::Object(object))) = components.schemas.get_mut(name) {
                let optional: Vec<String> = object
                    .properties
                    .keys()
                    .filter(|p| !object.required.contains(p))
                    .cloned()
                    .collect();
                object.required.extend(optional);
            }
        }
    }
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
