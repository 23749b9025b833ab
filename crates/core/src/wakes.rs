//! [`Wakes`]: the wakes futures make of their own task while it polls
//! them, answered by polling them again at once instead of by tokio.
//!
//! hyper hands requests, answers and bodies between the halves of a
//! connection through channels that wake the task: while it is being
//! polled, each time (the HTTP server's connections; a call's provider
//! connection, driven in the call's task by `tollgate_providers`). tokio
//! takes a task woken during its own poll for one that yields: to the back
//! of the worker's queue, with an idle worker woken to come and steal it.
//! On a quiet gateway that is an inter-processor wake-up on the call's path
//! and often the call moving, cold, to the other core. Polled again in
//! place, the futures pick up what they handed each other; a wake from
//! outside the poll (the socket, a timer) goes to the task as usual.
//!
//! Under load it is the other way round: a task that yields often finds
//! its next bytes already in when its turn comes, and polling again at
//! once only finds nothing yet. So callers answer wakes in place only
//! while few calls are in flight ([`InFlightCalls`]).

use futures::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

/// Polls in a row after which futures that keep waking themselves are
/// left to the scheduler after all, so that other tasks get their turn.
const MAX_POLLS: usize = 8;

/// Not being polled: a wake goes to the task's own waker.
const IDLE: u8 = 0;
/// Being polled: a wake only marks it.
const POLLING: u8 = 1;
/// Woken while being polled: polled again before the poll returns.
const WOKEN: u8 = 2;

/// A counter of calls in flight, and whether they are few enough that a
/// worker is likely idle (at most as many as tokio's workers).
#[derive(Debug)]
pub struct InFlightCalls {
    count: AtomicUsize,
    quiet_up_to: usize,
}

impl InFlightCalls {
    /// Sized on the current tokio runtime's workers (1 outside a runtime).
    pub fn new() -> InFlightCalls {
        let workers = tokio::runtime::Handle::try_current()
            .map(|runtime| runtime.metrics().num_workers())
            .unwrap_or(1);
        InFlightCalls {
            count: AtomicUsize::new(0),
            quiet_up_to: workers,
        }
    }

    /// Counts a call until the guard is dropped.
    pub fn enter(self: &Arc<Self>) -> InFlightCall {
        self.count.fetch_add(1, Ordering::Relaxed);
        InFlightCall(Arc::clone(self))
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Few enough calls in flight to answer wakes in place.
    pub fn quiet(&self) -> bool {
        self.count() <= self.quiet_up_to
    }
}

impl Default for InFlightCalls {
    fn default() -> Self {
        InFlightCalls::new()
    }
}

/// One call counted in an [`InFlightCalls`] while it lives.
#[derive(Debug)]
pub struct InFlightCall(Arc<InFlightCalls>);

impl Drop for InFlightCall {
    fn drop(&mut self) {
        self.0.count.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A waker for futures polled by whichever task drives them now.
#[derive(Clone)]
pub struct Wakes {
    signal: Arc<Signal>,
    /// The waker handed to the connection's futures, made once.
    waker: Waker,
}

struct Signal {
    state: AtomicU8,
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self
            .state
            .compare_exchange(POLLING, WOKEN, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            self.task.wake();
        }
    }
}

impl Default for Wakes {
    fn default() -> Self {
        Wakes::new()
    }
}

impl Wakes {
    pub fn new() -> Wakes {
        let signal = Arc::new(Signal {
            state: AtomicU8::new(IDLE),
            task: AtomicWaker::new(),
        });
        Wakes {
            waker: Waker::from(Arc::clone(&signal)),
            signal,
        }
    }

    /// Polls `futures` (everything that was polled with this waker before)
    /// for the task of `cx`: if `in_place`, again while they wake
    /// themselves meanwhile; else once, their wakes left to tokio.
    pub fn poll<T>(
        &self,
        cx: &mut Context<'_>,
        in_place: bool,
        mut futures: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> Poll<T> {
        if !in_place {
            return futures(cx);
        }
        let state = &self.signal.state;
        self.signal.task.register(cx.waker());
        let mut inner = Context::from_waker(&self.waker);
        for _ in 0..MAX_POLLS {
            state.store(POLLING, Ordering::Release);
            if let Poll::Ready(out) = futures(&mut inner) {
                state.store(IDLE, Ordering::Release);
                return Poll::Ready(out);
            }
            let woken = state
                .compare_exchange(POLLING, IDLE, Ordering::AcqRel, Ordering::Acquire)
                .is_err();
            if !woken {
                return Poll::Pending;
            }
            // Out of tokio's budget, the futures only yield again.
            if !tokio::task::coop::has_budget_remaining() {
                break;
            }
        }
        state.store(IDLE, Ordering::Release);
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts the wakes of the task.
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn task() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        (count, waker)
    }

    /// Pending `yields` times, each time waking the waker it was polled
    /// with, then ready; counts its polls.
    fn self_waking(yields: usize, polls: &AtomicUsize) -> impl FnMut(&mut Context<'_>) -> Poll<()> {
        move |cx| {
            if polls.fetch_add(1, Ordering::SeqCst) == yields {
                return Poll::Ready(());
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    /// One poll of futures that wake themselves 3 times: its outcome, how
    /// often they were polled, how often the task was woken.
    fn poll_self_waking(in_place: bool) -> (Poll<()>, usize, usize) {
        let (wakes_of_task, waker) = task();
        let polls = AtomicUsize::new(0);
        let mut cx = Context::from_waker(&waker);
        let out = Wakes::new().poll(&mut cx, in_place, self_waking(3, &polls));
        let woken = wakes_of_task.0.load(Ordering::SeqCst);
        (out, polls.load(Ordering::SeqCst), woken)
    }

    #[test]
    fn futures_that_wake_themselves_are_polled_again_in_place() {
        assert_eq!(poll_self_waking(true), (Poll::Ready(()), 4, 0));
    }

    #[test]
    fn out_of_place_the_wakes_go_to_the_task() {
        assert_eq!(poll_self_waking(false), (Poll::Pending, 1, 1));
    }

    #[test]
    fn futures_that_keep_waking_themselves_are_left_to_the_scheduler() {
        let (wakes_of_task, waker) = task();
        let polls = AtomicUsize::new(0);
        let wakes = Wakes::new();
        let mut futures = self_waking(MAX_POLLS + 1, &polls);
        let mut cx = Context::from_waker(&waker);
        assert!(wakes.poll(&mut cx, true, &mut futures).is_pending());
        assert_eq!(polls.load(Ordering::SeqCst), MAX_POLLS);
        assert_eq!(
            wakes_of_task.0.load(Ordering::SeqCst),
            1,
            "rescheduled once"
        );
        assert!(wakes.poll(&mut cx, true, &mut futures).is_ready());
    }

    #[test]
    fn in_flight_counts_until_the_guard_goes() {
        let in_flight = Arc::new(InFlightCalls::new());
        assert!(in_flight.quiet());
        let guards: Vec<_> = (0..2).map(|_| in_flight.enter()).collect();
        assert_eq!(in_flight.count(), 2);
        assert!(!in_flight.quiet(), "outside a runtime: quiet up to one");
        drop(guards);
        assert_eq!(in_flight.count(), 0);
    }

    #[test]
    fn a_wake_after_the_poll_reaches_the_task_that_polled_last() {
        let (first, first_waker) = task();
        let (second, second_waker) = task();
        let wakes = Wakes::new();
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let mut poll_rx = |cx: &mut Context<'_>| std::pin::Pin::new(&mut rx).poll(cx);
        use std::future::Future as _;
        assert!(
            wakes
                .poll(&mut Context::from_waker(&first_waker), true, &mut poll_rx)
                .is_pending()
        );
        // The connection goes to the pool, and the next call's task drives it.
        assert!(
            wakes
                .poll(&mut Context::from_waker(&second_waker), true, &mut poll_rx)
                .is_pending()
        );
        tx.send(()).unwrap();
        assert_eq!(first.0.load(Ordering::SeqCst), 0);
        assert_eq!(second.0.load(Ordering::SeqCst), 1);
        assert!(
            wakes
                .poll(&mut Context::from_waker(&second_waker), true, &mut poll_rx)
                .is_ready()
        );
    }
}
