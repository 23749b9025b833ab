//! A call's route runs in its surface's task, and is finished in the
//! background only if that task lets go of it (the client went away).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio_util::task::TaskTracker;

/// Polls `future` where it is awaited; dropped before the future is done,
/// hands it to `tracker` to run to its end, so that a call whose client
/// went away is still settled or released (and shutdown waits for it).
///
/// Spawning every route instead costs a task, a wake-up of the other
/// worker thread and a join on each call; this costs that only when a
/// client leaves mid-call.
pub(crate) struct Finish<F: Future<Output: Send> + Send + ?Sized + 'static> {
    future: Option<Pin<Box<F>>>,
    tracker: TaskTracker,
}

impl<F: Future<Output: Send> + Send + 'static> Finish<F> {
    pub(crate) fn new(future: F, tracker: &TaskTracker) -> Self {
        Finish::boxed(Box::pin(future), tracker)
    }
}

impl<F: Future<Output: Send> + Send + ?Sized + 'static> Finish<F> {
    /// Of a future already boxed (a `dyn Future`, whose type a struct
    /// can name): boxed once, not twice.
    pub(crate) fn boxed(future: Pin<Box<F>>, tracker: &TaskTracker) -> Self {
        Finish {
            future: Some(future),
            tracker: tracker.clone(),
        }
    }
}

impl<F: Future<Output: Send> + Send + ?Sized + 'static> Future for Finish<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // Taken out while polled: if the future panics, it is dropped with
        // the unwinding (its hold released) rather than run on in the
        // background, where polling it again would panic again.
        // Polled again after it completed (which the contract of `Future`
        // leaves open), it never completes again.
        let Some(mut future) = self.future.take() else {
            return Poll::Pending;
        };
        match future.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(output),
            Poll::Pending => {
                self.future = Some(future);
                Poll::Pending
            }
        }
    }
}

impl<F: Future<Output: Send> + Send + ?Sized + 'static> Drop for Finish<F> {
    fn drop(&mut self) {
        let Some(future) = self.future.take() else {
            return;
        };
        // Without a runtime (it is shutting down) there is nothing to run
        // it on: dropped, it releases what it holds.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.tracker.spawn_on(
                async move {
                    future.await;
                },
                &runtime,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn a_future_awaited_to_its_end_runs_in_place() {
        let tracker = TaskTracker::new();
        let output = Finish::new(async { 7 }, &tracker).await;
        assert_eq!(output, 7);
        assert!(tracker.is_empty());
    }

    #[tokio::test]
    async fn a_future_dropped_midway_is_finished_in_the_background() {
        let tracker = TaskTracker::new();
        let done = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&done);
        let (started_tx, started) = tokio::sync::oneshot::channel();
        let finish = Finish::new(
            async move {
                let _ = started_tx.send(());
                tokio::time::sleep(Duration::from_millis(20)).await;
                flag.store(true, Ordering::SeqCst);
            },
            &tracker,
        );
        let caller = tokio::spawn(finish);
        started.await.unwrap();
        caller.abort();
        let _ = caller.await;
        assert!(!done.load(Ordering::SeqCst));

        tracker.close();
        tracker.wait().await;
        assert!(done.load(Ordering::SeqCst));
    }
}
