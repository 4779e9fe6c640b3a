//! One shutdown signal for the whole process, and the way long-running work observes it.
//!
//! Every long-running task and every start-up wait takes its stop condition from [`Shutdown`].
//! kube-runtime controllers need more than `graceful_shutdown_on`: their runner holds every
//! reconcile until the controller's cache has listed once, and while it holds, it never ends,
//! even after its trigger stream has ended. With an API server that cannot be reached the cache
//! never lists, so a controller stopped only "gracefully" would run forever. [`drive`] ends a
//! controller as soon as nothing it started is still in flight, and after [`DRAIN_LIMIT`] at the
//! latest.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::Poll;
use std::time::Duration;

use futures::{Stream, StreamExt};
use tokio::sync::watch;

/// How long in-flight reconciles may take to finish after a shutdown request. Together with the
/// Lease release and the admin server this keeps the whole stop under 10 s.
pub const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// The process-wide stop request. Cheap to clone; every clone sees the same request.
#[derive(Clone, Debug)]
pub struct Shutdown {
    tx: Arc<watch::Sender<bool>>,
}

impl Default for Shutdown {
    fn default() -> Self {
        Shutdown {
            tx: Arc::new(watch::channel(false).0),
        }
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks everything to stop. Idempotent.
    pub fn request(&self) {
        self.tx.send_replace(true);
    }

    pub fn is_requested(&self) -> bool {
        *self.tx.borrow()
    }

    /// Resolves once a stop has been requested (at once if it already was).
    pub fn requested(&self) -> impl Future<Output = ()> + Send + Sync + 'static {
        let mut rx = self.tx.subscribe();
        async move {
            // Err only if every sender is gone, and `self` keeps one alive: treat it as a request.
            let _ = rx.wait_for(|stop| *stop).await;
        }
    }

    /// Runs `fut` unless a stop is requested first (then `None`): for start-up waits.
    pub async fn unless_requested<F: Future>(&self, fut: F) -> Option<F::Output> {
        tokio::select! {
            biased;
            () = self.requested() => None,
            out = fut => Some(out),
        }
    }
}

/// Counts the reconciles a controller has started and not finished.
#[derive(Clone, Debug, Default)]
pub struct InFlight(Arc<AtomicUsize>);

struct InFlightGuard(Arc<AtomicUsize>);

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl InFlight {
    pub fn is_idle(&self) -> bool {
        self.0.load(Ordering::SeqCst) == 0
    }

    /// Wraps a reconciler. The count goes up when the controller *creates* the reconcile future
    /// (inside the controller's own poll, before it is spawned), so a check made after polling
    /// the controller sees every reconcile it started; it goes down when that future ends or is
    /// dropped.
    pub fn track<A, C, Fut, R>(
        &self,
        reconcile: R,
    ) -> impl Fn(A, C) -> futures::future::BoxFuture<'static, Fut::Output> + use<A, C, Fut, R>
    where
        R: Fn(A, C) -> Fut,
        Fut: Future + Send + 'static,
    {
        let count = self.0.clone();
        move |a, c| {
            count.fetch_add(1, Ordering::SeqCst);
            let guard = InFlightGuard(count.clone());
            let fut = reconcile(a, c);
            Box::pin(async move {
                let _guard = guard;
                fut.await
            })
        }
    }
}

/// Polls a controller's result stream, handing each item to `each`, until the stream ends or,
/// once `shutdown` has resolved, until nothing tracked by `in_flight` is running (or `drain_limit`,
/// normally [`DRAIN_LIMIT`], has passed). The controller must stop starting reconciles on the same signal
/// (`graceful_shutdown_on`); dropping the stream cancels whatever is still running.
pub async fn drive<S: Stream>(
    stream: S,
    shutdown: impl Future<Output = ()>,
    in_flight: &InFlight,
    drain_limit: Duration,
    mut each: impl FnMut(S::Item),
) {
    tokio::pin!(stream, shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            item = stream.next() => match item {
                Some(item) => each(item),
                None => return,
            },
        }
    }
    let deadline = tokio::time::sleep(drain_limit);
    tokio::pin!(deadline);
    loop {
        // Poll the controller before looking at the count: that poll is where it sees the
        // shutdown and stops taking new work, so a zero count afterwards stays zero.
        match futures::poll!(stream.next()) {
            Poll::Ready(Some(item)) => {
                each(item);
                continue;
            }
            Poll::Ready(None) => return,
            Poll::Pending => {}
        }
        if in_flight.is_idle() {
            return;
        }
        tokio::select! {
            item = stream.next() => match item {
                Some(item) => each(item),
                None => return,
            },
            () = &mut deadline => {
                tracing::warn!(limit = ?drain_limit, "reconciles still running at the end of the shutdown drain; cancelling them");
                return;
            }
            // The count can reach zero without the stream yielding (a cancelled reconcile).
            () = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stream_that_never_ends_stops_at_once_when_nothing_is_in_flight() {
        let shutdown = Shutdown::new();
        let in_flight = InFlight::default();
        shutdown.request();
        let stopped = tokio::time::timeout(
            Duration::from_secs(1),
            drive(
                futures::stream::pending::<()>(),
                shutdown.requested(),
                &in_flight,
                DRAIN_LIMIT,
                |()| {},
            ),
        )
        .await;
        assert!(stopped.is_ok(), "drive waited for a stream that never ends");
    }

    #[tokio::test]
    async fn in_flight_work_is_waited_for_then_cut_at_the_drain_limit() {
        let limit = Duration::from_millis(300);
        let shutdown = Shutdown::new();
        let in_flight = InFlight::default();
        let reconcile = in_flight.track(|(), ()| std::future::pending::<()>());
        let running = reconcile((), ());
        assert!(!in_flight.is_idle(), "counted before it is first polled");
        shutdown.request();
        let started = tokio::time::Instant::now();
        drive(
            futures::stream::pending::<()>(),
            shutdown.requested(),
            &in_flight,
            limit,
            |()| {},
        )
        .await;
        let took = started.elapsed();
        assert!(took >= limit && took < limit * 3, "{took:?}");
        drop(running);
        assert!(
            in_flight.is_idle(),
            "a dropped reconcile is no longer counted"
        );
    }

    #[tokio::test]
    async fn start_up_waits_give_way_to_a_stop_request() {
        let shutdown = Shutdown::new();
        let waiter = {
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                shutdown
                    .unless_requested(std::future::pending::<()>())
                    .await
            })
        };
        shutdown.request();
        let out = tokio::time::timeout(Duration::from_secs(1), waiter).await;
        assert!(matches!(out, Ok(Ok(None))), "{out:?}");
        assert!(shutdown.is_requested());
    }
}
