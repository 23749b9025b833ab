//! Warnings about a dependency (Redis, the database) being down, at a rate
//! an operator can read: during an outage every request may hit the same
//! failure, and one warning per request buries everything else in the log.
//! An [`OutageLog`] logs the first failure at once, then at most one summary
//! per [`SUMMARY_EVERY`] with the number of failures since the last line,
//! and one line when the dependency is back. Every failure is counted in a
//! process-wide counter per dependency, exported by the API crate as
//! `tollgate_dependency_errors_total{dependency}`.

use std::fmt::Display;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The least time between two warnings about the same outage.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(30);

/// A dependency whose failures are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    Redis,
    Database,
}

impl Dependency {
    pub const ALL: [Dependency; 2] = [Dependency::Redis, Dependency::Database];

    /// The `dependency` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Dependency::Redis => "redis",
            Dependency::Database => "database",
        }
    }

    fn counter(self) -> &'static AtomicU64 {
        static COUNTS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];
        match self {
            Dependency::Redis => &COUNTS[0],
            Dependency::Database => &COUNTS[1],
        }
    }

    /// Failures counted in this process since it started.
    pub fn errors(self) -> u64 {
        self.counter().load(Ordering::Relaxed)
    }
}

/// One kind of failure of one dependency, logged at a bounded rate.
#[derive(Debug)]
pub struct OutageLog {
    dependency: Dependency,
    /// What the failure means for the gateway, as the warning's message.
    message: &'static str,
    /// Whether a failure was seen since the last recovery: lets
    /// [`OutageLog::recovered`] stay one atomic load on the hot path.
    down: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last_logged: Option<Instant>,
    /// Failures since the last line logged.
    unlogged: u64,
}

impl OutageLog {
    pub const fn new(dependency: Dependency, message: &'static str) -> OutageLog {
        OutageLog {
            dependency,
            message,
            down: AtomicBool::new(false),
            state: Mutex::new(State {
                last_logged: None,
                unlogged: 0,
            }),
        }
    }

    /// Counts one failure, and logs it when it is the first of an outage or
    /// the last warning is [`SUMMARY_EVERY`] old.
    pub fn failed(&self, error: &dyn Display) {
        self.failed_at(error, Instant::now());
    }

    fn failed_at(&self, error: &dyn Display, now: Instant) -> bool {
        self.dependency.counter().fetch_add(1, Ordering::Relaxed);
        self.down.store(true, Ordering::Relaxed);
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        match state.last_logged {
            Some(at) if now.duration_since(at) < SUMMARY_EVERY => {
                state.unlogged += 1;
                false
            }
            Some(at) => {
                let more = state.unlogged;
                state.last_logged = Some(now);
                state.unlogged = 0;
                tracing::warn!(
                    dependency = self.dependency.as_str(),
                    error = %error,
                    failures_since_last_warning = more + 1,
                    seconds_since_last_warning = now.duration_since(at).as_secs(),
                    "{} (still failing)",
                    self.message
                );
                true
            }
            None => {
                state.last_logged = Some(now);
                state.unlogged = 0;
                tracing::warn!(
                    dependency = self.dependency.as_str(),
                    error = %error,
                    "{}",
                    self.message
                );
                true
            }
        }
    }

    /// The dependency answered again: logs the end of the outage (with the
    /// failures not yet logged), so that the next failure is logged at once.
    pub fn recovered(&self) {
        if !self.down.swap(false, Ordering::Relaxed) {
            return;
        }
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        tracing::info!(
            dependency = self.dependency.as_str(),
            failures_since_last_warning = state.unlogged,
            "{} is reachable again",
            self.dependency.as_str()
        );
        *state = State::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_logs_its_first_failure_then_a_summary_per_interval() {
        let log = OutageLog::new(Dependency::Redis, "Redis is unreachable");
        let start = Instant::now();
        let before = Dependency::Redis.errors();

        let logged: Vec<bool> = (0..1000u64)
            .map(|i| log.failed_at(&"refused", start + Duration::from_millis(i * 100)))
            .collect();

        // 100 s of failures, ten a second: the first, then one per 30 s.
        let lines = logged.iter().filter(|&&l| l).count();
        assert_eq!(lines, 4, "at 0, 30, 60 and 90 s");
        assert!(logged[0]);
        assert!(Dependency::Redis.errors() - before >= 1000);
    }

    #[test]
    fn after_recovery_the_next_failure_is_logged_at_once() {
        let log = OutageLog::new(Dependency::Database, "the database is unreachable");
        let start = Instant::now();
        assert!(log.failed_at(&"refused", start));
        assert!(!log.failed_at(&"refused", start + Duration::from_secs(1)));

        log.recovered();

        assert!(log.failed_at(&"refused", start + Duration::from_secs(2)));
    }
}
