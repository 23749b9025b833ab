//! [`ChangePoll`]: what a replica's poll of changed rows has not acted on yet.
//!
//! Each replica polls the rows changed since its previous poll by their
//! `updated_at`, looking back [`LOOKBACK_MS`] further so that clock skew
//! between replicas, and transactions that commit after their `updated_at`,
//! cannot hide a change. A row changed once is therefore returned by every
//! poll of the next two seconds; acting on it each time (dropping a cached
//! key) would reload it up to ten times. A change is a row's id with its
//! `updated_at`: acted on the first time a poll returns it.
//!
//! That needs `updated_at` to grow with every change of a row, even two in
//! one millisecond or one from a replica whose clock is behind: writers set
//! it with [`bump_updated_at!`](crate::bump_updated_at).

use std::collections::HashMap;

/// How far each poll looks back beyond the previous one.
pub const LOOKBACK_MS: i64 = 2_000;

/// The SQL (a literal, for `concat!`) that sets a row's `updated_at` for a
/// change made at the parameter `now` (e.g. `"$1"`): `now`, or one more than
/// the row's current value if that is not below it, so that no two versions
/// of a row share an `updated_at` (as [`ChangePoll`] needs).
#[macro_export]
macro_rules! bump_updated_at {
    ($now:literal) => {
        concat!(
            "updated_at = CASE WHEN updated_at >= ",
            $now,
            " THEN updated_at + 1 ELSE ",
            $now,
            " END"
        )
    };
}

/// The changes one replica's polls have acted on.
#[derive(Debug)]
pub struct ChangePoll {
    /// The clock when the last successful poll started.
    since: i64,
    /// Row id → `updated_at` of every row the last successful poll returned.
    seen: HashMap<String, i64>,
}

impl ChangePoll {
    /// Polls from now on: changes made before are not acted on.
    pub fn new(now: i64) -> ChangePoll {
        ChangePoll {
            since: now,
            seen: HashMap::new(),
        }
    }

    /// The oldest `updated_at` the next poll reads (`updated_at >= from()`).
    pub fn from(&self) -> i64 {
        self.since - LOOKBACK_MS
    }

    /// A successful poll, started at `started` (the clock just before its
    /// query), returned `rows`: each row's id, its `updated_at`, and what
    /// the caller acts on. Returns the latter for the rows that are new or
    /// changed since the previous poll, in their order.
    pub fn changed<T>(&mut self, started: i64, rows: Vec<(String, i64, T)>) -> Vec<T> {
        let mut seen = HashMap::with_capacity(rows.len());
        let mut changed = Vec::new();
        for (id, updated_at, item) in rows {
            if self.seen.get(&id) != Some(&updated_at) {
                changed.push(item);
            }
            seen.insert(id, updated_at);
        }
        // The rows of this poll are all the previous poll's window can still
        // return; any other row comes back only with a new `updated_at`.
        self.seen = seen;
        self.since = started;
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, updated_at: i64) -> (String, i64, String) {
        (id.to_owned(), updated_at, id.to_owned())
    }

    #[test]
    fn a_change_is_acted_on_by_the_first_poll_that_returns_it_only() {
        let mut poll = ChangePoll::new(10_000);
        assert_eq!(poll.from(), 8_000);
        assert_eq!(poll.changed(10_500, vec![row("a", 10_100)]), ["a"]);
        assert_eq!(poll.from(), 8_500);
        assert!(poll.changed(11_000, vec![row("a", 10_100)]).is_empty());
        assert_eq!(
            poll.changed(11_500, vec![row("a", 10_100), row("b", 11_200)]),
            ["b"]
        );
        // A new version of a row seen before is a change again.
        assert_eq!(
            poll.changed(12_000, vec![row("a", 11_900), row("b", 11_200)]),
            ["a"]
        );
    }

    #[test]
    fn a_row_gone_from_the_window_and_back_with_a_new_version_is_a_change() {
        let mut poll = ChangePoll::new(0);
        assert_eq!(poll.changed(100, vec![row("a", 50)]), ["a"]);
        assert!(poll.changed::<String>(5_000, vec![]).is_empty());
        assert_eq!(poll.changed(5_500, vec![row("a", 5_200)]), ["a"]);
    }

    #[test]
    fn the_bump_names_its_parameter_twice() {
        assert_eq!(
            crate::bump_updated_at!("$2"),
            "updated_at = CASE WHEN updated_at >= $2 THEN updated_at + 1 ELSE $2 END"
        );
    }
}
