//! Wall-clock helpers. The database stores instants as integer milliseconds
//! since the Unix epoch so that one set of queries works on both backends.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Seconds since the Unix epoch, as the APIs show instants (like OpenAI's `created`).
pub fn now_secs() -> i64 {
    now_millis() / 1000
}
