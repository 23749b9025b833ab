//! Identifiers: a short type prefix and a time-ordered UUIDv7, so ids sort by
//! creation time and say what they name (`org_…`, `key_…`, `req_…`).

use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};
use uuid::Uuid;

/// A new id such as `org_0192f0c1e8a47c3b9f1d2e3a4b5c6d7e`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", Uuid::now_v7().simple())
}

/// A new request id, as sent in `x-tollgate-request-id`: one on every
/// call's path, so its random bits come from the thread's generator
/// (`rand::rng()`, seeded by the system) rather than from the kernel each
/// time, as `Uuid::now_v7` does with two system calls (4 µs of a call at a
/// low rate). Still increasing within the process, which the request log's
/// order (by request id) relies on.
pub fn new_request_id() -> String {
    format!("req_{}", increasing_v7().simple())
}

/// The 62 random bits below the variant, less their top bit: an id made
/// within the same millisecond as the last is the last plus one, and this
/// headroom keeps that from ever carrying into the variant.
const RAND_B_TOP: u128 = 1 << 61;

fn increasing_v7() -> Uuid {
    static LAST: Mutex<u128> = Mutex::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let random: [u8; 10] = rand::random();
    let fresh = uuid::Builder::from_unix_timestamp_millis(millis, &random)
        .into_uuid()
        .as_u128()
        & !RAND_B_TOP;
    let mut last = LAST.lock().unwrap_or_else(PoisonError::into_inner);
    *last = next_after(*last, fresh);
    Uuid::from_u128(*last)
}

/// `fresh`, unless it does not sort after `last` (the same millisecond, or
/// the clock stepped back): then `last` plus one.
fn next_after(last: u128, fresh: u128) -> u128 {
    if fresh > last { fresh } else { last + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_version_7_and_increase_even_within_a_millisecond() {
        let ids: Vec<String> = (0..10_000).map(|_| new_request_id()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1], "{} then {}", pair[0], pair[1]);
        }
        let uuid = Uuid::parse_str(ids[0].trim_start_matches("req_")).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let (secs, _) = uuid.get_timestamp().unwrap().to_unix();
        assert!(now.as_secs().abs_diff(secs) <= 1);
    }

    #[test]
    fn after_a_clock_step_back_the_next_id_is_the_last_plus_one_and_still_a_v7() {
        let last = increasing_v7();
        let earlier = uuid::Builder::from_unix_timestamp_millis(1, &[0xff; 10])
            .into_uuid()
            .as_u128()
            & !RAND_B_TOP;
        let next = Uuid::from_u128(next_after(last.as_u128(), earlier));
        assert_eq!(next.as_u128(), last.as_u128() + 1);
        assert_eq!(next.get_version_num(), 7);
        assert_eq!(next.get_variant(), uuid::Variant::RFC4122);
    }
}
