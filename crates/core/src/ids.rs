//! Identifiers: a short type prefix and a time-ordered UUIDv7, so ids sort by
//! creation time and say what they name (`org_…`, `key_…`, `req_…`).

use uuid::Uuid;

/// A new id such as `org_0192f0c1e8a47c3b9f1d2e3a4b5c6d7e`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// A new request id, as sent in `x-tollgate-request-id`.
pub fn new_request_id() -> String {
    new_id("req")
}
