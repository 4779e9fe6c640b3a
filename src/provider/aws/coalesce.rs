//! Cross-caller batching: the lookups of reconciles running at the same time are gathered, per identity
//! and service, into batch calls of up to `limit` keys. A batch is sent as soon as it is full, or a
//! bounded wait after its first key arrived: `wait` when the coalescer is quiet, `busy_wait` while
//! reads of several callers are arriving (the last batch, sent less than [`BUSY_WINDOW`] ago, held
//! more than one key). Identical keys share one slot and every caller gets the answer.
//!
//! Why two waits: reconciles reach the fetch at the rate the controller can run them (about 100/s
//! on a 2-core machine), not all at once, so a few-ms wait fills batches of only 3 to 5 during a
//! burst; filling 20 takes about 200 ms. A lone fetch (a new ExternalSecret, a rotation event on an
//! idle identity) must not pay that, so it gets the short wait.
//!
//! Each batch runs in a task of its own, so a caller that is dropped (a cancelled reconcile) never
//! cancels a batch others wait on; its answer is simply not delivered. A batch that fails to answer a
//! key (left out of the answer, or its task panicked) closes that key's channel: the caller then sees
//! `None` and reads the key on its own, as it would without coalescing.
//!
//! Written here rather than taken from a crate: `dataloader` runs the batch inside one caller's future
//! (a cancelled caller takes the batch with it) and bounds the wait by yields, not time; the others we
//! looked at fix the loader function at build time, while ours must be built from the caller's client.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, oneshot};
use tokio::time::Instant;

/// How recent the last batch must be for the coalescer to count as busy.
pub(crate) const BUSY_WINDOW: Duration = Duration::from_secs(1);

/// One batch call: the answer for each key it could answer. A key left out is read alone by its callers.
pub(crate) type Run<K, V> =
    Arc<dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = HashMap<K, V>> + Send>> + Send + Sync>;

/// Where a caller's answer arrives; `None` (a closed channel) means "no answer from a batch".
pub(crate) struct Pending<V>(oneshot::Receiver<V>);

impl<V> Pending<V> {
    pub(crate) async fn answer(self) -> Option<V> {
        self.0.await.ok()
    }
}

/// Gathers keys of concurrent callers into batches of at most `limit` (see the module doc).
pub(crate) struct Coalescer<K, V> {
    limit: usize,
    wait: Duration,
    busy_wait: Duration,
    /// Batch calls in flight at once, so a burst stays far from the service's rate limits.
    in_flight: Arc<Semaphore>,
    open: Arc<Mutex<Open<K, V>>>,
}

/// The batch still taking keys.
struct Open<K, V> {
    /// Bumped at each flush: a timer only flushes the batch it was armed for.
    generation: u64,
    /// In arrival order, so batches are deterministic.
    keys: Vec<K>,
    waiters: HashMap<K, Vec<oneshot::Sender<V>>>,
    /// When the previous batch was sent, and how many keys it held.
    last: Option<(Instant, usize)>,
}

impl<K, V> Open<K, V> {
    fn take(&mut self) -> Open<K, V> {
        let next = Open {
            generation: self.generation.wrapping_add(1),
            keys: Vec::new(),
            waiters: HashMap::new(),
            last: Some((Instant::now(), self.keys.len())),
        };
        std::mem::replace(self, next)
    }
}

impl<K, V> Coalescer<K, V>
where
    K: Clone + Eq + Hash + Send + 'static,
    V: Clone + Send + 'static,
{
    /// `limit` keys per batch (at least 1), at most `wait` (`busy_wait` when busy) before a partial batch
    /// is sent (`wait` zero: each `submit` is sent on its own, as without coalescing), at most
    /// `in_flight` batch calls at once.
    pub(crate) fn new(limit: usize, wait: Duration, busy_wait: Duration, in_flight: usize) -> Self {
        Coalescer {
            limit: limit.max(1),
            wait,
            busy_wait,
            in_flight: Arc::new(Semaphore::new(in_flight.max(1))),
            open: Arc::new(Mutex::new(Open {
                generation: 0,
                keys: Vec::new(),
                waiters: HashMap::new(),
                last: None,
            })),
        }
    }

    /// Queue `keys` (answers in the same order); `run` sends a batch, whichever caller's `run` is at
    /// hand when it is due, so every caller of one coalescer must pass an equivalent `run`.
    pub(crate) fn submit(
        &self,
        keys: impl IntoIterator<Item = K>,
        run: &Run<K, V>,
    ) -> Vec<Pending<V>> {
        let mut pending = Vec::new();
        let mut full = Vec::new();
        let mut arm = None;
        {
            let mut open = lock(&self.open);
            for key in keys {
                let (tx, rx) = oneshot::channel();
                pending.push(Pending(rx));
                if let Some(waiters) = open.waiters.get_mut(&key) {
                    waiters.push(tx);
                    continue;
                }
                if open.keys.is_empty() && !self.wait.is_zero() {
                    let busy = open
                        .last
                        .is_some_and(|(at, keys)| keys > 1 && at.elapsed() < BUSY_WINDOW);
                    let wait = if busy {
                        self.busy_wait.max(self.wait)
                    } else {
                        self.wait
                    };
                    arm = Some((open.generation, wait));
                }
                open.keys.push(key.clone());
                open.waiters.insert(key, vec![tx]);
                if open.keys.len() >= self.limit {
                    full.push(open.take());
                }
            }
            if self.wait.is_zero() && !open.keys.is_empty() {
                full.push(open.take());
            }
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to run batches on: dropping the senders tells every caller to read alone.
            return pending;
        };
        for batch in full {
            runtime.spawn(flush(batch, run.clone(), self.in_flight.clone()));
        }
        if let Some((generation, wait)) = arm {
            let (open, run, in_flight) = (self.open.clone(), run.clone(), self.in_flight.clone());
            runtime.spawn(async move {
                tokio::time::sleep(wait).await;
                let batch = {
                    let mut open = lock(&open);
                    // Already sent because it filled up: the open batch is a later one with its own timer.
                    if open.generation != generation || open.keys.is_empty() {
                        return;
                    }
                    open.take()
                };
                flush(batch, run, in_flight).await;
            });
        }
        pending
    }
}

/// The state stays consistent under a panic (no code that can panic runs while the lock is held, other
/// than `K`'s own `Hash`/`Eq`), so a poisoned lock is used as it is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

async fn flush<K, V>(batch: Open<K, V>, run: Run<K, V>, in_flight: Arc<Semaphore>)
where
    K: Eq + Hash,
    V: Clone,
{
    // The semaphore is never closed; without a permit the batch still runs, just unbounded.
    let _permit = in_flight.acquire_owned().await.ok();
    let mut answers = run(batch.keys).await;
    for (key, waiters) in batch.waiters {
        // A key without an answer drops its senders: those callers read it alone.
        let Some(answer) = answers.remove(&key) else {
            continue;
        };
        for waiter in waiters {
            // The caller may be gone (cancelled); the others still get theirs.
            let _ = waiter.send(answer.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Calls = Arc<Mutex<Vec<Vec<u32>>>>;

    /// A batch that answers `key * 10`, except key 13 (left out) and key 99 (an error).
    fn recording() -> (Run<u32, Result<u32, String>>, Calls) {
        let calls: Calls = Arc::default();
        let seen = calls.clone();
        let run: Run<u32, Result<u32, String>> = Arc::new(move |keys: Vec<u32>| {
            seen.lock().unwrap().push(keys.clone());
            Box::pin(async move {
                keys.into_iter()
                    .filter(|&k| k != 13)
                    .map(|k| {
                        let answer = if k == 99 {
                            Err(format!("denied {k}"))
                        } else {
                            Ok(k * 10)
                        };
                        (k, answer)
                    })
                    .collect()
            })
        });
        (run, calls)
    }

    async fn answers(
        pending: Vec<Pending<Result<u32, String>>>,
    ) -> Vec<Option<Result<u32, String>>> {
        let mut out = Vec::new();
        for p in pending {
            out.push(p.answer().await);
        }
        out
    }

    const WAIT: Duration = Duration::from_millis(5);
    const BUSY: Duration = Duration::from_millis(200);

    #[tokio::test(start_paused = true)]
    async fn after_a_batch_of_several_callers_the_next_one_waits_longer_and_a_lone_one_does_not() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, WAIT, BUSY, 8);
        // Quiet: a lone read waits the short bound.
        let start = tokio::time::Instant::now();
        answers(c.submit([1], &run)).await;
        assert_eq!(start.elapsed(), WAIT);
        // A lone batch is no sign of a burst: still short.
        let start = tokio::time::Instant::now();
        let two = (c.submit([2], &run), c.submit([3], &run));
        answers(two.0).await;
        answers(two.1).await;
        assert_eq!(start.elapsed(), WAIT);
        // That batch held two callers' keys: the next one gathers for the longer bound.
        let start = tokio::time::Instant::now();
        answers(c.submit([4], &run)).await;
        assert_eq!(start.elapsed(), BUSY);
        // That one held a single key, and the window has passed anyway: short again.
        tokio::time::sleep(BUSY_WINDOW).await;
        let start = tokio::time::Instant::now();
        answers(c.submit([5], &run)).await;
        assert_eq!(start.elapsed(), WAIT);
        let sizes: Vec<usize> = calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![1, 2, 1, 1]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_fills_to_the_limit_is_sent_at_once() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, Duration::from_secs(3600), Duration::from_secs(3600), 8);
        let start = tokio::time::Instant::now();
        let mut pending = Vec::new();
        for caller in 0..20 {
            pending.extend(c.submit([caller], &run));
        }
        let got = answers(pending).await;
        assert_eq!(start.elapsed(), Duration::ZERO, "a full batch never waits");
        assert_eq!(
            calls.lock().unwrap().as_slice(),
            &[(0..20).collect::<Vec<_>>()]
        );
        assert_eq!(got[7], Some(Ok(70)));
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_five_keys_make_one_full_batch_then_one_after_the_wait() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        let start = tokio::time::Instant::now();
        let pending = c.submit(0..25, &run);
        let got = answers(pending).await;
        assert_eq!(start.elapsed(), WAIT);
        let sizes: Vec<usize> = calls.lock().unwrap().iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![20, 5]);
        assert_eq!(got[24], Some(Ok(240)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_is_sent_after_the_wait_with_every_caller_in_it() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        let first = c.submit([1], &run);
        tokio::time::sleep(Duration::from_millis(3)).await;
        assert!(
            calls.lock().unwrap().is_empty(),
            "nothing is sent before the wait"
        );
        let second = c.submit([2, 3], &run);
        assert_eq!(answers(first).await, vec![Some(Ok(10))]);
        assert_eq!(answers(second).await, vec![Some(Ok(20)), Some(Ok(30))]);
        assert_eq!(calls.lock().unwrap().as_slice(), &[vec![1, 2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_wait_sends_each_submit_on_its_own() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, Duration::ZERO, BUSY, 8);
        let a = c.submit([1, 2], &run);
        let b = c.submit([3], &run);
        answers(a).await;
        answers(b).await;
        assert_eq!(calls.lock().unwrap().as_slice(), &[vec![1, 2], vec![3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn identical_keys_of_many_callers_share_one_slot() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        let a = c.submit([5, 5, 6], &run);
        let b = c.submit([5], &run);
        assert_eq!(
            answers(a).await,
            vec![Some(Ok(50)), Some(Ok(50)), Some(Ok(60))]
        );
        assert_eq!(answers(b).await, vec![Some(Ok(50))]);
        assert_eq!(calls.lock().unwrap().as_slice(), &[vec![5, 6]]);
    }

    #[tokio::test(start_paused = true)]
    async fn per_key_errors_reach_every_caller_of_that_key_and_unanswered_keys_read_alone() {
        let (run, _) = recording();
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        let a = c.submit([99, 13, 1], &run);
        let b = c.submit([99, 13], &run);
        let denied = Some(Err("denied 99".to_owned()));
        assert_eq!(answers(a).await, vec![denied.clone(), None, Some(Ok(10))]);
        assert_eq!(answers(b).await, vec![denied, None]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_dropped_caller_neither_cancels_nor_breaks_the_batch_of_the_others() {
        let (run, calls) = recording();
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        // The caller that opened the batch (and armed its timer) goes away before the wait is over.
        let gone = c.submit([1, 2], &run);
        let stays = c.submit([2, 3], &run);
        drop(gone);
        assert_eq!(answers(stays).await, vec![Some(Ok(20)), Some(Ok(30))]);
        assert_eq!(calls.lock().unwrap().as_slice(), &[vec![1, 2, 3]]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_that_panics_lets_its_callers_read_alone() {
        let run: Run<u32, u32> =
            Arc::new(|_keys: Vec<u32>| Box::pin(async { panic!("batch failed") }));
        let c = Coalescer::new(20, WAIT, WAIT, 8);
        let pending = c.submit([1, 2], &run);
        let mut got = Vec::new();
        for p in pending {
            got.push(p.answer().await);
        }
        assert_eq!(got, vec![None, None]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_batches_than_allowed_are_in_flight() {
        let busy = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let (b, m) = (busy.clone(), most.clone());
        let run: Run<u32, u32> = Arc::new(move |keys: Vec<u32>| {
            let (b, m) = (b.clone(), m.clone());
            Box::pin(async move {
                let now = b.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(10)).await;
                b.fetch_sub(1, Ordering::SeqCst);
                keys.into_iter().map(|k| (k, k)).collect()
            })
        });
        let c = Coalescer::new(2, WAIT, WAIT, 3);
        let pending = c.submit(0..20, &run);
        for p in pending {
            assert!(p.answer().await.is_some());
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }
}
