//! The batching loop of the background writers (settlements, request log):
//! gathers queued messages into batches, one per interval, without being
//! woken by each message while messages keep coming.
//!
//! Waking a sleeping writer on every call puts a scheduler hand-off on
//! the call's path before its answer goes out (docs/performance-history.md: its
//! effect was below the load benchmark's noise here). So a [`Gather`]
//! that has found messages keeps
//! coming back on its own every interval, draining what arrived meanwhile,
//! and only once the queue has stayed empty for [`IDLE_AFTER`] does it
//! wait on the queue again (the next message then wakes it, once).

use std::time::Duration;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

/// Empty rounds in a row after which a [`Gather`] waits on its queue
/// instead of coming back every interval.
pub const IDLE_AFTER: Duration = Duration::from_secs(1);

/// A queue that a [`Gather`] drains: tokio's bounded and unbounded
/// receivers.
pub trait Inbox<T>: Send {
    /// Waits for at least one message (or the queue's end: 0), then takes
    /// up to `limit`.
    fn wait_many(&mut self, batch: &mut Vec<T>, limit: usize)
    -> impl Future<Output = usize> + Send;
    /// The next message if one is queued, without waiting.
    fn take(&mut self) -> Result<T, TryRecvError>;
}

/// `Inbox` for a tokio receiver, which has both methods under other names.
macro_rules! inbox {
    ($receiver:ident) => {
        impl<T: Send> Inbox<T> for mpsc::$receiver<T> {
            fn wait_many(
                &mut self,
                batch: &mut Vec<T>,
                limit: usize,
            ) -> impl Future<Output = usize> + Send {
                self.recv_many(batch, limit)
            }
            fn take(&mut self) -> Result<T, TryRecvError> {
                self.try_recv()
            }
        }
    };
}
inbox!(Receiver);
inbox!(UnboundedReceiver);

/// Where a [`Gather`] is between two batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pace {
    /// Waiting on the queue: the next message wakes the loop.
    Idle,
    /// Coming back every interval; `empty` rounds in a row found nothing.
    Polling { empty: u32 },
    /// The last batch was full: the next is taken at once.
    Backlog,
}

/// Gathers a queue's messages into batches of at most `limit`, at most
/// one batch per `interval` (zero: back to back, woken by each message).
#[derive(Debug)]
pub struct Gather {
    interval: Duration,
    limit: usize,
    /// Empty rounds in a row (of `interval`) that make [`IDLE_AFTER`].
    idle_rounds: u32,
    pace: Pace,
}

impl Gather {
    pub fn new(interval: Duration, limit: usize) -> Gather {
        Gather {
            interval,
            limit: limit.max(1),
            idle_rounds: u32::try_from(IDLE_AFTER.as_nanos() / interval.as_nanos().max(1))
                .unwrap_or(u32::MAX)
                .max(1),
            pace: Pace::Idle,
        }
    }

    /// Fills the empty `batch` with the next messages. Returns false once
    /// the queue is closed and everything in it has been taken.
    pub async fn next<T>(&mut self, inbox: &mut impl Inbox<T>, batch: &mut Vec<T>) -> bool {
        debug_assert!(batch.is_empty());
        if self.interval.is_zero() {
            return inbox.wait_many(batch, self.limit).await > 0;
        }
        loop {
            let open = match self.pace {
                Pace::Idle => {
                    if inbox.wait_many(batch, self.limit).await == 0 {
                        return false;
                    }
                    // The first message waits for the interval's others, so
                    // that its write runs after the answer has gone out
                    // rather than beside it.
                    tokio::time::sleep(self.interval).await;
                    self.drain(inbox, batch)
                }
                Pace::Polling { .. } => {
                    tokio::time::sleep(self.interval).await;
                    self.drain(inbox, batch)
                }
                Pace::Backlog => self.drain(inbox, batch),
            };
            self.pace = if batch.len() >= self.limit {
                Pace::Backlog
            } else if !batch.is_empty() {
                Pace::Polling { empty: 0 }
            } else {
                match self.pace {
                    Pace::Polling { empty } if empty + 1 < self.idle_rounds => {
                        Pace::Polling { empty: empty + 1 }
                    }
                    _ => Pace::Idle,
                }
            };
            if !batch.is_empty() {
                return true;
            }
            if !open {
                return false;
            }
        }
    }

    /// Takes queued messages until `batch` is full or the queue is empty;
    /// false if the queue is closed (and empty).
    fn drain<T>(&self, inbox: &mut impl Inbox<T>, batch: &mut Vec<T>) -> bool {
        while batch.len() < self.limit {
            match inbox.take() {
                Ok(message) => batch.push(message),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn batches_what_arrives_within_an_interval() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut gather = Gather::new(Duration::from_millis(10), 100);
        for i in 0..3 {
            sender.send(i).unwrap();
        }
        let mut batch = Vec::new();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [0, 1, 2]);
    }

    #[tokio::test]
    async fn keeps_batches_within_their_limit_and_takes_a_backlog_at_once() {
        let (sender, mut receiver) = mpsc::channel(100);
        let mut gather = Gather::new(Duration::from_millis(300), 4);
        for i in 0..10 {
            sender.try_send(i).unwrap();
        }
        let mut batch = Vec::new();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [0, 1, 2, 3]);
        let before = tokio::time::Instant::now();
        batch.clear();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [4, 5, 6, 7]);
        assert!(
            before.elapsed() < Duration::from_millis(250),
            "a backlog does not wait for the interval"
        );
        batch.clear();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [8, 9]);
    }

    #[tokio::test]
    async fn polls_while_busy_then_waits_on_the_queue_once_idle() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut gather = Gather::new(Duration::from_millis(10), 100);
        sender.send(1).unwrap();
        let mut batch = Vec::new();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(gather.pace, Pace::Polling { empty: 0 });
        // Nothing more for longer than IDLE_AFTER: it stops coming back
        // on its own and waits on the queue.
        batch.clear();
        let waited = IDLE_AFTER + Duration::from_millis(300);
        let wait = tokio::time::timeout(waited, gather.next(&mut receiver, &mut batch));
        assert!(wait.await.is_err(), "no message, no batch");
        assert_eq!(gather.pace, Pace::Idle);
        // The next message wakes it.
        sender.send(2).unwrap();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [2]);
        drop(sender);
        batch.clear();
        assert!(
            !gather.next(&mut receiver, &mut batch).await,
            "closed and empty"
        );
    }

    #[tokio::test]
    async fn ends_after_the_last_message_of_a_closed_queue() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut gather = Gather::new(Duration::from_millis(10), 100);
        sender.send(1).unwrap();
        drop(sender);
        let mut batch = Vec::new();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [1]);
        batch.clear();
        assert!(!gather.next(&mut receiver, &mut batch).await);
    }

    #[tokio::test]
    async fn zero_interval_takes_messages_as_they_come() {
        let (sender, mut receiver) = mpsc::unbounded_channel();
        let mut gather = Gather::new(Duration::ZERO, 100);
        sender.send(1).unwrap();
        let mut batch = Vec::new();
        assert!(gather.next(&mut receiver, &mut batch).await);
        assert_eq!(batch, [1]);
    }
}
