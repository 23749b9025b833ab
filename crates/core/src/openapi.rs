//! Helpers for the OpenAPI schemas of the domain types (feature `openapi`).

use utoipa::openapi::schema::{Object, ObjectBuilder, Type};

/// A string that takes one of `values`: a closed set a domain type keeps as
/// text, documented as the enum it is.
pub fn one_of(values: &[&str]) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .build()
}
